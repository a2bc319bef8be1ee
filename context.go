package websocket

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Context-bound calls: ReadMessageContext, NextReaderContext (and, for
// writes and closing, the methods further down). A call bound to a
// context that can be canceled arms a context.AfterFunc whose callback
// moves the network connection's deadline into the past, the same
// machinery SetReadDeadline uses; no goroutine waits for the context.
// What the cancellation then did depends on how far the call had got:
//
//   - nothing of a message consumed (a read waiting for the next frame
//     header; bytes of it already buffered stay buffered): the call
//     returns a *ContextError with Failed false, the deadline the call
//     found is restored, and the connection stays usable;
//   - part of a frame or of a message consumed: the stream cannot be
//     resumed, so the connection is failed (a close frame with
//     CloseInternalServerErr where one can still be sent, then the TCP
//     connection closed) and the error is a *ContextError with Failed
//     true, which is also the permanent read error.
//
// A context whose Done channel is nil (context.Background) binds nothing:
// the call is the plain method.

// ContextError is the error of a call bound to a context that ended
// (canceled or past its deadline) before the call completed. Err is the
// context's error, so errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) work.
//
// Failed tells the two outcomes apart. False: the call stopped before
// anything of a message was consumed or sent; the connection is intact
// and the next call works. True: the context ended in the middle of a
// frame or a message, and the connection has been failed (a close frame
// with CloseInternalServerErr sent where possible, the network
// connection closed); every later read returns this error.
//
// ContextError is an addition to gorilla's API.
type ContextError struct {
	Err    error
	Failed bool
}

func (e *ContextError) Error() string {
	if e.Failed {
		return "websocket: connection failed: " + e.Err.Error()
	}
	return "websocket: " + e.Err.Error()
}

// Unwrap returns the context's error.
func (e *ContextError) Unwrap() error { return e.Err }

// ctxWatch binds one call at a time (the read side has one, the write
// side another) to its context. Its fields are the bound call's, but
// fired, which the AfterFunc callback sets: when stop reports that the
// callback was started, end waits for it (ran), so that no callback
// outlives its call and the call knows whether it moved a deadline. The
// callback is made once per Conn, so a call allocates only what
// context.AfterFunc does.
type ctxWatch struct {
	ctx   context.Context
	fired bool
	cb    func()
	ran   chan struct{}
}

// init makes the callback, which runs fire; once per watch.
func (w *ctxWatch) init(fire func()) {
	w.ran = make(chan struct{}, 1)
	w.cb = func() {
		fire()
		w.fired = true
		w.ran <- struct{}{}
	}
}

// start binds the calling goroutine's call to ctx: once ctx is done,
// the callback runs, on a goroutine of its own.
func (w *ctxWatch) start(ctx context.Context) (stop func() bool) {
	w.ctx, w.fired = ctx, false
	return context.AfterFunc(ctx, w.cb)
}

// end unbinds the call and reports whether fire ran for it.
func (w *ctxWatch) end(stop func() bool) bool {
	if !stop() {
		<-w.ran
	}
	w.ctx = nil
	return w.fired
}

// ReadMessageContext is ReadMessage bounded by ctx. If ctx ends while the
// read waits for the next message, it returns a *ContextError with Failed
// false and the connection stays usable: the next read gets the next
// message. If ctx ends after part of the message has been read, the
// connection is failed and the error is a *ContextError with Failed true.
// A deadline in ctx and the one set by SetReadDeadline compose (the
// earlier one ends the read), and the call leaves the read deadline as it
// found it. See ContextError.
//
// ReadMessageContext is an addition to gorilla's API.
func (c *Conn) ReadMessageContext(ctx context.Context) (messageType int, p []byte, err error) {
	if ctx.Done() == nil {
		return c.ReadMessage()
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.checkReadContext(ctx); err != nil {
		return 0, nil, err
	}
	stop := c.startReadContext(ctx)
	messageType, p, err = c.readMessage()
	c.endReadContext(stop)
	return messageType, p, err
}

// NextReaderContext is NextReader with the wait for the next message
// bounded by ctx, with the outcomes ReadMessageContext describes. The
// context bounds NextReaderContext alone: reads from the returned reader
// are bounded by SetReadDeadline, not by ctx. A NextReaderContext that has
// to skip the unread rest of the previous message and is canceled while
// doing so fails the connection.
//
// NextReaderContext is an addition to gorilla's API.
func (c *Conn) NextReaderContext(ctx context.Context) (messageType int, r io.Reader, err error) {
	if ctx.Done() == nil {
		return c.NextReader()
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if err := c.checkReadContext(ctx); err != nil {
		return 0, nil, err
	}
	stop := c.startReadContext(ctx)
	messageType, mr, err := c.nextReader()
	c.endReadContext(stop)
	if err != nil {
		return 0, nil, err
	}
	return messageType, mr, nil
}

// checkReadContext returns the error a context-bound read meets before
// it starts: the Conn's own first, then the context's.
func (c *Conn) checkReadContext(ctx context.Context) error {
	if _, ok := c.conn.(engineServed); ok {
		return errEngineRead
	}
	if c.readErr != nil {
		return c.readErr
	}
	if err := ctx.Err(); err != nil {
		return &ContextError{Err: err}
	}
	return nil
}

// startReadContext binds a read to ctx.
func (c *Conn) startReadContext(ctx context.Context) (stop func() bool) {
	if c.rwatch.cb == nil {
		c.rwatch.init(c.fireRead)
	}
	return c.rwatch.start(ctx)
}

// fireRead ends a blocked read: the callback of a canceled read context.
func (c *Conn) fireRead() { c.conn.SetReadDeadline(aLongTimeAgo) }

// endReadContext unbinds a context-bound read and, if the context moved
// the read deadline, puts back the one SetReadDeadline set.
func (c *Conn) endReadContext(stop func() bool) {
	if !c.rwatch.end(stop) || c.readErr != nil {
		return
	}
	var t time.Time
	if d := c.readDeadline.Load(); d != 0 {
		t = time.Unix(0, d)
	}
	c.conn.SetReadDeadline(t)
}

// readCanceled decides what a network read error means for a read bound
// to a context (readFailed calls it): nil when the context has not ended
// or the error is not a timeout (the plain rules apply), else the
// *ContextError to return. Between messages (msgType 0: only frame
// headers, and whole control frames, have been consumed) the connection
// stays usable, and the error is not recorded; otherwise the connection
// is failed.
func (c *Conn) readCanceled(err error) error {
	cerr := c.rwatch.ctx.Err()
	if cerr == nil || !isTimeout(err) {
		return nil
	}
	if c.msgType == 0 {
		return &ContextError{Err: cerr}
	}
	return c.fail(CloseInternalServerErr, "read canceled", &ContextError{Err: cerr, Failed: true})
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
