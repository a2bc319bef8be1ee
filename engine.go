package websocket

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"runtime"
	"time"
)

// An EventHandler receives the events of the connections an Engine serves.
// The Engine calls its methods for one connection one at a time, in order:
// OnOpen once, OnMessage for each data message, OnClose once at the end.
// Calls for different connections may run at the same time (one event loop
// each), so a handler shared between connections must be safe for
// concurrent use. A handler method must not block: while it runs, the
// other connections of its event loop wait. Work that takes time belongs on
// a goroutine of the application's.
type EventHandler interface {
	// OnOpen is called once the connection is served by the Engine,
	// before any other event.
	OnOpen(c *Conn)
	// OnMessage is called with each data message, whole. data is valid
	// only until OnMessage returns: the Engine reuses its memory (it may
	// be the event loop's read buffer itself), so a handler that keeps
	// the message must copy it (bytes.Clone).
	OnMessage(c *Conn, messageType int, data []byte)
	// OnClose is called once, when the connection has ended: err is a
	// *CloseError when the peer closed it (CloseAbnormalClosure when it
	// went away without a close frame), a *ProtocolError when it broke
	// the protocol, ErrReadLimit, ErrEngineClosed, or the network error.
	OnClose(c *Conn, err error)
}

// EngineOptions configures an Engine. The zero value is ready to use.
type EngineOptions struct {
	// Loops is the number of event loops; zero means GOMAXPROCS.
	Loops int
	// MaxQueuedBytes bounds, per connection, the bytes written but not yet
	// taken by the socket (a slow or stalled reader). A write that finds
	// more than this queued fails with ErrWriteQueueFull, and the
	// connection's later data writes fail too (the peer may hold part of
	// a message); close the connection. A write that finds less is taken
	// whole, so one message larger than the bound still goes. Zero means
	// 4 MiB.
	MaxQueuedBytes int
	// PingInterval paces the Engine's own liveness check. A connection
	// that has received nothing (any frame counts) for about an interval
	// is sent a ping; one still silent an interval after that is failed:
	// close 1011 where possible, and OnClose gets ErrKeepAliveTimeout.
	// Zero means 1 minute; negative turns the check off. The loops pace
	// the pings, visiting a slice of their connections at a time, so that
	// connections accepted in one burst are pinged evenly over the
	// interval, not in a burst again; a connection costs one bool for it,
	// and no timer. A Conn whose application set a keepalive of its own
	// (Upgrader.KeepAlive, SetKeepAlive) is left to it.
	PingInterval time.Duration
	// TCPKeepAlive, if positive, has the kernel probe a TCP connection
	// the Engine serves (from Serve or Upgrade) once it has been quiet
	// this long: each socket gets the period plus a random part of up to
	// half of it, then four probes a quarter period apart. Zero or
	// negative turns the probes off, replacing what the listener set
	// (Go's listeners probe every 15 seconds). Off is the default because
	// the kernel fires its timers in coarse batches (16 seconds wide for
	// a two-minute period) whatever their spread: at a million
	// connections on one machine the probes came in bursts that
	// overflowed the input queue, and the lost probes cost 60% of the
	// connections. PingInterval's pings are paced instead.
	TCPKeepAlive time.Duration
}

// defaultPingInterval is EngineOptions.PingInterval's zero value.
const defaultPingInterval = time.Minute

// keepAliveProbes is how many unanswered probes end a connection.
const keepAliveProbes = 4

// tcpKeepAliveIdle returns the idle time before the first probe for one
// socket: the period plus a random part of up to half of it. Zero when
// probes are off.
func (o EngineOptions) tcpKeepAliveIdle() time.Duration {
	if o.TCPKeepAlive <= 0 {
		return 0
	}
	return o.TCPKeepAlive + rand.N(o.TCPKeepAlive/2+1)
}

// ErrWriteQueueFull is returned by a write on a Conn served by an Engine
// when the peer has not taken the bytes already written and more than
// EngineOptions.MaxQueuedBytes are queued. Writes on such a connection
// never block; this error is its back-pressure.
var ErrWriteQueueFull = errors.New("websocket: write queue full: the peer is not reading")

// ErrEngineClosed is given to OnClose for the connections an Engine still
// served when it was closed, and returned by Upgrade after Close.
var ErrEngineClosed = errors.New("websocket: engine closed")

// errEngineRead is returned by the blocking read methods (NextReader,
// ReadMessage) of a Conn served by an Engine, whose messages go to its
// EventHandler instead.
var errEngineRead = errors.New("websocket: a Conn served by an Engine is read by its EventHandler, not by NextReader or ReadMessage")

const defaultMaxQueuedBytes = 4 << 20

// engineServed is implemented by the net.Conn of a Conn that an Engine
// serves.
type engineServed interface{ engineServed() }

func (o EngineOptions) withDefaults() EngineOptions {
	if o.Loops <= 0 {
		o.Loops = runtime.GOMAXPROCS(0)
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = defaultMaxQueuedBytes
	}
	if o.PingInterval == 0 {
		o.PingInterval = defaultPingInterval
	}
	return o
}

// Upgrade upgrades the HTTP server connection to the WebSocket protocol
// with u, as u.Upgrade does, and hands the connection to the Engine, which
// calls h's methods for its events; the HTTP handler may then return, and
// no goroutine stays behind for the connection. The returned Conn's write
// methods work from h's methods and from any goroutine, as for any Conn;
// its blocking read methods fail, since messages go to h.
//
// A WebSocket opened over HTTP/2 (RFC 8441) is refused with 501: its
// stream has no socket of its own and lives only while its handler runs,
// so serve it with u.Upgrade.
//
// Compression is negotiated as u says. A compressed message is gathered
// whole and then inflated, with the read limit applied to its inflated
// size as for any Conn.
func (e *Engine) Upgrade(u *Upgrader, w http.ResponseWriter, r *http.Request, responseHeader http.Header, h EventHandler) (*Conn, error) {
	if e.closed.Load() {
		return nil, ErrEngineClosed
	}
	if isExtendedConnect(r) {
		// An HTTP/2 stream has no socket of its own to hand to a loop,
		// and lives only while its handler runs.
		return u.fail(w, r, http.StatusNotImplemented, "websocket: an Engine serves WebSockets over HTTP/1.1 only, not over HTTP/2")
	}
	c, err := u.upgrade(w, r, responseHeader)
	if err != nil {
		return nil, err
	}
	if err := e.serve(c, h); err != nil {
		c.Close()
		return nil, err
	}
	// Once served, so that the timer never meets the net.Conn being
	// swapped; unless OnOpen has set a keepalive of its own.
	ka := u.KeepAlive
	if ka.Interval <= 0 && !loopsPing && e.opts.PingInterval > 0 {
		// Without loops to pace them, PingInterval's pings come from
		// the Conn's own keepalive timer.
		ka = KeepAlive{Interval: e.opts.PingInterval, Timeout: e.opts.PingInterval}
	}
	c.defaultKeepAlive(ka)
	return c, nil
}
