package websocket

import (
	"errors"
	"io"
	"math"

	"github.com/wsforge/websocket/internal/flate"
)

// messageReader is the io.Reader NextReader returns. A Conn owns two and
// hands them out in turn, so that getting a reader allocates nothing. The
// reader of the previous message therefore sees io.EOF; one kept longer
// shares its object with the current message's reader, which is why the
// documentation forbids using it.
type messageReader struct {
	c  *Conn
	id uint64
}

// NextReader returns the next data message received from the peer. The
// returned messageType is either TextMessage or BinaryMessage.
//
// There can be at most one open reader on a connection. NextReader discards
// the previous message if the application has not already consumed it. The
// reader returns io.EOF at the end of the message, and must not be used
// after the next call to NextReader (the previous message's reader then
// returns io.EOF; readers are recycled, so an older one is not detected).
//
// Control frames that arrive before or inside the message are handled here
// and in the reader's Read, by the ping, pong and close handlers.
//
// Applications must break out of the application's read loop when this
// method returns a non-nil error value. Errors returned from this method
// are permanent. Once this method returns a non-nil error, all subsequent
// calls to this method return the same error. The error is a *CloseError
// when the peer closed the connection (Code CloseAbnormalClosure when it
// went away without a close frame), a *ProtocolError when the peer broke
// the protocol, ErrReadLimit, or the network error.
func (c *Conn) NextReader() (messageType int, r io.Reader, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.nextReader()
}

func (c *Conn) nextReader() (int, *messageReader, error) {
	if _, ok := c.conn.(engineServed); ok {
		return 0, nil, errEngineRead
	}
	c.readerID++ // invalidates the reader of the previous message
	for c.readErr == nil {
		if c.msgType != 0 {
			// Skip what remains of the previous message; its frames are
			// still checked, so a bad message fails the connection even
			// when the application ignores it.
			if err := c.discardMessage(); err != nil {
				return 0, nil, err
			}
			continue
		}
		if err := c.nextDataFrame(); err != nil {
			return 0, nil, err
		}
		c.readerSlot ^= 1
		r := &c.readers[c.readerSlot]
		r.id = c.readerID
		return int(c.msgType), r, nil
	}
	return 0, nil, c.readErr
}

