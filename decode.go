package websocket

// The read side's protocol core. Everything here works on bytes it is
// handed and never reads from the network: decodeFrame says how many bytes
// it needs when it has too few, and the rest acts on what was decoded. So
// the rules of RFC 6455 (fragmentation, reserved bits, control frames,
// the read limit, UTF-8) live in one place whoever does the reading: today
// the blocking reader in read.go, which fills its buffer with what
// decodeFrame asks for; an event loop that decodes whatever the socket
// delivered can drive the same functions.
//
// The order of a frame: decodeFrame parses it and the caller consumes its
// bytes; applyFrame then handles a control frame or makes a data frame the
// current one; the data frame's payload passes through payloadArrived (as
// it arrives, unmasked in place) and received (as the application gets
// it: after inflating, for a compressed message); finishMessage ends the
// message.

// decodeFrame parses the frame at the front of b: its header and, for a
// control frame, its payload too, which must arrive whole before the frame
// is handled. It returns the header, a control frame's (still masked)
// payload, a slice of b, and how many bytes of b the frame takes: header
// and control payload; a data frame's payload follows. When b holds too
// little, need > 0 is the length b must reach, at most
// maxFrameHeaderSize+maxControlPayload, and nothing else is returned. A
// header that breaks the protocol fails the connection.
func (c *Conn) decodeFrame(b []byte) (h frameHeader, ctrl []byte, n, need int, err error) {
	if len(b) < 2 {
		return h, nil, 0, 2, nil
	}
	if hl := frameHeaderLen(b[0], b[1]); len(b) < hl {
		return h, nil, 0, hl, nil
	}
	h, n, perr := parseFrameHeader(b)
	if perr == nil {
		perr = checkFrameHeader(&h, c.isServer, c.allowedRSV())
	}
	if perr != nil {
		return h, nil, 0, 0, c.failProtocol(perr)
	}
	if isControl(h.opcode) {
		// checkFrameHeader bounds a control payload to 125 bytes.
		end := n + int(h.length)
		if len(b) < end {
			return h, nil, 0, end, nil
		}
		return h, b[n:end], end, 0, nil
	}
	return h, nil, n, 0, nil
}

// allowedRSV returns the RSV bits a received frame may carry: none unless
// an extension that defines them was negotiated.
func (c *Conn) allowedRSV() byte {
	if c.inflate != nil {
		return rsv1Bit
	}
	return 0
}

// applyFrame acts on h and ctrl, a frame decodeFrame returned, once its
// bytes have been consumed: the frame counts as a sign of life for the
// keepalive, a control frame is handled, a data frame becomes the
// current frame. It reports whether h was a data frame. ctrl
// is copied before anything else happens, so it may point into a buffer
// that handling the frame releases.
func (c *Conn) applyFrame(h *frameHeader, ctrl []byte) (data bool, err error) {
	c.markHeard()
	if !isControl(h.opcode) {
		return true, c.startDataFrame(h)
	}
	var buf [maxControlPayload]byte
	p := buf[:copy(buf[:], ctrl)]
	if h.masked {
		maskBytes(h.key, 0, p)
	}
	return false, c.handleControl(h.opcode, p)
}

// handleControl acts on a control frame with the unmasked payload p.
func (c *Conn) handleControl(opcode byte, p []byte) error {
	switch opcode {
	case opPing:
		var err error
		if c.handlePing == nil {
			err = c.answerPing(p)
		} else {
			err = c.handlePing(string(p))
		}
		if err != nil {
			return c.endRead(err)
		}
	case opPong:
		if c.handlePong != nil {
			if err := c.handlePong(string(p)); err != nil {
				return c.endRead(err)
			}
		}
	case opClose:
		return c.receiveClose(p)
	}
	return nil
}

// startDataFrame makes the data frame h the current frame. It enforces
// the fragmentation rules, starts a message on a first frame, and counts
// a plain message against the read limit before its payload is read.
func (c *Conn) startDataFrame(h *frameHeader) error {
	switch {
	case h.opcode == opContinuation && c.msgType == 0:
		return c.failProtocol(&ProtocolError{Code: CloseProtocolError, Reason: "continuation frame without a message to continue"})
	case h.opcode != opContinuation && c.msgType != 0:
		return c.failProtocol(&ProtocolError{Code: CloseProtocolError, Reason: "new data frame inside an unfinished message"})
	}
	compressed := h.rsv&rsv1Bit != 0
	if compressed && h.opcode == opContinuation {
		return c.failProtocol(&ProtocolError{Code: CloseProtocolError, Reason: "RSV1 set on a continuation frame"})
	}
	if h.opcode != opContinuation {
		c.msgType = h.opcode
		c.msgLen = 0
		c.utf8.reset()
		c.msgCompressed = compressed
	}
	// The limit applies to what the application receives: for a
	// compressed message that is the inflated size, counted as it is
	// delivered (received).
	if !c.msgCompressed {
		if err := c.countMessage(h.length); err != nil {
			return err
		}
	}
	c.frameLeft = h.length
	c.frameFinal = h.fin
	c.frameMask = h.masked
	c.frameKey = h.key
	c.maskPos = 0
	if compressed {
		c.inflate.Start()
	}
	return nil
}

// payloadArrived accounts for p, the next bytes of the current frame's
// payload: it unmasks them in place, and they count as a sign of life.
func (c *Conn) payloadArrived(p []byte) {
	c.markHeard()
	c.frameLeft -= int64(len(p))
	if c.frameMask {
		c.maskPos = uint8(maskBytes(c.frameKey, int(c.maskPos), p))
	}
}

// received checks p, the next bytes of the current message as the
// application receives them (a plain message's payload, a compressed
// one's inflated output): the only UTF-8 check of message data, and the
// read limit's for a compressed message.
func (c *Conn) received(p []byte) error {
	if c.msgCompressed {
		if err := c.countMessage(int64(len(p))); err != nil {
			return err
		}
	}
	if c.msgType == TextMessage && !c.utf8.write(p) {
		return c.failProtocol(&ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"})
	}
	return nil
}

// countMessage adds n bytes to the current message's size, which fails
// the connection once it passes the read limit: for a plain message the
// lengths its frame headers announce, before the payload is read; for a
// compressed one the inflated bytes as they are delivered.
func (c *Conn) countMessage(n int64) error {
	if c.readLimit > 0 && n > c.readLimit-c.msgLen {
		return c.fail(CloseMessageTooBig, "", ErrReadLimit)
	}
	c.msgLen = addSat(c.msgLen, n)
	return nil
}

// finishMessage checks the end of the current message, whose last frame's
// payload has all been received, and leaves the Conn between messages.
func (c *Conn) finishMessage() error {
	if c.msgType == TextMessage && !c.utf8.complete() {
		return c.failProtocol(&ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"})
	}
	c.msgType = 0
	c.msgCompressed = false
	return nil
}
