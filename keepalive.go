package websocket

import (
	"sync"
	"time"
)

// Keepalive: pings from the connection's own timer, and the connection
// failed when the peer stays silent.
//
// Liveness is a flag (Conn.heard) that the read side sets for every frame
// and every run of payload it takes in (applyFrame, payloadArrived), with
// a load first so that a busy connection pays a plain load per frame; the
// timer clears it and turns it into a coarse timestamp, heardBy: the time
// of the tick that saw it set. Because heardBy is never earlier than the
// frame it stands for, the connection is never failed before the peer has
// been silent for interval+timeout; because the timer looks at least once
// an interval, it is failed before 2*interval+timeout.
//
// The timer's callback is the only goroutine keepalive runs, for a moment
// per tick: while idle, a connection with keepalive costs a keepAlive, a
// runtime timer and the callback's closure, no goroutine.

// KeepAlive configures the keepalive of a connection: pings sent from the
// connection's own timer, and the connection failed when the peer stops
// answering. The zero value is off. See Conn.SetKeepAlive for what the
// fields mean.
//
// KeepAlive is an addition to gorilla's API.
type KeepAlive struct {
	// Interval is how often a ping is sent. Zero (or less) turns
	// keepalive off.
	Interval time.Duration
	// Timeout is how long the peer may stay silent beyond Interval: a
	// connection from which nothing has arrived for Interval+Timeout is
	// failed. Zero (or less) means pings only: silence never fails the
	// connection.
	Timeout time.Duration
}

// ErrKeepAliveTimeout is the read error of a connection failed by its
// keepalive because the peer stopped answering: nothing, not even a pong,
// arrived from it for the keepalive's interval plus its timeout. The read
// methods return it unwrapped (errors.Is finds it in anything that wraps
// it); on a Conn served by an Engine, OnClose receives it. It is a
// net.Error whose Timeout method reports true.
var ErrKeepAliveTimeout error = &netError{msg: "websocket: keepalive timeout: the peer stopped answering", timeout: true}

// keepAliveReason is the reason sent with CloseInternalServerErr when
// keepalive fails a connection.
const keepAliveReason = "keepalive timeout"

// keepAlive is a connection's keepalive state, made by the first
// SetKeepAlive and kept for the connection's life. Times are durations
// since kaEpoch, so that they keep the monotonic clock in 8 bytes.
type keepAlive struct {
	mu       sync.Mutex
	t        *time.Timer // nil until first armed
	interval time.Duration
	timeout  time.Duration
	heardBy  time.Duration // the peer was heard from by this time
	nextPing time.Duration
}

var kaEpoch = time.Now()

func kaNow() time.Duration { return time.Since(kaEpoch) }

// keepAliveExpirer is implemented by the net.Conn of a Conn whose read
// side belongs to someone else (an Engine's loop), which must end the
// connection itself when its keepalive expires.
type keepAliveExpirer interface{ keepAliveExpired() }

// SetKeepAlive starts, changes or stops (interval zero or less) the
// connection's keepalive. While it runs, a ping with no payload is sent
// every interval from the connection's own timer (a time.AfterFunc: no
// goroutine waits for it), and any frame that arrives from the peer, data
// or control, counts as a sign of life; a pong is only the usual one. A
// connection from which nothing has arrived for interval+timeout is
// failed: a close frame with CloseInternalServerErr (1011) and the reason
// "keepalive timeout" is sent, best effort, the network connection is
// closed, and the blocked read (or the next one) returns
// ErrKeepAliveTimeout; a Conn served by an Engine is ended by its loop
// and OnClose receives ErrKeepAliveTimeout. The timer looks at the
// connection once an interval, so the failure comes after at least
// interval+timeout of silence and less than 2*interval+timeout. A timeout
// of zero or less sends pings only and never fails the connection.
//
// As with every control frame, pongs are read only while the application
// reads the connection (or, for an Engine, always): a Conn that is not
// read sees no sign of life and is failed. The pong handler still runs
// for every pong. A ping that cannot be sent within min(interval,
// timeout) (another writer holds the connection, or the socket is full)
// is skipped, and leaves the connection usable as any control frame that
// times out unsent does. Each call starts the count of silence afresh;
// Close and the end of the connection stop the timer.
//
// SetKeepAlive may be called from any goroutine at any time. Upgrader and
// Dialer start it with their KeepAlive field.
//
// SetKeepAlive is an addition to gorilla's API.
func (c *Conn) SetKeepAlive(interval, timeout time.Duration) {
	ka := c.ka.Load()
	if ka == nil {
		// Made even to record "off", so that an Engine's Upgrade, which
		// applies the Upgrader's setting after OnOpen may have run,
		// knows that the application has decided.
		ka = new(keepAlive)
		if !c.ka.CompareAndSwap(nil, ka) {
			ka = c.ka.Load()
		}
	}
	ka.set(c, interval, timeout)
}

