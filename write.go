package websocket

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/wsforge/websocket/internal/flate"
)

// Writing. Two locks order the output:
//
//   - msgLock is held for a whole data message (WriteMessage,
//     WritePreparedMessage, a NextWriter until its Close), so messages never
//     interleave;
//   - frameLock is held while one frame goes on the wire, so a control frame
//     (a pong answering a ping, a close) may go out between two fragments of
//     a message that is being streamed.
//
// Both are wlocks (lock.go) so that a wait can honour a deadline. The
// connection state they protect (writeErr, closeSent, appliedDeadline) is
// guarded by frameLock. msgLock is always taken before frameLock.
//
// Every frame goes onto the wire through sendFrame, under one rule for
// deadlines: the deadline that bounds a frame's write (a control frame's
// own, or the data deadline of SetWriteDeadline) also bounds the wait for
// frameLock, and a zero one waits as long as the write itself may.

// dataDeadline returns the deadline set by SetWriteDeadline.
func (c *Conn) dataDeadline() time.Time {
	if v := c.writeDeadline.Load(); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// beginFrame checks that a frame may be written and applies deadline to the
// network connection. frameLock must be held.
func (c *Conn) beginFrame(deadline time.Time) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.closeSent.Load() {
		return ErrCloseSent
	}
	if d := unixNano(deadline); d != c.appliedDeadline {
		if err := c.conn.SetWriteDeadline(deadline); err != nil {
			c.writeErr = err
			return err
		}
		c.appliedDeadline = d
	}
	return nil
}

// unixNano returns t as nanoseconds since the Unix epoch, and 0 for the
// zero Time: the form Conn keeps deadlines in, a third of a time.Time's
// size.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// sendFrame is the one way onto the wire. It takes frameLock, waiting at
// most until deadline; checks that a frame may still be written and
// applies deadline to the network connection (beginFrame); and calls
// write, which puts one frame (or a prepared message's) on the wire through
// c.conn and returns how many bytes it wrote. A failed write breaks the
// write side for good, since the peer may hold part of a frame: every
// later write returns the same error. The exception is a control frame
// whose write timed out before any byte went out (a pong meeting a
// congested socket): the stream is intact and later frames may go, where
// gorilla would fail them all.
//
// write runs with frameLock held; callers build and mask their bytes
// before calling, so that the lock covers the system calls only.
func (c *Conn) sendFrame(deadline time.Time, control bool, write func() (int64, error)) error {
	if !control && c.wctx != nil && c.wctx.w.ctx != nil {
		return c.sendFrameContext(deadline, write)
	}
	return c.sendFrameDone(deadline, nil, control, write)
}

// sendFrameDone is sendFrame whose wait for frameLock also ends, with
// net.ErrClosed, when done is closed.
func (c *Conn) sendFrameDone(deadline time.Time, done <-chan struct{}, control bool, write func() (int64, error)) error {
	if err := c.frameLock.lock(deadline, done); err != nil {
		return err
	}
	defer c.frameLock.unlock()
	if err := c.beginFrame(deadline); err != nil {
		return err
	}
	n, err := write()
	if err == nil {
		return nil
	}
	if control && unsentTimeout(n, err) {
		return err
	}
	c.writeErr = err
	return err
}

// unsentTimeout reports whether a write that wrote n bytes and failed with
// err timed out before sending anything.
func unsentTimeout(n int64, err error) bool {
	var ne net.Error
	return n == 0 && errors.As(err, &ne) && ne.Timeout()
}

