package websocket

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// NetConn returns a net.Conn that carries a byte stream over c, for
// tunnelling a protocol written for TCP (gRPC, SSH, a database's wire
// protocol, net/rpc, HTTP/1.1) through a WebSocket. messageType is
// TextMessage or BinaryMessage; NetConn panics on anything else. It is an
// addition to gorilla's API (coder/websocket has a function of the same
// name and purpose).
//
// Writing: each Write sends p as one message of messageType, an empty p
// as an empty message, and returns len(p) once the message has been
// handed to the network. Writes may be called from several goroutines at
// once; their messages never interleave. On a text NetConn each Write must
// be valid UTF-8 on its own (the peer would fail the connection with
// close 1007 otherwise): a Write that is not sends nothing and fails.
//
// Reading: Read returns the bytes of the received messages as one stream,
// as if they had been sent in one piece: a Read returns bytes of one
// message at most, and the next Read continues with the rest of it or
// the next message. Empty messages carry nothing and are skipped. A
// message of the other data type (binary on a text NetConn, or text on a
// binary one) fails the connection with close 1003
// (CloseUnsupportedData), and that Read and every later one return an
// error wrapping a *MessageTypeError. The peer's close frame with 1000
// (CloseNormalClosure), or one without a code (1005, what a browser's
// close() sends), ends the stream: Read then returns io.EOF, unwrapped,
// as a TCP connection does at a clean end. Any other close code, or the
// connection ending without a close frame, is an error wrapping the
// *CloseError (errors.As and IsCloseError see it).
//
// NetConn takes over c's read side: the first Read starts one goroutine
// that reads c's messages (and so runs its ping, pong and close handlers)
// until the connection ends, and hands their bytes to Read through a
// pooled buffer of at most 32 KiB, held only while a message is being
// read. The application must not read c itself, nor set c's read
// deadline, once it has called Read; it may still write control messages
// on c (a ping, say). Read may be called from several goroutines, which
// then take turns. c's read limit (SetReadLimit) applies to each message,
// that is to one Write of the peer. A Conn served by an Engine cannot be
// read this way: Read fails.
//
// Deadlines: SetReadDeadline is the NetConn's own, as on a net.Conn: a
// Read that waits past it returns an error whose Timeout method reports
// true (errors.Is(err, os.ErrDeadlineExceeded) holds too), it interrupts
// Reads already waiting, and the stream stays intact, so that a Read
// after the deadline has been moved continues where the stream stopped.
// (A deadline set on c directly, by contrast, fails c's read side for
// good when it passes, and the NetConn's Reads with it.) Protocol code
// relies on this: net/http's server sets a past read deadline to stop a
// background read after every request. SetWriteDeadline sets c's write
// deadline and applies it to a Write already blocked in the network too.
// A Write that times out while waiting for another goroutine's message to
// go out sends nothing and leaves the connection usable; one that times
// out while its message is being sent leaves the peer with part of a
// frame, so every later Write fails with that error, as c.WriteMessage
// documents. SetDeadline sets both. The setters always return nil.
//
// Closing: Close runs the closing handshake with code 1000: it sends the
// close frame, waits at most 5 seconds for the peer's (a peer NetConn
// answers at once if it is being read), closes the network connection
// and returns nil when the peer answered in time. Reads blocked in other
// goroutines return at once, and later Reads and Writes fail, with an
// error wrapping net.ErrClosed; a Write blocked in the network (a peer
// that stopped reading) holds up the close frame and returns when the
// network connection is closed, 5 seconds later at the most. Where the connection had already ended
// (the peer closed it, a Read failed, ctx was done), Close just releases
// it and returns nil; a second Close returns an error wrapping
// net.ErrClosed.
//
// ctx bounds the life of the whole NetConn, not of one call: once ctx is
// done, the NetConn fails the connection, sending a close frame with 1001
// (CloseGoingAway) if it can within a second and closing the network
// connection, and blocked and later Reads and Writes return an error
// wrapping ctx.Err() (errors.Is(err, context.Canceled), say). So pass a
// context that lives as long as the tunnel should: not a Transport's dial
// context, which ends with the dial, nor the request context of an
// Upgrader's handler that returns while the NetConn lives on (net/http
// cancels it when the handler returns). context.Background() means no
// bound. Watching ctx takes no goroutine until it is done.
//
// LocalAddr and RemoteAddr are c's, those of the network connection
// (behind a proxy, RemoteAddr is the proxy's).
//
// Errors other than io.EOF begin with "websocket: NetConn read: " (or
// write, close) and wrap what caused them; they implement net.Error, so
// that code that tests a net.Conn's errors with a type assertion to
// net.Error, as net/http does, sees a timeout as such. Read and Write
// allocate nothing per call once the connection runs.
func NetConn(ctx context.Context, c *Conn, messageType int) net.Conn {
	if messageType != TextMessage && messageType != BinaryMessage {
		panic("websocket: NetConn: messageType must be TextMessage or BinaryMessage")
	}
	nc := &netConn{
		c:        c,
		mt:       messageType,
		done:     make(chan struct{}),
		rlock:    make(chan struct{}, 1),
		chunks:   make(chan []byte),
		consumed: make(chan struct{}, 1),
		rdone:    make(chan struct{}),
	}
	nc.readDeadline.passed = make(chan struct{})
	nc.stopCtx = context.AfterFunc(ctx, func() { nc.ctxDone(ctx) })
	return nc
}

