package websocket

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsforge/websocket/internal/flate"
)

const (
	defaultReadBufferSize  = 4096
	defaultWriteBufferSize = 4096

	// closeWriteWait bounds how long the library waits to send the close
	// frame that fails a connection or answers the peer's close.
	closeWriteWait = time.Second
)

// BufferPool represents a pool of buffers. The *sync.Pool type satisfies this
// interface. The type of the value stored in a pool is not specified.
type BufferPool interface {
	// Get gets a value from the pool or returns nil if the pool is empty.
	Get() interface{}
	// Put adds a value to the pool.
	Put(interface{})
}

// Conn represents a WebSocket connection, on the server side (from
// Upgrader.Upgrade) or on the client side (from Dialer.Dial).
//
// Concurrency: the whole-message write methods (WriteMessage, WriteControl,
// WriteJSON, WritePreparedMessage) and SetWriteDeadline,
// EnableWriteCompression and SetCompressionLevel may be called from any
// number of goroutines at once; whole messages are serialised, and control
// frames may go out between the fragments of a message being streamed.
// NextWriter follows gorilla's rule (the next message closes a writer left
// open) unless EnableConcurrentWriters was called or the Conn has seen
// concurrent writes; see the package documentation. Close and
// CloseGracefully may also be called concurrently with everything else.
// The read methods (NextReader, ReadMessage, ReadJSON, SetReadDeadline,
// SetReadLimit and the handler setters) must be called by one goroutine
// at a time, as with gorilla.
//
// Inside, locks are taken in this order only: readMu before frameLock (the
// reader answers pings and closes), msgLock before frameLock (a message's
// frames), msgLock before the compressor's own lock, frameLock before
// wctx.mu (a context-bound write, context.go); closeWaitMu is taken
// last and alone. The library starts no goroutine per connection: the only
// ones are the compressor's idle timer (a time.AfterFunc that runs for a
// moment a second or two after the last compressed message, to drop the
// match index, and that Close stops) and, while DialContext runs, a
// context.AfterFunc that ends a canceled handshake (stopped before
// DialContext returns). A context-bound call (ReadMessageContext and
// the rest, context.go) arms a context.AfterFunc for its own duration:
// its callback runs for a moment if the context ends, and the call waits
// for it before returning (CloseContext's closes the Conn). A Conn with
// keepalive on (SetKeepAlive,
// Upgrader.KeepAlive, Dialer.KeepAlive) has a time.AfterFunc timer that
// runs for a moment each interval to send a ping, or to fail a connection
// whose peer has gone silent (on a Conn an Engine serves, it hands that
// to the loop); Close and the connection's end stop it. An Engine runs
// its event loops (one goroutine each, for the Engine's life, stopped by
// Engine.Close), and a connection
// it serves with a read deadline set has a time.AfterFunc timer that hands
// the expiry to its loop. A NetConn that has been read from runs one
// goroutine that reads the Conn for it, until the connection ends. A
// Conn upgraded over HTTP/2 (http2.go) runs, from its first read, one
// goroutine that pumps the request body to it, until the body ends or the
// Conn is closed; a read deadline set on it is a time.AfterFunc timer.
// The Engine's loop takes the place of the
// reading goroutine: it alone touches the read side, and its engineConn
// lock is taken last and alone, like closeWaitMu, as is the keepalive's
// own lock.
type Conn struct {
	// Set by the handshake, then read-only (and isServer, further down
	// where it fills what would be padding).
	conn        net.Conn
	subprotocol string
	extensions  string // the 101's Sec-WebSocket-Extensions, or ""

	// Write side. msgLock (a wlock, so that waits can time out) is held
	// for a whole data message: by WriteMessage,
	// WritePreparedMessage and by a NextWriter until its Close. frameLock
	// is held for each frame put on the wire (sendFrame), so a control
	// frame can go out between two fragments of a streamed message.
	msgLock       wlock
	writeBufSize  int
	writePool     BufferPool
	writeDeadline atomic.Int64 // unix nanoseconds; 0 means none

	frameLock wlock
	writeErr  error       // sticky; guarded by frameLock
	closeSent atomic.Bool // set under frameLock
	// concurrentWriters: gorilla's rule that a new message closes an
	// idle writer no longer applies (see closeIdleWriter).
	concurrentWriters atomic.Bool
	// pongStall is when a pong last timed out before the socket took a
	// byte of it (unix nanoseconds; 0: the last pong went out).
	pongStall       atomic.Int64
	appliedDeadline int64 // deadline last set on conn (unixNano); guarded by frameLock

	// writer is reused by NextWriter; guarded by msgLock and its own
	// state (see messageWriter).
	writer messageWriter

	// wctx binds the data message being written to its context
	// (context.go); guarded by msgLock, but for its own lock's fields.
	wctx *writeContext

	// Write-side compression, when negotiated: deflate is guarded by
	// msgLock; the settings the application changes at any time are
	// atomic.
	deflate           *flate.Encoder
	writeCompress     atomic.Bool
	compressionLevel  atomic.Int32
	compressThreshold int // messages shorter than this go uncompressed

	// Read side, owned by the single reading goroutine; readMu makes a
	// second reader (CloseGracefully's drain) wait its turn.
	readMu      sync.Mutex
	rb          *buffer // pooled; nil while released
	rbuf        []byte  // rb.b, or nil
	rpos, rend  int     // unread bytes are rbuf[rpos:rend]
	readBufSize int
	readErr     error
	readLimit   int64
	idle        *idleReader // buffer-free waits; nil where unsupported

	// readDeadline is the deadline SetReadDeadline last set (unix
	// nanoseconds, 0 for none), which a context-bound read restores;
	// rwatch is that read's context watch (context.go).
	readDeadline atomic.Int64
	rwatch       *ctxWatch

	// The frame being read, and the message (msgType, the opcode of
	// its first frame, is 0 between messages). Small fields are packed
	// here, ahead of msgLen, so that Conn stays in its size class.
	frameLeft  int64 // payload bytes of the current data frame not yet read
	frameFinal bool
	frameKey   [4]byte
	frameMask  bool
	maskPos    uint8 // position in frameKey of the next payload byte
	msgType    uint8
	msgLen     int64
	utf8       utf8Validator
	readerSlot uint8 // which of readers the next message gets
	// msgCompressed: the message being read has RSV1 (read-side
	// compression, below).
	msgCompressed bool
	isServer      bool // set by the handshake, then read-only
	// readEnded and writesClosed belong to the closing group below
	// (guarded by closeWaitMu); they sit here, in what would be padding.
	readEnded    bool
	writesClosed bool
	readerID     uint64 // bumped at each message's start and end
	readers      [2]messageReader

	// Read-side compression, owned by the reader like the rest: inflate
	// is non-nil exactly when compression was negotiated.
	inflate *flate.Decoder

	// The application's handlers; nil means the default one. Set by the
	// reading goroutine, as with gorilla.
	handlePing  func(string) error
	handlePong  func(string) error
	handleClose func(int, string) error

	// Closing (close.go). closeRecvd is set once the peer's close frame
	// has been read; closed once the network connection is closed.
	// Under closeWaitMu, what waiters on other goroutines learn of the
	// connection's end: closeWait, made only when CloseGracefully has to
	// wait for another goroutine's read, is closed when the read side
	// ends (readEnded, with readEndErr: the peer's close or a failure) or
	// writes are marked closed; closedCh, made only when a write has to
	// wait for the message lock, is closed when writes are
	// (writesClosed). readEnded and writesClosed are declared with the
	// read side's small fields, above.
	closeRecvd  atomic.Bool
	closed      atomic.Bool
	closeWaitMu sync.Mutex
	closeWait   chan struct{}
	readEndErr  error
	closedCh    chan struct{}

	// Keepalive (keepalive.go): ka is made by the first SetKeepAlive and
	// never replaced; heard is set by the read side for what arrives and
	// cleared by the keepalive timer; kaExpired once the timer failed the
	// connection for silence.
	ka        atomic.Pointer[keepAlive]
	heard     atomic.Bool
	kaExpired atomic.Bool
}

