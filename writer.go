package websocket

import (
	"io"
	"runtime"
	"sync/atomic"
	"time"
)

// Streaming a message with NextWriter, and the message lock (msgLock) all
// data messages take: a writer holds it from NextWriter until Close,
// across calls, which is where gorilla's rule (a new message closes a
// writer left open) and concurrent writers meet.

// lockMessage takes msgLock for a new data message, waiting at most until
// deadline (zero: no limit). Where the lock is held by a writer from
// NextWriter that sits idle, it applies gorilla's rule first (see
// closeIdleWriter).
func (c *Conn) lockMessage(deadline time.Time) error {
	if c.msgLock.tryLock() {
		return nil
	}
	if c.closeIdleWriter() {
		return nil
	}
	// Wait, unless the Conn is closed meanwhile: a writer left open
	// would otherwise hold the waiters for good.
	return c.msgLock.lock(deadline, c.closedChan())
}

// closeIdleWriter applies gorilla's rule that a new message closes the
// writer the application left open: when the message lock is held by a
// writer from NextWriter with no call of its own in progress, and this
// Conn has never seen two write calls in progress at once, the writer was
// left open by the goroutine now asking to write (a program that writes
// from one goroutine at a time cannot have it otherwise). The writer's
// message is then finished and sent, and the lock passes to the caller:
// it reports true. Goroutine identity is not available in Go, so the rule
// is inferred from what the Conn has seen; a program that streams from
// several goroutines calls EnableConcurrentWriters so that it never
// applies.
//
// Finding the lock held by a call in progress (a whole message being
// written, a writer in use) shows that another goroutine writes at the
// same time: the Conn then leaves gorilla's rule for good, and the caller
// waits for the lock.
func (c *Conn) closeIdleWriter() bool {
	if c.concurrentWriters.Load() {
		return false
	}
	w := &c.writer
	if !w.state.CompareAndSwap(writerIdle, writerClaimed) {
		c.concurrentWriters.Store(true)
		return false
	}
	if c.concurrentWriters.Load() {
		// Another write call saw concurrency meanwhile.
		w.state.Store(writerIdle)
		return false
	}
	// A failure is sticky (writeErr) and reported to the caller's own
	// write; gorilla ignores it likewise.
	w.finish()
	return true
}

// EnableConcurrentWriters declares that several goroutines may stream
// messages at once, each holding a writer from NextWriter between its
// calls: a new message then always waits for another goroutine's open
// writer to be closed, and gorilla's rule that a new message closes the
// writer left open (which a single-writer program relies on) no longer
// applies. Whole-message writes (WriteMessage, WriteJSON,
// WritePreparedMessage, WriteControl) are safe from any number of
// goroutines without it. A Conn also switches by itself, the first time
// it sees two write calls in progress at once; calling this first
// removes the one case that inference cannot tell apart (see the
// package documentation's section on concurrency).
func (c *Conn) EnableConcurrentWriters() { c.concurrentWriters.Store(true) }

// Writer states. A writer's message is open in every state but
// writerClosed; whoever moved the state out of writerIdle (or opened the
// message) owns the writer's other fields until it puts the state back.
const (
	writerClosed  int32 = iota // no message open
	writerIdle                 // open, no call on the writer in progress
	writerBusy                 // open, a call (or a whole-message write) uses it
	writerClaimed              // open, another write call is closing it (gorilla's rule)
)

// messageWriter is the io.WriteCloser NextWriter returns. It is reused for
// every message; msgLock is held from NextWriter until the message is
// closed, by Close or by closeIdleWriter.
type messageWriter struct {
	c *Conn
	// state (writerClosed...) and seq (bumped when a message opens and
	// when it closes) are atomic: closeIdleWriter reads them from another
	// goroutine. The fields below belong to the writer's owner.
	state  atomic.Int32
	seq    atomic.Uint64
	buf    *buffer
	size   int  // payload capacity of buf
	n      int  // payload bytes buffered
	opcode byte // of the next frame: the message type, then continuation
	ctrl   bool // a control message, sent as one frame on Close
	// compress: the message is compressed, unless it is below the
	// threshold when it closes without a frame sent; first: no frame of
	// it has been sent yet.
	compress bool
	first    bool
	// cut: a message's continuation frame failed with the connection
	// still writable (see sendDataFrame); err then holds that failure,
	// which every later data message returns. Guarded by msgLock.
	cut  bool
	err  error
	refs [2]messageWriterRef
}

// messageWriterRef is what NextWriter hands out: it binds the reused
// messageWriter to one message, so that Write and Close through a writer
// whose message is closed fail instead of touching the next message. Two
// refs alternate, so getting a writer allocates nothing.
type messageWriterRef struct {
	w   *messageWriter
	seq uint64
}