// MessageTypeError is what a NetConn's Read wraps when a data message of
// the other type arrives: a binary message on a text NetConn, or a text
// message on a binary one. The NetConn has then failed the connection
// with close code 1003 (CloseUnsupportedData).
type MessageTypeError struct {
	// Want is the NetConn's message type, TextMessage or BinaryMessage.
	Want int
	// Got is the type of the message that arrived.
	Got int
}

// Error returns "websocket: received a binary message, expected text" (or
// the reverse).
func (e *MessageTypeError) Error() string {
	return "websocket: received a " + messageTypeName(e.Got) + " message, expected " + messageTypeName(e.Want)
}

func messageTypeName(mt int) string {
	if mt == TextMessage {
		return "text"
	}
	return "binary"
}

const (
	// netConnCloseWait bounds how long Close waits for the peer's close
	// frame: long enough for a peer on a slow link, short enough that a
	// peer that stopped reading does not hold a closing program for long.
	netConnCloseWait = 5 * time.Second

	// netConnChunk is the most the reading goroutine takes from a message
	// at once: a large read goes straight from the socket into the chunk,
	// so it is also the size of the system calls on a bulk stream.
	netConnChunk = 32 << 10
)

// netConn is what NetConn returns.
//
// Reading is split between a goroutine that owns c's read side (readLoop)
// and the callers of Read, so that a Read can give up at its deadline
// without leaving c in the middle of a read: c's own read errors are
// permanent. The goroutine reads a chunk of a message into a pooled
// buffer, hands it over on chunks and waits on consumed until Read has
// copied all of it out; only then does it touch the buffer or c again.
// So at most one chunk is outstanding, and it is only read-ahead of one
// chunk.
type netConn struct {
	c       *Conn
	mt      int
	stopCtx func() bool

	// done is closed once, by Close or when ctx is done; readEnd and
	// writeEnd, written before, say why to Read and Write.
	done     chan struct{}
	endOnce  sync.Once
	readEnd  error
	writeEnd error
	closed   atomic.Bool // Close has been called

	// rlock (a one-slot semaphore, so that the wait honours the
	// deadline) makes Reads take turns; started and cur are guarded by
	// it. cur is the unread rest of the chunk last received.
	rlock   chan struct{}
	started bool
	cur     []byte

	chunks   chan []byte
	consumed chan struct{} // one slot: at most one chunk is outstanding
	rdone    chan struct{} // closed when readLoop returns, after rerr is set
	rerr     error

	readDeadline netDeadline
	wdMu         sync.Mutex // orders the two halves of SetWriteDeadline
}

// netConnError is the error of a NetConn's Read, Write or Close.
type netConnError struct {
	op  string
	err error
}

// Error prefixes the cause's text with "websocket: NetConn op: ", not
// repeating the "websocket: " that the package's own errors begin with.
func (e *netConnError) Error() string {
	return "websocket: NetConn " + e.op + ": " + strings.TrimPrefix(e.err.Error(), "websocket: ")
}

func (e *netConnError) Unwrap() error { return e.err }

// Timeout reports whether the cause is a timeout (a deadline that passed).
func (e *netConnError) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// Temporary is the same as Timeout, as for net's own errors, where only
// timeouts are temporary.
func (e *netConnError) Temporary() bool { return e.Timeout() }