// newConn wraps netConn, whose handshake is done, in a Conn. pending holds
// bytes already read from netConn past the handshake (a peer may pipeline
// frames right behind it); they are read before anything else. Buffer sizes
// of zero or less mean the defaults. writePool, if not nil, supplies write
// buffers of writeBufSize+maxFrameHeaderSize bytes as gorilla's
// WriteBufferPool does.
func newConn(netConn net.Conn, isServer bool, readBufSize, writeBufSize int, writePool BufferPool, pending []byte) *Conn {
	if readBufSize <= 0 {
		readBufSize = defaultReadBufferSize
	}
	if readBufSize < maxControlPayload+maxFrameHeaderSize {
		readBufSize = maxControlPayload + maxFrameHeaderSize
	}
	if writeBufSize <= 0 {
		writeBufSize = defaultWriteBufferSize
	}
	if writeBufSize < maxControlPayload {
		// A control message written with NextWriter must fit.
		writeBufSize = maxControlPayload
	}
	c := &Conn{
		conn:         netConn,
		isServer:     isServer,
		writeBufSize: writeBufSize,
		writePool:    writePool,
		readBufSize:  readBufSize,
	}
	c.compressionLevel.Store(defaultCompressionLevel)
	c.writer.c = c
	c.readers[0].c = c
	c.readers[1].c = c
	if len(pending) > 0 {
		n := readBufSize
		if len(pending) > n {
			n = len(pending)
		}
		c.rb = getBuffer(n)
		c.rbuf = c.rb.b
		c.rend = copy(c.rbuf, pending)
	}
	c.initIdleRead()
	return c
}