// defaultKeepAlive starts keepalive with k unless the application has
// already called SetKeepAlive: an Engine's OnOpen may have, before its
// Upgrade applies the Upgrader's setting.
func (c *Conn) defaultKeepAlive(k KeepAlive) {
	if k.Interval <= 0 {
		return
	}
	ka := new(keepAlive)
	if c.ka.CompareAndSwap(nil, ka) {
		ka.set(c, k.Interval, k.Timeout)
	}
}

func (ka *keepAlive) set(c *Conn, interval, timeout time.Duration) {
	ka.mu.Lock()
	defer ka.mu.Unlock()
	if interval <= 0 || c.closed.Load() {
		ka.interval = 0
		if ka.t != nil {
			ka.t.Stop()
		}
		return
	}
	ka.interval, ka.timeout = interval, max(timeout, 0)
	now := kaNow()
	c.heard.Store(false)
	ka.heardBy, ka.nextPing = now, now+interval
	if ka.t == nil {
		ka.t = time.AfterFunc(interval, c.keepAliveTick)
	} else {
		ka.t.Reset(interval)
	}
}

// ownKeepAlive reports whether the application set a keepalive on c
// (Upgrader.KeepAlive, Dialer.KeepAlive or SetKeepAlive) that is on.
func (c *Conn) ownKeepAlive() bool {
	ka := c.ka.Load()
	if ka == nil {
		return false
	}
	ka.mu.Lock()
	defer ka.mu.Unlock()
	return ka.interval > 0
}

// stopKeepAlive stops the timer of a connection that has ended.
func (c *Conn) stopKeepAlive() {
	if ka := c.ka.Load(); ka != nil {
		ka.set(c, 0, 0)
	}
}

// markHeard records that something arrived from the peer. It is on the
// read path of every frame: a load, and a store only when the timer has
// cleared the flag since.
func (c *Conn) markHeard() {
	if !c.heard.Load() {
		c.heard.Store(true)
	}
}

// keepAliveTick is the timer's callback: it sends the ping that is due,
// fails the connection that has been silent too long, and arms the timer
// for whichever comes next.
func (c *Conn) keepAliveTick() {
	ka := c.ka.Load()
	ka.mu.Lock()
	if ka.interval == 0 || c.closed.Load() {
		ka.mu.Unlock()
		return
	}
	now := kaNow()
	if c.heard.Swap(false) {
		ka.heardBy = now
	}
	if ka.timeout > 0 && now >= ka.heardBy+ka.interval+ka.timeout {
		ka.interval = 0
		ka.mu.Unlock()
		c.keepAliveExpired()
		return
	}
	ping := now >= ka.nextPing
	if ping {
		ka.nextPing = now + ka.interval
	}
	next, wait := ka.nextPing, ka.interval
	if ka.timeout > 0 {
		next = min(next, ka.heardBy+ka.interval+ka.timeout)
		wait = min(wait, ka.timeout)
	}
	ka.t.Reset(next - now)
	ka.mu.Unlock()
	if ping {
		// Errors are left alone: one that timed out unsent leaves the
		// connection as it was, and a broken connection is the read
		// side's to report.
		c.writeControl(PingMessage, nil, time.Now().Add(wait))
	}
}

// keepAliveExpired fails the connection for silence. On the blocking Conn
// the read side belongs to the reading goroutine, so this only sends the
// close frame and closes the network connection; the reader, its read
// failing, reports ErrKeepAliveTimeout (readFailed). An Engine's loop is
// handed the whole job.
func (c *Conn) keepAliveExpired() {
	c.kaExpired.Store(true)
	if e, ok := c.conn.(keepAliveExpirer); ok {
		e.keepAliveExpired()
		return
	}
	c.writeControl(CloseMessage, FormatCloseMessage(CloseInternalServerErr, keepAliveReason), time.Now().Add(closeWriteWait))
	c.closeNet()
}

// failKeepAlive fails the connection for silence, from the goroutine that
// owns its read side (an Engine's loop), and returns ErrKeepAliveTimeout.
func (c *Conn) failKeepAlive() error {
	return c.fail(CloseInternalServerErr, keepAliveReason, ErrKeepAliveTimeout)
}