var (
	errNetConnReadTimeout = &netConnError{op: "read", err: os.ErrDeadlineExceeded}
	errNetConnReadClosed  = &netConnError{op: "read", err: net.ErrClosed}
	errNetConnWriteClosed = &netConnError{op: "write", err: net.ErrClosed}
	errNetConnCloseClosed = &netConnError{op: "close", err: net.ErrClosed}
	errNetConnInvalidUTF8 = &netConnError{op: "write", err: errors.New("invalid UTF-8 in a text message")}
)

// end closes done, with the errors Read and Write return from then on.
// It reports whether this call did it.
func (nc *netConn) end(readErr, writeErr error) bool {
	did := false
	nc.endOnce.Do(func() {
		nc.readEnd, nc.writeEnd = readErr, writeErr
		close(nc.done)
		did = true
	})
	return did
}

// ctxDone fails the connection once ctx is done, unless Close came first.
// done is closed before c, so that a Read or Write failing because c was
// closed finds done closed and reports ctx's error.
func (nc *netConn) ctxDone(ctx context.Context) {
	err := ctx.Err()
	if !nc.end(&netConnError{op: "read", err: err}, &netConnError{op: "write", err: err}) {
		return
	}
	nc.c.WriteControl(CloseMessage, FormatCloseMessage(CloseGoingAway, ""), time.Now().Add(closeWriteWait))
	nc.c.Close()
}

func (nc *netConn) Read(p []byte) (int, error) {
	select {
	case nc.rlock <- struct{}{}:
	default:
		select {
		case nc.rlock <- struct{}{}:
		case <-nc.done:
			return 0, nc.readEnd
		case <-nc.readDeadline.wait():
			return 0, errNetConnReadTimeout
		}
	}
	defer func() { <-nc.rlock }()
	select {
	case <-nc.done:
		return 0, nc.readEnd
	case <-nc.readDeadline.wait():
		return 0, errNetConnReadTimeout
	default:
	}
	if len(nc.cur) == 0 {
		if len(p) == 0 {
			return 0, nil
		}
		if !nc.started {
			nc.started = true
			go nc.readLoop()
		}
		select {
		case nc.cur = <-nc.chunks:
		case <-nc.rdone:
			select {
			case <-nc.done:
				// The connection was closed by Close or ctx, and that
				// is what ended the read.
				return 0, nc.readEnd
			default:
			}
			return 0, nc.rerr
		case <-nc.done:
			return 0, nc.readEnd
		case <-nc.readDeadline.wait():
			return 0, errNetConnReadTimeout
		}
	}
	n := copy(p, nc.cur)
	nc.cur = nc.cur[n:]
	if len(nc.cur) == 0 {
		nc.consumed <- struct{}{}
	}
	return n, nil
}

// readLoop reads c's messages and hands their bytes to Read until c's read
// side ends or the NetConn is closed.
func (nc *netConn) readLoop() {
	defer close(nc.rdone)
	// A Conn closed directly, not through the NetConn, must end this
	// goroutine too, even while it waits for a Read to take a chunk.
	closed := nc.c.closedChan()
	for {
		mt, r, err := nc.c.NextReader()
		if err != nil {
			nc.rerr = netConnReadError(err)
			return
		}
		if mt != nc.mt {
			nc.rerr = nc.failType(mt)
			return
		}
		if err := nc.pump(r, closed); err != nil {
			nc.rerr = netConnReadError(err)
			return
		}
	}
}

// errNetConnDone stops readLoop when the NetConn ends; Read then reports
// readEnd, never this.
var errNetConnDone = errors.New("websocket: NetConn closed")