// Subprotocol returns the negotiated protocol for the connection.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Extensions returns the extensions negotiated in the opening handshake:
// the value of the Sec-WebSocket-Extensions header of the server's 101
// response, as the server sent it (on a client Conn, as received), or ""
// when none was negotiated. The only extension this package negotiates is
// permessage-deflate (RFC 7692), so the result is "" or
// "permessage-deflate" followed by the parameters of the server's answer,
// such as "permessage-deflate; server_no_context_takeover", and a
// non-empty result means that compression is on for this connection:
// received messages may be compressed, and outgoing ones are compressed as
// CompressionOptions.Threshold and EnableWriteCompression decide. The
// result does not change during the connection's life.
//
// Extensions is an addition to gorilla's API.
func (c *Conn) Extensions() string { return c.extensions }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote network address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// UnderlyingConn returns the internal net.Conn. This can be used to further
// modifications to connection specific flags.
//
// Deprecated: Use the NetConn method.
func (c *Conn) UnderlyingConn() net.Conn { return c.conn }

// NetConn returns the underlying connection that is wrapped by c. Reading
// from or writing to it directly corrupts the WebSocket stream.
func (c *Conn) NetConn() net.Conn { return c.conn }

// SetWriteDeadline sets the write deadline on the underlying network
// connection for data messages. After a write has timed out, the websocket
// state is corrupt and all future writes will return an error. A zero value
// for t means writes will not time out. It is safe to call concurrently with
// writes; it applies from the next frame written.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var v int64
	if !t.IsZero() {
		v = t.UnixNano()
	}
	c.writeDeadline.Store(v)
	return nil
}

// SetReadDeadline sets the read deadline on the underlying network
// connection. After a read has timed out, the websocket connection state is
// corrupt and all future reads will return an error. A zero value for t
// means reads will not time out.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	return c.conn.SetReadDeadline(t)
}

// SetReadLimit sets the maximum size in bytes for a message read from the
// peer. If a message exceeds the limit, the connection sends a close message
// with CloseMessageTooBig to the peer, closes, and the read returns
// ErrReadLimit. The limit is checked against the length the peer declares in
// each frame header, before any of the payload is read or buffered. Zero or
// less means no limit.
func (c *Conn) SetReadLimit(limit int64) { c.readLimit = limit }

// CloseHandler returns the current close handler.
func (c *Conn) CloseHandler() func(code int, text string) error {
	if c.handleClose == nil {
		return c.defaultCloseHandler
	}
	return c.handleClose
}

// SetCloseHandler sets the handler for close messages received from the
// peer. The code argument to h is the received close code or
// CloseNoStatusReceived if the close message is empty. The default close
// handler sends a close message back to the peer with the same code.
//
// The handler function is called from the NextReader, ReadMessage and message
// reader Read methods. The application must read the connection to process
// close messages as described in the section on Control Messages above.
//
// The connection read methods return a CloseError when a close message is
// received. Most applications should handle close messages as part of their
// normal error handling. Applications should only set a close handler when
// the application must perform some action before sending a close message
// back to the peer.
func (c *Conn) SetCloseHandler(h func(code int, text string) error) {
	c.handleClose = h
}

// PingHandler returns the current ping handler.
func (c *Conn) PingHandler() func(appData string) error {
	if c.handlePing == nil {
		return c.defaultPingHandler
	}
	return c.handlePing
}

// SetPingHandler sets the handler for ping messages received from the peer.
// The appData argument to h is the PING message application data. The
// default ping handler sends a pong with the same application data.
//
// The handler function is called from the NextReader, ReadMessage and message
// reader Read methods.
func (c *Conn) SetPingHandler(h func(appData string) error) {
	c.handlePing = h
}

func (c *Conn) defaultPingHandler(message string) error {
	var p [maxControlPayload]byte
	return c.answerPing(p[:copy(p[:], message)])
}

// answerPing sends the pong for a ping with payload p. Like gorilla's
// default handler it ignores the errors of a connection being closed or a
// peer too slow to take the pong in time.
func (c *Conn) answerPing(p []byte) error {
	now := time.Now()
	if s := c.pongStall.Load(); s != 0 && now.UnixNano()-s < int64(closeWriteWait) {
		// The socket took nothing of the last pong for a whole
		// closeWriteWait: a peer that sends pings and reads nothing
		// would otherwise hold the reader that long for every ping.
		// RFC 6455 section 5.5.3 lets an endpoint answer only the
		// latest of several pings, so this one is left out; a pong is
		// tried again once the stall is closeWriteWait old.
		return nil
	}
	err := c.writeControl(PongMessage, p, now.Add(closeWriteWait))
	if err == ErrCloseSent {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.pongStall.Store(time.Now().UnixNano())
		return nil
	}
	if err == nil {
		c.pongStall.Store(0)
	}
	return err
}

// PongHandler returns the current pong handler.
func (c *Conn) PongHandler() func(appData string) error {
	if c.handlePong == nil {
		return defaultPongHandler
	}
	return c.handlePong
}

func defaultPongHandler(string) error { return nil }

// SetPongHandler sets the handler for pong messages received from the peer.
// The appData argument to h is the PONG message application data. The
// default pong handler does nothing.
//
// The handler function is called from the NextReader, ReadMessage and message
// reader Read methods.
func (c *Conn) SetPongHandler(h func(appData string) error) {
	c.handlePong = h
}