// NextWriter returns a writer for the next message to send. The writer's
// Close method flushes the complete message to the network.
//
// It waits for any message being written by another goroutine to finish,
// and holds the connection's message lock until the writer is closed: other
// writers of data messages wait for that Close, control frames do not. Data
// that overflows the write buffer is sent as a fragment, so a message of any
// size can be streamed.
//
// As in gorilla/websocket, a writer the application leaves open is closed
// (its message finished and sent) by the next NextWriter or WriteMessage
// call; its methods then return an error. Where several goroutines stream
// at once, see EnableConcurrentWriters.
//
// All message types (TextMessage, BinaryMessage, CloseMessage, PingMessage
// and PongMessage) are supported; a control message must fit in 125 bytes.
//
// After Close, the writer's methods return an error; the writer must not be
// kept beyond the next NextWriter call, since writers are recycled.
func (c *Conn) NextWriter(messageType int) (io.WriteCloser, error) {
	r, err := c.nextWriter(messageType, writerIdle)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// nextWriter opens a message of messageType and returns the reference to
// its writer, left in state (writerIdle for NextWriter, writerBusy for a
// whole-message write that uses the writer itself).
func (c *Conn) nextWriter(messageType int, state int32) (*messageWriterRef, error) {
	switch messageType {
	case TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage:
	default:
		return nil, errBadWriteOpCode
	}
	if err := c.lockMessage(c.dataDeadline()); err != nil {
		return nil, err
	}
	return c.openWriter(messageType, state)
}

// openWriter is nextWriter once msgLock is held.
func (c *Conn) openWriter(messageType int, state int32) (*messageWriterRef, error) {
	if err := c.checkWritable(); err != nil {
		c.msgLock.unlock()
		return nil, err
	}
	w := &c.writer
	if w.cut {
		c.msgLock.unlock()
		return nil, w.err
	}
	w.buf = c.getWriteBuffer()
	w.size = c.writeBufSize
	w.n = 0
	w.opcode = byte(messageType)
	w.ctrl = isControl(byte(messageType))
	w.compress = !w.ctrl && c.willCompress()
	w.first = true
	if w.compress {
		c.syncDeflater()
	}
	w.err = nil
	seq := w.seq.Add(1)
	// seq moves twice per message (here and when it closes), so its
	// parity cannot pick the ref: take the one handed out longer ago,
	// leaving the previous message's writer bound to its closed message.
	r := &w.refs[0]
	if w.refs[1].seq < r.seq {
		r = &w.refs[1]
	}
	r.w, r.seq = w, seq
	w.state.Store(state)
	return r, nil
}

// checkWritable reports the error a new message would meet at once.
func (c *Conn) checkWritable() error {
	c.frameLock.lockWait()
	defer c.frameLock.unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.closeSent.Load() {
		return ErrCloseSent
	}
	return nil
}

// enter makes the calling goroutine the owner of r's writer for one call,
// or fails with errWriteClosed when r's message has been closed (by Close,
// or by another write applying gorilla's rule). leave ends the call.
func (r *messageWriterRef) enter() (*messageWriter, error) {
	w := r.w
	for !w.state.CompareAndSwap(writerIdle, writerBusy) {
		if w.seq.Load() != r.seq || w.state.Load() == writerClosed {
			return nil, errWriteClosed
		}
		// Claimed: another write call is deciding whether to close
		// it; busy: another call on the same writer, which only a
		// misuse makes. Either ends shortly.
		runtime.Gosched()
	}
	if w.seq.Load() != r.seq {
		// r's message closed and the writer was reopened for another.
		w.state.Store(writerIdle)
		return nil, errWriteClosed
	}
	return w, nil
}

func (w *messageWriter) leave() { w.state.Store(writerIdle) }

// finish sends the final frame of the message, releases its buffer and
// closes it; the caller then owns msgLock, which the message held.
func (w *messageWriter) finish() error {
	c := w.c
	// An over-long control message must not go out as an invalid frame.
	err := w.checkControl()
	if err == nil {
		if w.ctrl {
			err = c.writeControl(int(w.opcode), w.buf.b[maxFrameHeaderSize:maxFrameHeaderSize+w.n], c.dataDeadline())
		} else {
			err = w.flush(true)
		}
	}
	c.putWriteBuffer(w.buf)
	w.buf = nil
	w.seq.Add(1)
	w.state.Store(writerClosed)
	return err
}

// room makes space in the write buffer, sending what it holds as a
// fragment when it is full. A control message cannot be fragmented, so
// overflowing one is an error.
func (w *messageWriter) room() error {
	if w.err != nil {
		return w.err
	}
	if w.n < w.size {
		return nil
	}
	if w.ctrl {
		w.err = errInvalidControl
		return w.err
	}
	return w.flush(false)
}

// checkControl fails a control message that has grown past 125 bytes.
func (w *messageWriter) checkControl() error {
	if w.ctrl && w.n > maxControlPayload {
		w.err = errInvalidControl
	}
	return w.err
}

func (r *messageWriterRef) Write(p []byte) (int, error) {
	w, err := r.enter()
	if err != nil {
		return 0, err
	}
	defer w.leave()
	defer w.c.unbindWriter(w.c.bindWriter(r.seq))
	return w.write(p)
}

// write appends p to the message. The caller owns w.
func (w *messageWriter) write(p []byte) (int, error) {
	c := w.c
	total := 0
	for len(p) > 0 {
		if err := w.room(); err != nil {
			return total, err
		}
		if w.n == 0 && !w.ctrl && !w.compress && len(p) > w.size {
			// Nothing buffered and more than a buffer's worth: send it
			// now as one fragment, in one write where it can, rather
			// than one fragment per write buffer. The final frame is
			// sent by Close, possibly empty.
			if err := c.writeLarge(false, w.opcode, p); err != nil {
				w.err = err
				return total, err
			}
			w.opcode = opContinuation
			return total + len(p), nil
		}
		k := copy(w.buf.b[maxFrameHeaderSize+w.n:maxFrameHeaderSize+w.size], p)
		w.n += k
		total += k
		p = p[k:]
	}
	return total, w.checkControl()
}

// WriteString writes s without converting it to a byte slice first.
func (r *messageWriterRef) WriteString(s string) (int, error) {
	w, err := r.enter()
	if err != nil {
		return 0, err
	}
	defer w.leave()
	defer w.c.unbindWriter(w.c.bindWriter(r.seq))
	total := 0
	for len(s) > 0 {
		if err := w.room(); err != nil {
			return total, err
		}
		k := copy(w.buf.b[maxFrameHeaderSize+w.n:maxFrameHeaderSize+w.size], s)
		w.n += k
		total += k
		s = s[k:]
	}
	return total, w.checkControl()
}

// ReadFrom streams src into the message, filling the write buffer directly.
// When src is a message reader of this package (io.Copy from NextReader to
// NextWriter, as in an echo or a relay), the write buffer grows to hold the
// frame being read, up to maxStreamFrame and as its payload arrives (see
// Conn.trustedLen), so that a message goes out in as few frames and writes
// as it came in.
func (r *messageWriterRef) ReadFrom(src io.Reader) (int64, error) {
	w, err := r.enter()
	if err != nil {
		return 0, err
	}
	defer w.leave()
	defer w.c.unbindWriter(w.c.bindWriter(r.seq))
	mr, _ := src.(*messageReader)
	var total int64
	for {
		if mr != nil {
			if mr.id != mr.c.readerID || (mr.c.frameLeft == 0 && mr.c.frameFinal && !mr.c.msgCompressed) {
				// The source has nothing more: end its message (and
				// check it) without making room, which could send the
				// full buffer as one fragment and then an empty one.
				if _, err := src.Read(nil); err != io.EOF {
					return total, err
				}
				return total, w.checkControl()
			}
			if !mr.c.msgCompressed {
				// frameLeft is the peer's word: room for it grows
				// only with what has arrived.
				w.reserve(mr.c.trustedLen(mr.c.frameLeft, int64(w.n)))
			} else if w.n == w.size {
				// The inflated size is unknown (frameLeft counts
				// compressed bytes): double the buffer as it fills.
				w.reserve(int64(w.size))
			}
		}
		if err := w.room(); err != nil {
			return total, err
		}
		k, err := src.Read(w.buf.b[maxFrameHeaderSize+w.n : maxFrameHeaderSize+w.size])
		w.n += k
		total += int64(k)
		if err == io.EOF {
			return total, w.checkControl()
		}
		if err != nil {
			return total, err
		}
	}
}

// maxStreamFrame bounds the frames ReadFrom builds: one frame and one
// write for a message of typical size, while a relay of a huge message
// never holds more than this of it.
const maxStreamFrame = 1 << 20

// reserve grows the write buffer so that n more payload bytes fit, within
// maxStreamFrame. Buffers from an application's WriteBufferPool keep their
// size.
func (w *messageWriter) reserve(n int64) {
	if w.c.writePool != nil || w.ctrl || n <= int64(w.size-w.n) {
		return
	}
	want := min(int64(w.n)+n, maxStreamFrame)
	if want <= int64(w.size) {
		return
	}
	nb := getBuffer(int(want) + maxFrameHeaderSize)
	copy(nb.b[maxFrameHeaderSize:], w.buf.b[maxFrameHeaderSize:maxFrameHeaderSize+w.n])
	putBuffer(w.buf)
	w.buf, w.size = nb, int(want)
}

// flush sends the buffered payload as one frame, compressed if the message
// is, and compressed at Close only if it reaches the threshold.
func (w *messageWriter) flush(fin bool) error {
	c := w.c
	p := w.buf.b[maxFrameHeaderSize : maxFrameHeaderSize+w.n]
	var err error
	if w.compress && (!fin || !w.first || w.n >= c.compressThreshold) {
		err = c.writeCompressed(p, fin, w.first, w.opcode)
	} else {
		err = c.writeFrame(w.buf.b, w.n, fin, w.opcode, 0)
	}
	w.n = 0
	w.opcode = opContinuation
	w.first = false
	if err != nil {
		w.err = err
	}
	return err
}

// Close sends the final frame of the message and releases the connection
// for other writers. Closing a closed writer returns an error.
func (r *messageWriterRef) Close() error {
	w, err := r.enter()
	if err != nil {
		return err
	}
	c := w.c
	stop := c.bindWriter(r.seq)
	err = w.finish()
	c.unbindWriter(stop)
	if stop != nil {
		c.wctx.w.msg = nil
	}
	c.msgLock.unlock()
	return err
}
