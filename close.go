package websocket

import (
	"errors"
	"net"
	"time"
)

// Closing (RFC 6455 section 7): the closing handshake, started here
// (CloseGracefully) or by the peer (receiveClose); failing the connection
// when the peer breaks the protocol (fail); closing the network
// connection (Close, closeNet); and how goroutines blocked on the
// connection learn that it has ended (endRead, readEnd, closedChan).
//
// A close frame is sent at most once (closeSent, under frameLock); a
// received one is recorded in closeRecvd. Whatever ends the read side goes
// through endRead, and whatever closes the network connection through
// markWriteClosed, so that a CloseGracefully or a writer waiting in
// another goroutine is woken exactly once.

// Close closes the underlying network connection without sending or waiting
// for a close message. It is safe to call concurrently with any method and
// more than once; calls after the first, and calls after the library closed
// the connection itself (having failed it, or completed the closing
// handshake as the server), return nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.conn.Close()
	c.markWriteClosed()
	if c.deflate != nil {
		c.deflate.Close()
	}
	return err
}

// closedChan returns a channel that is closed once the network connection
// is closed and writes fail.
func (c *Conn) closedChan() <-chan struct{} {
	c.closeWaitMu.Lock()
	defer c.closeWaitMu.Unlock()
	return lazyChan(&c.closedCh, c.writesClosed)
}

// lazyChan returns *ch, making it first if it is nil, already closed if
// done: the channels waiters on a Conn's end get are made only when a
// waiter asks. closeWaitMu must be held.
func lazyChan(ch *chan struct{}, done bool) <-chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
		if done {
			close(*ch)
		}
	}
	return *ch
}

// markWriteClosed makes further writes fail with net.ErrClosed, and stops
// the keepalive. The
// network connection must be closed first: a writer blocked in a write to
// a peer that stopped reading holds frameLock until the close ends that
// write.
func (c *Conn) markWriteClosed() {
	c.stopKeepAlive()
	c.frameLock.lockWait()
	if c.writeErr == nil {
		c.writeErr = net.ErrClosed
	}
	c.frameLock.unlock()
	c.closeWaitMu.Lock()
	c.writesClosed = true
	if c.closedCh != nil {
		close(c.closedCh)
	}
	if c.closeWait != nil && !c.readEnded {
		close(c.closeWait)
	}
	c.closeWaitMu.Unlock()
}

// CloseGracefully performs the closing handshake: it sends a close frame
// with code and text, waits at most timeout for the peer's close frame, and
// then closes the network connection. Data messages that arrive meanwhile
// are discarded. If another goroutine is blocked in a read method, that
// goroutine keeps reading and CloseGracefully waits for it to see the
// peer's close. The returned error is nil when the peer answered in time.
func (c *Conn) CloseGracefully(code int, text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	err := c.WriteControl(CloseMessage, FormatCloseMessage(code, text), deadline)
	if err != nil && !errors.Is(err, ErrCloseSent) {
		c.Close()
		if c.closeSent.Load() && c.closeRecvd.Load() {
			// The handshake completed before this call, and a server
			// Conn closed the network connection then; that is the
			// error WriteControl met.
			return nil
		}
		return err
	}
	if c.readMu.TryLock() {
		// Nobody else reads: drain until the peer's close arrives. A
		// reader that comes later waits for the drain and then sees
		// its outcome.
		c.conn.SetReadDeadline(deadline)
		for c.readErr == nil {
			c.nextReader()
		}
		readErr := c.readErr
		c.readMu.Unlock()
		err = nil
		if !c.closeRecvd.Load() {
			// The drain ended without the peer's close: the deadline
			// passed, or the peer went away (a *CloseError with
			// CloseAbnormalClosure).
			err = readErr
		}
		c.Close()
		return err
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-c.readEnd():
		err = c.readEndError()
	case <-t.C:
		err = errCloseTimeout
	}
	c.Close()
	return err
}

// readEnd returns a channel that is closed once the read side has ended
// (the peer's close frame read, or the read failed) or the connection has
// been closed.
func (c *Conn) readEnd() <-chan struct{} {
	c.closeWaitMu.Lock()
	defer c.closeWaitMu.Unlock()
	return lazyChan(&c.closeWait, c.readEnded || c.writesClosed)
}

// readEndError returns what CloseGracefully reports once readEnd is
// closed: nil when the peer's close frame arrived, else the read's error,
// or net.ErrClosed when the connection was closed first.
func (c *Conn) readEndError() error {
	if c.closeRecvd.Load() {
		return nil
	}
	c.closeWaitMu.Lock()
	defer c.closeWaitMu.Unlock()
	if c.readEndErr != nil {
		return c.readEndErr
	}
	return net.ErrClosed
}

// endRead makes err the permanent read error, and tells a CloseGracefully
// waiting on another goroutine that the read side has ended. It returns
// err.
func (c *Conn) endRead(err error) error {
	c.readErr = err
	c.closeWaitMu.Lock()
	if !c.readEnded {
		c.readEnded, c.readEndErr = true, err
		if c.closeWait != nil && !c.writesClosed {
			close(c.closeWait)
		}
	}
	c.closeWaitMu.Unlock()
	return err
}

var errCloseTimeout = &netError{msg: "websocket: timed out waiting for the peer's close frame", timeout: true}

// receiveClose acts on the peer's close frame, whose payload is p: it runs
// the close handler (by default, answering with the same code), ends the
// read side with a *CloseError (or the handler's error), and, on a server
// that has sent its own close frame, closes the network connection.
func (c *Conn) receiveClose(p []byte) error {
	code, text, perr := parseClosePayload(p)
	if perr != nil {
		return c.failProtocol(perr)
	}
	c.closeRecvd.Store(true)
	var err error = &CloseError{Code: code, Text: text}
	var herr error
	if c.handleClose == nil {
		herr = c.defaultCloseHandler(code, text)
	} else {
		herr = c.handleClose(code, text)
	}
	if herr != nil {
		err = herr
	}
	c.endRead(err)
	// The closing handshake is complete once both close frames have
	// passed; the server then closes TCP first (RFC 6455 section 7.1.1)
	// so that the client is spared the TIME_WAIT.
	if c.isServer && c.closeSent.Load() {
		c.closeNet()
	}
	return err
}

func (c *Conn) defaultCloseHandler(code int, text string) error {
	msg := FormatCloseMessage(code, "")
	c.WriteControl(CloseMessage, msg, time.Now().Add(closeWriteWait))
	return nil
}

// failProtocol fails the connection because the peer broke the protocol.
func (c *Conn) failProtocol(perr *ProtocolError) error {
	reason := perr.Reason
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	return c.fail(perr.Code, reason, perr)
}

// fail fails the connection (RFC 6455 section 7.1.7): it sends a close frame
// with code and reason, best effort and bounded in time, closes the network
// connection and makes err the permanent read error.
func (c *Conn) fail(code int, reason string, err error) error {
	c.endRead(err)
	var payload [maxControlPayload]byte
	payload[0], payload[1] = byte(code>>8), byte(code)
	n := 2 + copy(payload[2:], reason)
	c.writeControl(CloseMessage, payload[:n], time.Now().Add(closeWriteWait))
	c.closeNet()
	return err
}

// closeNet closes the network connection on the library's own account.
func (c *Conn) closeNet() {
	if !c.closed.Swap(true) {
		c.conn.Close()
		c.markWriteClosed()
	}
}