// pump hands the message r reads to Read, a chunk at a time. It returns
// nil at the message's end, errNetConnDone once the NetConn is done and
// net.ErrClosed once c is closed.
func (nc *netConn) pump(r io.Reader, closed <-chan struct{}) error {
	b := getBuffer(netConnChunk)
	for {
		n, err := r.Read(b.b)
		if n > 0 {
			select {
			case nc.chunks <- b.b[:n]:
			case <-nc.done:
				putBuffer(b)
				return errNetConnDone
			case <-closed:
				putBuffer(b)
				return net.ErrClosed
			}
			select {
			case <-nc.consumed:
			case <-nc.done:
				// A Read may still be copying from the chunk: leave the
				// buffer to the garbage collector rather than the pool.
				return errNetConnDone
			case <-closed:
				return net.ErrClosed
			}
		}
		if err != nil {
			putBuffer(b)
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// failType fails the connection for a message of type got, as RFC 6455
// section 7.4.1 has 1003 for: "a type of data it cannot accept".
func (nc *netConn) failType(got int) error {
	err := &MessageTypeError{Want: nc.mt, Got: got}
	reason := "expected " + messageTypeName(nc.mt) + " messages"
	nc.c.WriteControl(CloseMessage, FormatCloseMessage(CloseUnsupportedData, reason), time.Now().Add(closeWriteWait))
	nc.c.Close()
	return &netConnError{op: "read", err: err}
}

// netConnReadError maps an error of c's read side to what Read returns: a
// clean close by the peer is the stream's end.
func netConnReadError(err error) error {
	var ce *CloseError
	if errors.As(err, &ce) && (ce.Code == CloseNormalClosure || ce.Code == CloseNoStatusReceived) {
		return io.EOF
	}
	return &netConnError{op: "read", err: err}
}

func (nc *netConn) Write(p []byte) (int, error) {
	select {
	case <-nc.done:
		return 0, nc.writeEnd
	default:
	}
	if nc.mt == TextMessage && !utf8.Valid(p) {
		return 0, errNetConnInvalidUTF8
	}
	if err := nc.c.WriteMessage(nc.mt, p); err != nil {
		select {
		case <-nc.done:
			return 0, nc.writeEnd
		default:
		}
		return 0, &netConnError{op: "write", err: err}
	}
	return len(p), nil
}

func (nc *netConn) Close() error {
	if nc.closed.Swap(true) {
		return errNetConnCloseClosed
	}
	// Looked at before done is closed: readLoop also returns when done
	// is, and then the read side has not ended by itself.
	readEnded := isClosed(nc.rdone)
	first := nc.end(errNetConnReadClosed, errNetConnWriteClosed)
	nc.stopCtx()
	if !first {
		return nil // ctx failed the connection already
	}
	if readEnded {
		// The peer closed, or c failed: there is no handshake to run.
		nc.c.Close()
		return nil
	}
	if err := nc.c.CloseGracefully(CloseNormalClosure, "", netConnCloseWait); err != nil {
		return &netConnError{op: "close", err: err}
	}
	return nil
}

func (nc *netConn) LocalAddr() net.Addr  { return nc.c.LocalAddr() }
func (nc *netConn) RemoteAddr() net.Addr { return nc.c.RemoteAddr() }

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.SetReadDeadline(t)
	return nc.SetWriteDeadline(t)
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	nc.readDeadline.set(t)
	return nil
}

// SetWriteDeadline sets c's write deadline, which applies from the next
// frame c writes, and the network connection's, so that a Write blocked
// in a system call now also ends by t, as net.Conn asks. c re-applies
// its own deadline whenever the one a frame needs differs from the last
// it applied, so setting the socket's behind its back leaves it at most
// applying the same value twice; wdMu keeps two calls from leaving the
// socket and c with different values.
func (nc *netConn) SetWriteDeadline(t time.Time) error {
	nc.wdMu.Lock()
	defer nc.wdMu.Unlock()
	nc.c.SetWriteDeadline(t)
	nc.c.NetConn().SetWriteDeadline(t)
	return nil
}

// netDeadline is a deadline that waiters select on: passed is closed while
// the deadline is passed. One timer, made at the first deadline in the
// future and reset after, closes it.
type netDeadline struct {
	mu     sync.Mutex
	at     time.Time // zero: none
	timer  *time.Timer
	passed chan struct{}
}

func (d *netDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at = t
	if d.timer != nil {
		d.timer.Stop()
	}
	wait := time.Until(t)
	if !t.IsZero() && wait <= 0 {
		if !isClosed(d.passed) {
			close(d.passed)
		}
		return
	}
	if isClosed(d.passed) {
		d.passed = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.expire)
	} else {
		d.timer.Reset(wait)
	}
}

// expire runs from the timer. A run for a deadline that has been moved
// since (the timer had fired when set stopped it) finds the new one not
// passed and does nothing.
func (d *netDeadline) expire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.at.IsZero() && !time.Now().Before(d.at) && !isClosed(d.passed) {
		close(d.passed)
	}
}

func (d *netDeadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