// newMaskKey returns a fresh masking key. RFC 6455 section 5.3 asks for
// keys an intermediary cannot predict; math/rand/v2's global generator is
// ChaCha8 seeded from the operating system, and costs no lock or syscall.
func newMaskKey() [4]byte {
	v := rand.Uint32()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// WriteControl writes a control message with the given deadline. The allowed
// message types are CloseMessage, PingMessage and PongMessage; data must be
// at most 125 bytes. It waits at most until deadline for other writers (zero
// means no limit) and may be called concurrently with every other write
// method; it can go out between the fragments of a message being written
// with NextWriter. After a close message has been sent, it returns
// ErrCloseSent.
func (c *Conn) WriteControl(messageType int, data []byte, deadline time.Time) error {
	if messageType != CloseMessage && messageType != PingMessage && messageType != PongMessage {
		return errBadWriteOpCode
	}
	if len(data) > maxControlPayload {
		return errInvalidControl
	}
	return c.writeControl(messageType, data, deadline)
}

func (c *Conn) writeControl(messageType int, data []byte, deadline time.Time) error {
	return c.writeControlDone(messageType, data, deadline, nil)
}

// writeControlDone is writeControl whose wait for other writers also ends,
// with net.ErrClosed and nothing sent, when done is closed.
func (c *Conn) writeControlDone(messageType int, data []byte, deadline time.Time, done <-chan struct{}) error {
	masked := !c.isServer
	var key [4]byte
	if masked {
		key = newMaskKey()
	}
	// Control frames are rare enough to take their scratch space from a
	// pool rather than keep it in every Conn.
	bp := getBuffer(maxFrameHeaderSize + maxControlPayload)
	defer putBuffer(bp)
	b := appendFrameHeader(bp.b[:0], true, 0, byte(messageType), len(data), masked, key)
	hl := len(b)
	b = append(b, data...)
	if masked {
		maskBytes(key, 0, b[hl:])
	}
	closing := messageType == CloseMessage
	return c.sendFrameDone(deadline, done, true, func() (int64, error) {
		// Sent before the write: a reader that sees the peer's answer
		// must find it set.
		if closing {
			c.closeSent.Store(true)
		}
		n, err := c.conn.Write(b)
		if closing && err != nil && unsentTimeout(int64(n), err) {
			c.closeSent.Store(false)
		}
		return int64(n), err
	})
}

// getWriteBuffer returns a buffer with maxFrameHeaderSize bytes of room
// for a header, then writeBufSize bytes for payload: from the
// application's WriteBufferPool if it set one, else from the library's
// pools. Only a connection in the middle of writing a message holds one.
func (c *Conn) getWriteBuffer() *buffer {
	size := c.writeBufSize + maxFrameHeaderSize
	if c.writePool != nil {
		if wb, ok := c.writePool.Get().(*buffer); ok && len(wb.b) == size {
			return wb
		}
		return &buffer{b: make([]byte, size)}
	}
	return getBuffer(size)
}

func (c *Conn) putWriteBuffer(wb *buffer) {
	if c.writePool != nil {
		c.writePool.Put(wb)
		return
	}
	putBuffer(wb)
}

// writeFrame writes one data frame whose payload is buf[maxFrameHeaderSize:
// maxFrameHeaderSize+n], putting the header in the room before it, masking
// the payload in place on the client side, and handing header and payload
// to the network in one write.
func (c *Conn) writeFrame(buf []byte, n int, fin bool, opcode, rsv byte) error {
	masked := !c.isServer
	var key [4]byte
	if masked {
		key = newMaskKey()
		maskBytes(key, 0, buf[maxFrameHeaderSize:maxFrameHeaderSize+n])
	}
	start := maxFrameHeaderSize - headerSize(n, masked)
	appendFrameHeader(buf[start:start], fin, rsv, opcode, n, masked, key)
	frame := buf[start : maxFrameHeaderSize+n]
	return c.sendDataFrame(opcode, rsv, func() (int64, error) {
		m, err := c.conn.Write(frame)
		return int64(m), err
	})
}

// sendDataFrame is sendFrame for a frame of a data message, opcode and
// rsv being its header's; msgLock is held. A failure that leaves the
// connection writable (nothing of the frame went out: the frame lock's
// wait timed out or was canceled) must still leave the stream and the
// compressor as the peer sees them. A continuation frame: the peer holds
// the message's earlier frames and waits for the rest, so no other data
// message may follow; the writer records the cut (under msgLock, as the
// frame lock may be held by a stuck control frame) and every later data
// frame fails with the same error. The first frame of a compressed
// message: with context takeover the compressor took the message into
// its history, which the peer will never have, so the history is dropped.
func (c *Conn) sendDataFrame(opcode, rsv byte, write func() (int64, error)) error {
	w := &c.writer
	if w.cut {
		return w.err
	}
	err := c.sendFrame(c.dataDeadline(), false, write)
	switch {
	case err == nil:
	case opcode == opContinuation:
		w.cut, w.err = true, err
	case rsv&rsv1Bit != 0:
		c.deflate.Forget()
	}
	return err
}

// vectoredWrite is the scratch space of a vectored write, pooled so that
// the write allocates nothing and an idle Conn holds none of it.
type vectoredWrite struct {
	hdr  [maxFrameHeaderSize]byte
	bufs [2][]byte
	vec  net.Buffers
}

var vectoredWrites = sync.Pool{New: func() any { return new(vectoredWrite) }}

// writeDirect writes one whole unmasked frame with payload p that is too
// large for the write buffer: header and payload go to one vectored write,
// and p is not copied.
func (c *Conn) writeDirect(fin bool, opcode, rsv byte, p []byte) error {
	v := vectoredWrites.Get().(*vectoredWrite)
	v.bufs[0] = appendFrameHeader(v.hdr[:0], fin, rsv, opcode, len(p), false, [4]byte{})
	v.bufs[1] = p
	v.vec = v.bufs[:]
	err := c.sendDataFrame(opcode, rsv, func() (int64, error) { return v.vec.WriteTo(c.conn) })
	v.bufs[1], v.vec = nil, nil // do not keep the caller's slice
	vectoredWrites.Put(v)
	return err
}

// writeLarge writes one uncompressed frame whose payload p is larger than
// the write buffer. The server sends p as it is; the client must mask a
// copy, and a pooled buffer as large as the frame (up to maxStreamFrame a
// write) sends it in one write instead of one per write buffer.
func (c *Conn) writeLarge(fin bool, opcode byte, p []byte) error {
	if c.isServer {
		return c.writeDirect(fin, opcode, 0, p)
	}
	size := len(p)
	if size > maxStreamFrame {
		size = maxStreamFrame
	}
	big := getBuffer(size + maxFrameHeaderSize)
	defer putBuffer(big)
	return c.writeMaskedLarge(big.b, fin, opcode, 0, p)
}

// writeMaskedLarge writes one masked frame whose payload p is larger than
// the write buffer: the header and the payload, masked chunk by chunk
// through buf, in as few writes as the buffer allows. p is not modified.
func (c *Conn) writeMaskedLarge(buf []byte, fin bool, opcode, rsv byte, p []byte) error {
	key := newMaskKey()
	hdr := appendFrameHeader(buf[:0], fin, rsv, opcode, len(p), true, key)
	return c.sendDataFrame(opcode, rsv, func() (int64, error) {
		var total int64
		b, rest, pos := hdr, p, 0
		for len(rest) > 0 {
			n := copy(buf[len(b):cap(buf)], rest)
			pos = maskBytes(key, pos, buf[len(b):len(b)+n])
			m, err := c.conn.Write(buf[:len(b)+n])
			total += int64(m)
			if err != nil {
				return total, err
			}
			rest = rest[n:]
			b = buf[:0]
		}
		return total, nil
	})
}

// WriteMessage is a helper method for getting a writer using NextWriter,
// writing the message and closing the writer. A data message goes out as
// one frame, with one write call where the write buffer holds it. It is safe
// to call concurrently with every other write method. Control message types
// are written as by WriteControl with the deadline from SetWriteDeadline.
func (c *Conn) WriteMessage(messageType int, data []byte) error {
	switch messageType {
	case TextMessage, BinaryMessage:
	case CloseMessage, PingMessage, PongMessage:
		return c.WriteControl(messageType, data, c.dataDeadline())
	default:
		return errBadWriteOpCode
	}
	if err := c.lockMessage(c.dataDeadline()); err != nil {
		return err
	}
	defer c.msgLock.unlock()
	if c.willCompressWhole(len(data)) {
		return c.writeCompressedMessage(byte(messageType), data)
	}
	return c.writeWhole(byte(messageType), data)
}

// writeWhole writes data as one final frame. msgLock must be held.
func (c *Conn) writeWhole(opcode byte, data []byte) error {
	if len(data) > c.writeBufSize {
		return c.writeLarge(true, opcode, data)
	}
	wb := c.getWriteBuffer()
	defer c.putWriteBuffer(wb)
	n := copy(wb.b[maxFrameHeaderSize:], data)
	return c.writeFrame(wb.b, n, true, opcode, 0)
}

// Compressed messages (permessage-deflate, RFC 7692). Compression is
// decided per message: for a whole message by its size against
// compressThreshold, for a NextWriter stream at its start. The encoder,
// c.deflate, is guarded by msgLock like the message itself.

// willCompress reports whether the next message would be compressed,
// whatever its size.
func (c *Conn) willCompress() bool {
	return c.deflate != nil && c.writeCompress.Load()
}

// willCompressWhole reports whether a whole message of n bytes would be
// compressed.
func (c *Conn) willCompressWhole(n int) bool {
	return c.willCompress() && n >= c.compressThreshold
}

// syncDeflater applies the level set by SetCompressionLevel (SetLevel is
// a few assignments, so it is simply applied to every message). msgLock
// must be held.
func (c *Conn) syncDeflater() {
	c.deflate.SetLevel(int(c.compressionLevel.Load()))
}

// deflateBound is the most Compress can produce for n bytes of input, plus
// room for the sync flush tail of a fragment.
func deflateBound(n int) int {
	return flate.Bound(n) + len(flate.Tail)
}

// maxDeflateChunk bounds the input compressed into one frame, so that the
// output buffer of a huge message stays within the pooled sizes.
const maxDeflateChunk = 1 << 20

// writeCompressed compresses data as the next part of the message being
// written and sends it as one frame. first puts RSV1 on it (RFC 7692:
// only the first frame of a message carries it); fin ends the message,
// else the frame ends with the complete sync flush so that the next
// part's data continues the stream. msgLock must be held.
func (c *Conn) writeCompressed(data []byte, fin, first bool, opcode byte) error {
	for {
		part := data
		if len(part) > maxDeflateChunk {
			part = part[:maxDeflateChunk]
		}
		last := fin && len(part) == len(data)
		buf := getBuffer(maxFrameHeaderSize + deflateBound(len(part)))
		out := c.deflate.Compress(buf.b[:maxFrameHeaderSize], part)
		if !last {
			out = append(out, flate.Tail...)
		}
		var rsv byte
		if first {
			rsv = rsv1Bit
		}
		err := c.writeFrame(out, len(out)-maxFrameHeaderSize, last, opcode, rsv)
		putBuffer(buf)
		if err != nil {
			return err
		}
		data = data[len(part):]
		if len(data) == 0 {
			return nil
		}
		first, opcode = false, opContinuation
	}
}

// writeCompressedMessage writes data as one compressed message. msgLock
// must be held.
func (c *Conn) writeCompressedMessage(opcode byte, data []byte) error {
	c.syncDeflater()
	return c.writeCompressed(data, true, true, opcode)
}
