package websocket

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
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
	// msg is the context NextReaderContext or NextWriterContext bound
	// a message to, and msgID that message's reader id or writer seq:
	// each Read, Write or Close of that message is bound to msg in turn.
	msg   context.Context
	msgID uint64
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
// bounded by ctx, with the outcomes ReadMessageContext describes. Each
// Read from the returned reader is bounded by ctx too (and by
// SetReadDeadline, the earlier winning): as the message is then under
// way, a Read that ctx ends while it waits for the network fails the
// connection (a *ContextError with Failed true). A Read served from bytes
// already received does not wait, so it does not look at ctx. A
// NextReaderContext that has to skip the unread rest of the previous
// message and is canceled while doing so fails the connection.
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
	c.rwatch.msg, c.rwatch.msgID = ctx, mr.id
	return messageType, mr, nil
}

// readBound is Read for a reader from NextReaderContext: readMessageData
// bounded by the reader's context. readMu is held.
func (c *Conn) readBound(p []byte) (int, error) {
	w := c.rwatch
	var n int
	var err error
	if !c.msgCompressed && ((c.frameLeft > 0 && c.rend > c.rpos) || (c.frameLeft == 0 && c.frameFinal)) {
		// Served from the buffer, or the message's end: no wait, so
		// nothing for ctx to bound (and no context.AfterFunc to pay).
		n, err = c.readMessageData(p)
	} else {
		stop := c.startReadContext(w.msg)
		n, err = c.readMessageData(p)
		c.endReadContext(stop)
	}
	if err != nil {
		w.msg = nil // the message ended, or the connection did
	}
	return n, err
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
	if c.rwatch == nil {
		// Made on first use: most connections never bind a read to a
		// context, and every byte of Conn counts for an idle one.
		c.rwatch = new(ctxWatch)
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

// writeContext is the state of a data message written under a context
// (WriteMessageContext). w and sent belong to the writer, which holds
// msgLock; mu guards fired and inFrame, which the AfterFunc callback
// reads and sets: the callback moves the write deadline into the past
// only while a frame of this message is being written, so that a frame
// of another goroutine (a pong, a WriteControl) is never cut.
type writeContext struct {
	w       ctxWatch
	sent    bool // a frame of the message went out whole
	mu      sync.Mutex
	fired   bool
	inFrame bool
}

// WriteMessageContext is WriteMessage bounded by ctx. If ctx ends before
// anything of the message has been sent (while the call waits for
// another writer to finish, or for the socket), it returns a
// *ContextError with Failed false and the connection stays usable. If
// ctx ends while the message is being sent, the connection is failed
// (a close frame with CloseInternalServerErr sent where the stream still
// allows one, the network connection closed) and the error is a
// *ContextError with Failed true. A deadline in ctx and the one set by
// SetWriteDeadline compose: the earlier one ends the write; the
// deadline SetWriteDeadline set stays in effect for later writes.
// Control message types are written as by WriteControl, with the
// earlier of the two deadlines; cancelling ctx ends their wait for
// another writer (a *ContextError with Failed false, nothing sent), but
// not the write of the frame itself, at most 131 bytes, which only the
// deadline bounds. See ContextError.
//
// WriteMessageContext is an addition to gorilla's API.
func (c *Conn) WriteMessageContext(ctx context.Context, messageType int, data []byte) error {
	if ctx.Done() == nil {
		return c.WriteMessage(messageType, data)
	}
	switch messageType {
	case TextMessage, BinaryMessage:
	case CloseMessage, PingMessage, PongMessage:
		return c.writeControlContext(ctx, messageType, data)
	default:
		return errBadWriteOpCode
	}
	if err := c.lockMessageContext(ctx); err != nil {
		return err
	}
	defer c.msgLock.unlock()
	stop := c.startWriteContext(ctx)
	var err error
	if c.willCompressWhole(len(data)) {
		err = c.writeCompressedMessage(byte(messageType), data)
	} else {
		err = c.writeWhole(byte(messageType), data)
	}
	c.wctx.w.end(stop)
	return err
}

// NextWriterContext is NextWriter with the wait for the message lock
// (another goroutine's message being written) bounded by ctx: if ctx ends
// first, it returns a *ContextError with Failed false and nothing is
// sent. Each Write and Close of the returned writer that sends a frame is
// bounded by ctx too (and by SetWriteDeadline, the earlier winning), with
// WriteMessageContext's outcomes: if ctx ends before any frame of the
// message went out, the message is dropped (the write and Close return a
// *ContextError with Failed false) and the connection stays usable;
// after that, the connection is failed (Failed true). Writes that only
// fill the write buffer do not look at ctx.
//
// NextWriterContext is an addition to gorilla's API.
func (c *Conn) NextWriterContext(ctx context.Context, messageType int) (io.WriteCloser, error) {
	if ctx.Done() == nil {
		return c.NextWriter(messageType)
	}
	switch messageType {
	case TextMessage, BinaryMessage, CloseMessage, PingMessage, PongMessage:
	default:
		return nil, errBadWriteOpCode
	}
	if err := c.lockMessageContext(ctx); err != nil {
		return nil, err
	}
	r, err := c.openWriter(messageType, writerIdle)
	if err != nil {
		return nil, err
	}
	if isControl(byte(messageType)) {
		// Sent as WriteControl on Close, under the write deadline.
		return r, nil
	}
	if c.wctx == nil {
		// Made on first use; msgLock is held.
		c.wctx = new(writeContext)
		c.wctx.w.init(c.fireWrite)
	}
	x := c.wctx
	x.w.msg, x.w.msgID, x.sent = ctx, r.seq, false
	return r, nil
}

// bindWriter binds a call on the writer of message seq to the context
// NextWriterContext gave it, if any; unbindWriter ends the binding.
func (c *Conn) bindWriter(seq uint64) (stop func() bool) {
	x := c.wctx
	if x == nil || x.w.msg == nil || x.w.msgID != seq {
		return nil
	}
	x.mu.Lock()
	x.fired, x.inFrame = false, false
	x.mu.Unlock()
	return x.w.start(x.w.msg)
}

func (c *Conn) unbindWriter(stop func() bool) {
	if stop != nil {
		c.wctx.w.end(stop)
	}
}

// lockMessageContext is lockMessage with the wait bounded by ctx as well.
func (c *Conn) lockMessageContext(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &ContextError{Err: err}
	}
	if c.msgLock.tryLock() {
		return nil
	}
	if c.closeIdleWriter() {
		return nil
	}
	err := c.msgLock.lock2(c.dataDeadline(), c.closedChan(), ctx.Done())
	if err == errLockCanceled {
		return &ContextError{Err: ctx.Err()}
	}
	return err
}

// startWriteContext binds the message being written (msgLock held) to
// ctx.
func (c *Conn) startWriteContext(ctx context.Context) (stop func() bool) {
	if c.wctx == nil {
		// Made on first use, as rwatch is; msgLock is held.
		c.wctx = new(writeContext)
		c.wctx.w.init(c.fireWrite)
	}
	x := c.wctx
	x.w.msg = nil // a whole message: no NextWriterContext writer is open
	x.sent = false
	x.mu.Lock()
	x.fired, x.inFrame = false, false
	x.mu.Unlock()
	return x.w.start(ctx)
}

// fireWrite is the callback of a canceled write context: it ends the
// frame of the bound message being written, if one is.
func (c *Conn) fireWrite() {
	x := c.wctx
	x.mu.Lock()
	x.fired = true
	if x.inFrame {
		c.conn.SetWriteDeadline(aLongTimeAgo)
	}
	x.mu.Unlock()
}

// sendFrameContext is sendFrame for a data frame of a message bound to a
// context: the wait for frameLock ends with the context too, a frame is
// not started once the context has ended, and a write the context cut
// short fails the connection unless nothing of the message went out.
func (c *Conn) sendFrameContext(deadline time.Time, write func() (int64, error)) error {
	x := c.wctx
	if err := c.frameLock.lock(deadline, x.w.ctx.Done()); err != nil {
		if err == net.ErrClosed {
			return c.writeCanceled(0)
		}
		return err
	}
	if err := c.beginFrame(deadline); err != nil {
		c.frameLock.unlock()
		return err
	}
	x.mu.Lock()
	if x.fired {
		x.mu.Unlock()
		c.frameLock.unlock()
		return c.writeCanceled(0)
	}
	x.inFrame = true
	x.mu.Unlock()
	n, err := write()
	x.mu.Lock()
	x.inFrame = false
	fired := x.fired
	x.mu.Unlock()
	if fired {
		// The callback moved the deadline: beginFrame applies the
		// right one to the next frame.
		c.appliedDeadline = -1
	}
	switch {
	case err == nil:
		x.sent = true
		c.frameLock.unlock()
		return nil
	case !fired || !isTimeout(err):
		c.writeErr = err
		c.frameLock.unlock()
		return err
	}
	if n > 0 {
		c.writeErr = err
	}
	c.frameLock.unlock()
	return c.writeCanceled(n)
}

// writeCanceled returns the error of a write whose context ended after n
// bytes of the current frame went out (frameLock not held). Nothing of
// the message sent: the connection is intact. Otherwise it is failed:
// with a close frame between two frames, without one inside a frame.
func (c *Conn) writeCanceled(n int64) error {
	x := c.wctx
	err := x.w.ctx.Err()
	if err == nil {
		err = context.Canceled
	}
	if n == 0 && !x.sent {
		return &ContextError{Err: err}
	}
	if n == 0 {
		payload := FormatCloseMessage(CloseInternalServerErr, "write canceled")
		c.writeControl(CloseMessage, payload, time.Now().Add(closeWriteWait))
	}
	c.closeNet()
	return &ContextError{Err: err, Failed: true}
}

// writeControlContext writes a control message for WriteMessageContext,
// with the earlier of ctx's deadline and SetWriteDeadline's. Cancelling
// ctx ends the wait for other writers, with nothing sent; the write of
// the frame itself (at most 131 bytes) is bounded by the deadline only.
func (c *Conn) writeControlContext(ctx context.Context, messageType int, data []byte) error {
	if err := ctx.Err(); err != nil {
		return &ContextError{Err: err}
	}
	if messageType != CloseMessage && messageType != PingMessage && messageType != PongMessage {
		return errBadWriteOpCode
	}
	if len(data) > maxControlPayload {
		return errInvalidControl
	}
	deadline := c.dataDeadline()
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	err := c.writeControlDone(messageType, data, deadline, ctx.Done())
	if errors.Is(err, net.ErrClosed) && ctx.Err() != nil && !c.closed.Load() {
		// Given up waiting for the frame lock: nothing was sent.
		return &ContextError{Err: ctx.Err()}
	}
	if err != nil && isTimeout(err) {
		if cerr := timeoutCause(ctx); cerr != nil {
			if !c.writeErrSet() {
				// Timed out before its first byte (see sendFrame).
				return &ContextError{Err: cerr}
			}
			c.closeNet()
			return &ContextError{Err: cerr, Failed: true}
		}
	}
	return err
}

// writeErrSet reports whether writes have failed for good.
func (c *Conn) writeErrSet() bool {
	c.frameLock.lockWait()
	defer c.frameLock.unlock()
	return c.writeErr != nil
}

// CloseContext is CloseGracefully bounded by ctx instead of a timeout: it
// sends a close frame with code and text, waits for the peer's close
// frame until ctx ends, and closes the network connection. The result is
// nil when the peer answered in time, a *ContextError (Failed true: the
// connection was closed without the closing handshake completing) when
// ctx ended first, else what CloseGracefully reports.
//
// CloseContext is an addition to gorilla's API.
func (c *Conn) CloseContext(ctx context.Context, code int, text string) error {
	if err := ctx.Err(); err != nil {
		c.Close()
		return &ContextError{Err: err, Failed: true}
	}
	timeout := noCloseTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	var stop func() bool
	if ctx.Done() != nil {
		// Closing the connection ends the wait, whichever goroutine
		// reads; CloseGracefully closes it anyway.
		stop = context.AfterFunc(ctx, func() { c.Close() })
	}
	err := c.CloseGracefully(code, text, timeout)
	if stop != nil {
		stop()
	}
	if err != nil {
		cerr := ctx.Err()
		if cerr == nil && isTimeout(err) {
			cerr = timeoutCause(ctx)
		}
		if cerr != nil {
			return &ContextError{Err: cerr, Failed: true}
		}
	}
	return err
}

// timeoutCause returns ctx's error for a timeout met at ctx's deadline,
// given to the network connection as its own: ctx's timer may not have
// fired yet when the network connection's did.
func timeoutCause(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// noCloseTimeout is CloseContext's timeout for a context without a
// deadline: long, yet a deadline every clock and time.Time can hold.
const noCloseTimeout = 100 * 365 * 24 * time.Hour
