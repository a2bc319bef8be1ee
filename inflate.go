package websocket

import (
	"compress/flate"
	"errors"
	"io"
	"sync"
)

// Decompressing received messages (RFC 7692 section 7.2.2).
//
// A compressed message's payload is a DEFLATE stream cut after a sync
// flush; appending the four bytes 00 00 ff ff restores the flush, and
// compress/flate inflates the result. With context takeover the peer's
// back-references may reach into earlier messages, so the last 2^bits bytes
// of output are kept as the dictionary for the next message. That window is
// all an idle connection holds: the flate reader itself (about 40 KiB of
// state) comes from a pool for the length of one message.

// deflateTail is the end of the sync flush that RFC 7692 removes from each
// message and the receiver puts back.
var deflateTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// flateReaders pools inflaters between messages, across connections.
var flateReaders sync.Pool

// inflateState is a Conn's decompressor for received messages.
type inflateState struct {
	c        *Conn
	takeover bool

	// window is a ring of the last len(window) bytes of output (nil
	// without context takeover); filled says how much of it is valid and
	// next where the next byte goes.
	window []byte
	filled int
	next   int

	fr   io.ReadCloser // during a message only
	tail int           // bytes of deflateTail already handed to fr
	done bool          // the message's input is used up
	n    int64         // bytes inflated from the current message
}

func newInflateState(c *Conn, takeover bool, windowBits int) *inflateState {
	s := &inflateState{c: c, takeover: takeover}
	if takeover {
		s.window = make([]byte, 1<<windowBits)
	}
	return s
}

// start prepares to inflate a new message.
func (s *inflateState) start() {
	var dict []byte
	if s.takeover && s.filled > 0 {
		// flate wants the dictionary in order: unroll the ring into a
		// pooled buffer for the reset (flate copies it).
		scratch := getBuffer(s.filled)
		defer putBuffer(scratch)
		dict = scratch.b
		if s.filled < len(s.window) {
			copy(dict, s.window[:s.filled])
		} else {
			n := copy(dict, s.window[s.next:])
			copy(dict[n:], s.window[:s.next])
		}
	}
	s.tail, s.done, s.n = 0, false, 0
	if v := flateReaders.Get(); v != nil {
		s.fr = v.(io.ReadCloser)
		s.fr.(flate.Resetter).Reset(s, dict)
	} else {
		s.fr = flate.NewReaderDict(s, dict)
	}
}

// finish ends a message: the flate reader goes back to the pool.
func (s *inflateState) finish() {
	if s.fr != nil {
		flateReaders.Put(s.fr)
		s.fr = nil
	}
}

// remember adds inflated output to the window.
func (s *inflateState) remember(p []byte) {
	if s.window == nil {
		return
	}
	if len(p) >= len(s.window) {
		copy(s.window, p[len(p)-len(s.window):])
		s.next, s.filled = 0, len(s.window)
		return
	}
	n := copy(s.window[s.next:], p)
	if n < len(p) {
		copy(s.window, p[n:])
	}
	s.next = (s.next + len(p)) % len(s.window)
	s.filled += len(p)
	if s.filled > len(s.window) {
		s.filled = len(s.window)
	}
}

// ReadByte gives flate the next byte of compressed input: the payload of
// the message's frames, moving across them, then deflateTail. flate reads
// through io.ByteReader without buffering ahead, so it never takes bytes
// that belong to the next frame.
func (s *inflateState) ReadByte() (byte, error) {
	c := s.c
	for c.frameLeft == 0 {
		if c.frameFinal {
			if s.tail < len(deflateTail) {
				b := deflateTail[s.tail]
				s.tail++
				return b, nil
			}
			s.done = true
			return 0, io.EOF
		}
		if err := c.nextDataFrame(); err != nil {
			return 0, err
		}
	}
	if c.rpos == c.rend {
		if err := c.fill(1); err != nil {
			return 0, err
		}
	}
	b := c.rbuf[c.rpos]
	c.rpos++
	c.frameLeft--
	if c.frameMask {
		b ^= c.frameKey[c.maskPos]
		c.maskPos = (c.maskPos + 1) & 3
	}
	return b, nil
}

// Read gives flate a run of compressed input (it reads stored blocks this
// way).
func (s *inflateState) Read(p []byte) (int, error) {
	c := s.c
	if len(p) == 0 {
		return 0, nil
	}
	if c.frameLeft == 0 {
		b, err := s.ReadByte()
		if err != nil {
			return 0, err
		}
		p[0] = b
		return 1, nil
	}
	return c.readPayload(p)
}

// errInvalidCompressed fails a message whose compressed data does not
// inflate; the Autobahn suite expects 1007 for it.
var errInvalidCompressed = &ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid compressed data"}

// read inflates the current message into p. It returns io.EOF once the
// message's input is used up and its output delivered.
func (s *inflateState) read(p []byte) (int, error) {
	c := s.c
	if s.fr == nil {
		return 0, io.EOF
	}
	n, err := s.fr.Read(p)
	if n > 0 {
		s.n += int64(n)
		if c.readLimit > 0 && s.n > c.readLimit {
			s.finish()
			return 0, c.fail(CloseMessageTooBig, "", ErrReadLimit)
		}
		if c.msgType == TextMessage && !c.utf8.write(p[:n]) {
			s.finish()
			return 0, c.failProtocol(&ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"})
		}
		s.remember(p[:n])
	}
	switch {
	case err == nil:
		return n, nil
	case c.readErr != nil:
		// The frame layer failed (and has answered the peer already).
		s.finish()
		return n, c.readErr
	case (err == io.ErrUnexpectedEOF || err == io.EOF) && s.done:
		// The restored sync flush ends the stream where a next block
		// would start: the message is complete.
		s.finish()
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	case err == io.EOF:
		// A final block (BFINAL) ended the stream; only the tail, never
		// more payload, may follow it.
		for !s.done {
			if _, err := s.ReadByte(); err != nil && !s.done {
				s.finish()
				return n, err
			}
			if s.tail == 0 {
				s.finish()
				return n, c.failProtocol(errInvalidCompressed)
			}
		}
		s.finish()
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	default:
		var ce flate.CorruptInputError
		if errors.As(err, &ce) || err == io.ErrUnexpectedEOF {
			s.finish()
			return n, c.failProtocol(errInvalidCompressed)
		}
		s.finish()
		return n, c.readFailed(err)
	}
}