// discardMessage skips the rest of the current message. Its payload is
// still unmasked and checked, in place in the read buffer, so a bad message
// fails the connection even when the application ignores it.
func (c *Conn) discardMessage() error {
	if c.msgCompressed {
		// Inflate it all the same: with context takeover the next
		// message may refer back into this one.
		scratch := getBuffer(defaultReadBufferSize)
		defer putBuffer(scratch)
		for {
			if _, err := c.readMessageData(scratch.b); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
	}
	for {
		p, err := c.payloadRun()
		if err == nil {
			err = c.received(p)
		} else if err == io.EOF {
			err = c.endMessage()
		}
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// Read reads message data. It returns io.EOF at the end of the message and
// after the reader has been superseded by a newer NextReader call.
func (r *messageReader) Read(p []byte) (int, error) {
	c := r.c
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if r.id != c.readerID {
		return 0, io.EOF
	}
	if w := c.rwatch; w != nil && w.msg != nil && w.msgID == r.id {
		return c.readBound(p)
	}
	return c.readMessageData(p)
}

// readMessageData reads the current message's payload into p, moving to the
// message's next frame when one ends. At the end of the message it returns
// io.EOF and leaves the Conn between messages.
func (c *Conn) readMessageData(p []byte) (int, error) {
	for c.readErr == nil {
		if c.msgCompressed {
			return c.readInflated(p)
		}
		if c.frameLeft > 0 {
			if len(p) == 0 {
				return 0, nil
			}
			return c.readPayload(p)
		}
		if c.frameFinal {
			return 0, c.endMessage()
		}
		if err := c.nextDataFrame(); err != nil {
			return 0, err
		}
	}
	return 0, c.readErr
}

// endMessage checks the end of the current message and leaves the Conn
// between messages. It returns io.EOF, or the error that failed the
// connection.
func (c *Conn) endMessage() error {
	if err := c.finishMessage(); err != nil {
		return err
	}
	c.readerID++
	c.releaseReadBuf()
	return io.EOF
}

// readPayload moves up to len(p) bytes of the current frame's payload into
// p, unmasking and validating them on the way. Payload already buffered is
// copied; a large read with nothing buffered goes straight from the network
// into p, skipping the read buffer.
func (c *Conn) readPayload(p []byte) (int, error) {
	if int64(len(p)) > c.frameLeft {
		p = p[:c.frameLeft]
	}
	var n int
	var rerr error
	switch {
	case c.rend > c.rpos:
		n = copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
	case len(p) >= c.readBufSize:
		n, rerr = c.conn.Read(p)
	default:
		if err := c.fill(1); err != nil {
			return 0, err
		}
		n = copy(p, c.rbuf[c.rpos:c.rend])
		c.rpos += n
	}
	c.payloadArrived(p[:n])
	if err := c.received(p[:n]); err != nil {
		return 0, err
	}
	if rerr != nil && (n == 0 || c.frameLeft > 0) {
		if n == 0 {
			return 0, c.readFailed(rerr)
		}
		// Deliver what arrived; the error comes back on the next read.
		c.readFailed(rerr)
	}
	return n, nil
}

// payloadRun returns the next run of the current message's payload from
// the read buffer, unmasked, moving on to the message's next frame as
// needed; io.EOF at the message's end. A run is never empty and stays
// valid until the next read from the network. It feeds c.inflate, and
// discardMessage skips a plain message with it.
func (c *Conn) payloadRun() ([]byte, error) {
	for c.frameLeft == 0 {
		if c.frameFinal {
			return nil, io.EOF
		}
		if err := c.nextDataFrame(); err != nil {
			return nil, err
		}
	}
	if err := c.fill(1); err != nil {
		return nil, err
	}
	n := c.rend - c.rpos
	if int64(n) > c.frameLeft {
		n = int(c.frameLeft)
	}
	p := c.rbuf[c.rpos : c.rpos+n]
	c.rpos += n
	c.payloadArrived(p)
	return p, nil
}

// errInvalidCompressed fails a message whose compressed data does not
// inflate; the Autobahn suite expects 1007 for it.
var errInvalidCompressed = &ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid compressed data"}

// readInflated is readMessageData for a compressed message.
func (c *Conn) readInflated(p []byte) (int, error) {
	if len(p) == 0 && !c.inflate.Drained() {
		return 0, nil
	}
	n, err := c.inflate.Read(p)
	switch {
	case err == io.EOF:
		return 0, c.endMessage()
	case err != nil:
		return 0, c.inflateFailed(err)
	}
	if err := c.received(p[:n]); err != nil {
		c.inflate.Abort()
		return 0, err
	}
	return n, nil
}

// inflateFailed returns the read error for an error of the decoder:
// payloadRun's failed the connection already, corrupt data fails it here.
func (c *Conn) inflateFailed(err error) error {
	if c.readErr != nil {
		return c.readErr
	}
	if err == flate.ErrCorrupt {
		return c.failProtocol(errInvalidCompressed)
	}
	return c.readFailed(err)
}

// nextDataFrame reads frame headers, handling control frames, until the
// header of a data frame is read and loaded as the current frame: the
// blocking driver of decodeFrame, filling the read buffer with what it
// asks for.
func (c *Conn) nextDataFrame() error {
	for c.readErr == nil {
		h, ctrl, n, need, err := c.decodeFrame(c.rbuf[c.rpos:c.rend])
		if err != nil {
			return err
		}
		if need > 0 {
			if err := c.fill(need); err != nil {
				return err
			}
			continue
		}
		c.rpos += n
		if data, err := c.applyFrame(&h, ctrl); data || err != nil {
			return err
		}
	}
	return c.readErr
}

// fill makes at least n bytes (n <= readBufSize) available in
// rbuf[rpos:rend], reading from the network as needed. A failure is
// recorded as the connection's read error.
func (c *Conn) fill(n int) error {
	if c.rend-c.rpos >= n {
		return nil
	}
	if c.rb == nil {
		// Nothing buffered and no buffer held: typically a connection
		// waiting for its next message.
		if done, err := c.fillIdle(); done {
			if err != nil {
				return c.readFailed(err)
			}
			if c.rend-c.rpos >= n {
				return nil
			}
		} else {
			c.rb = getBuffer(c.readBufSize)
			c.rbuf = c.rb.b
		}
	}
	if len(c.rbuf)-c.rpos < n {
		c.rend = copy(c.rbuf, c.rbuf[c.rpos:c.rend])
		c.rpos = 0
	}
	for c.rend-c.rpos < n {
		m, err := c.conn.Read(c.rbuf[c.rend:])
		c.rend += m
		if err != nil && c.rend-c.rpos < n {
			return c.readFailed(err)
		}
	}
	return nil
}

// releaseReadBuf returns the read buffer to its pool when it holds no
// unread bytes, so that an idle connection does not keep it.
func (c *Conn) releaseReadBuf() {
	if c.rpos == c.rend && c.rb != nil {
		putBuffer(c.rb)
		c.rb, c.rbuf = nil, nil
		c.rpos, c.rend = 0, 0
	}
}

// readFailed records a network read error as the connection's read error.
// A peer that went away without a close frame yields a *CloseError with
// CloseAbnormalClosure, as with gorilla.
//
// A read that failed because keepalive closed the connection reports
// ErrKeepAliveTimeout instead: the timer closed it, and this is where
// the reading goroutine learns why.
func (c *Conn) readFailed(err error) error {
	if c.kaExpired.Load() {
		return c.endRead(ErrKeepAliveTimeout)
	}
	if c.rwatch != nil && c.rwatch.ctx != nil {
		if cerr := c.readCanceled(err); cerr != nil {
			return cerr
		}
	}
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if eof {
		err = errUnexpectedEOF
	}
	// The read error first: a CloseGracefully waiting on this read must
	// learn how the read ended, not only that the Conn closed.
	c.endRead(err)
	if eof {
		c.closeNet()
	}
	return err
}

// ReadMessage is a helper method for getting a reader using NextReader and
// reading from that reader to a buffer. The returned slice is newly
// allocated and owned by the caller.
//
// The slice is sized from what has arrived, never from the length a frame
// header announces alone: it starts at most a read buffer's worth above
// sixteen times the bytes already buffered, and grows geometrically as
// payload arrives, so a peer that announces a huge message and sends
// little costs little, and no fragmentation pattern makes the copying
// worse than linear.
func (c *Conn) ReadMessage() (messageType int, p []byte, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.readMessage()
}

// readMessage is ReadMessage with readMu held.
func (c *Conn) readMessage() (messageType int, p []byte, err error) {
	messageType, _, err = c.nextReader()
	if err != nil {
		return 0, nil, err
	}
	size := c.initialMessageCap()
	if c.msgCompressed {
		// Inflate ahead into the window, which holds a message of up to
		// 32 KiB whole, so that the result is allocated once at its
		// size rather than grown from a guess.
		n, err := c.inflate.DecodeAhead()
		if err != nil {
			return 0, nil, c.inflateFailed(err)
		}
		size = int64(n) + c.inflatedRestEstimate(n)
	}
	p = make([]byte, 0, size)
	for {
		if len(p) == cap(p) && (c.frameLeft > 0 || c.msgCompressed && !c.inflate.Drained()) {
			p = c.growMessage(p)
		}
		n, err := c.readMessageData(p[len(p):cap(p)])
		p = p[:len(p)+n]
		if err == io.EOF {
			return messageType, p, nil
		}
		if err != nil {
			return 0, nil, err
		}
	}
}

// minMessageGrowth is the least ReadMessage grows its result by, so that
// tiny fragments do not cost one allocation each.
const minMessageGrowth = 512

// initialMessageCap sizes ReadMessage's result from the first frame.
func (c *Conn) initialMessageCap() int64 {
	return c.trustedLen(c.frameLeft, 0)
}

// inflatedRestEstimate guesses how many bytes the current compressed
// message has beyond the n decoded ahead (0 when its stream is complete):
// its frame's unread compressed bytes (as far as trustedLen trusts the
// peer's word) at twice the ratio the first n came at (which the block
// header weighs down), at least four times, plus 512; at most a window.
func (c *Conn) inflatedRestEstimate(n int) int64 {
	if c.inflate.Complete() {
		return 0
	}
	used, unread := c.inflate.InputProgress()
	left := c.trustedLen(c.frameLeft, 0) + unread
	limit := int64(c.inflate.WindowSize())
	est := int64(512)
	if c.frameFinal && used > 0 {
		ratio := max(4, 2*int64(n)/used)
		if left > limit/ratio {
			return limit
		}
		est += left * ratio
	}
	return min(est, limit)
}

// trustedLen returns how much of announced, a length from a frame header,
// may be allocated now for a message of which have bytes are in hand: at
// most trustFactor times those and the bytes in the read buffer, plus a
// read buffer's worth. A header's word alone thus buys no more than the
// read buffer the connection holds while it reads anyway.
func (c *Conn) trustedLen(announced, have int64) int64 {
	return min(announced, trustFactor*(have+int64(c.rend-c.rpos))+int64(c.readBufSize))
}

// trustFactor bounds what a peer gets allocated per byte it has actually
// sent. At 16, a message of up to 64 KiB whose first read buffer (4 KiB by
// default) has arrived is allocated once, at its size.
const trustFactor = 16

// growMessage grows ReadMessage's result p, which is full: everything in
// it has arrived. The new capacity is at most four times that (plus
// minMessageGrowth), and at least twice it while more frames or inflated
// output may follow, so the total copying stays linear in the message size
// however the peer fragments it. When the rest of the message is the rest
// of a final frame, the result grows to exactly its end where that is
// within bounds. It never grows past the read limit.
func (c *Conn) growMessage(p []byte) []byte {
	n := int64(len(p))
	most := 4*n + minMessageGrowth
	want := most
	if !c.msgCompressed {
		// frameLeft is the peer's word: add it without overflow.
		end := addSat(n, c.frameLeft)
		if c.frameFinal {
			want = min(end, most)
		} else {
			want = min(max(end, 2*n+minMessageGrowth), most)
		}
	}
	if c.readLimit > 0 {
		// Past the limit, one byte more is all it takes to fail.
		want = min(want, max(c.readLimit+1, n+1))
	}
	q := make([]byte, len(p), want)
	copy(q, p)
	return q
}

// addSat returns a+b for non-negative a and b, or math.MaxInt64 where the
// sum would overflow. Lengths a peer announces can reach 2^63-1, so sums
// with them go through here.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
