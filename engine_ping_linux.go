//go:build linux

package websocket

import "time"

// The Engine's own liveness check: pings paced by the loops.
//
// Each loop visits its connections in descriptor order, a slice of them
// per tick, so that each is visited about once per PingInterval however
// many arrived at once. A visit takes and clears the Conn's heard flag,
// which the read side sets for every frame: heard, the connection is
// alive; silent since the last visit, it is sent a ping; silent since the
// ping, it is failed with ErrKeepAliveTimeout. A peer that falls silent
// is thus found two to three intervals later, for one bool per connection
// and no timer of its own, and a million connections accepted in one
// burst are pinged evenly over the interval rather than in that burst.

// loopsPing says that PingInterval is the loops' job here.
const loopsPing = true

// pingTicks is how many ticks one PingInterval is cut into: each tick
// visits about 1/pingTicks of a loop's connections.
const pingTicks = 64

// pastDeadline makes a loop's ping give up at once if another goroutine
// is writing: a loop must not wait, and a connection being written to
// will be visited again.
var pastDeadline = time.Unix(1, 0)

// pinging reports whether the loops check liveness.
func (l *eventLoop) pinging() bool { return l.e.opts.PingInterval > 0 }

// waitMillis is epoll_wait's timeout: until the next tick, or -1 (no
// timeout) when the loops do not ping.
func (l *eventLoop) waitMillis() int {
	if !l.pinging() {
		return -1
	}
	d := time.Until(l.nextTick)
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
}

// tick visits the connections due, if a tick is due. A loop held up
// visits later, never more at once: under load the interval stretches.
func (l *eventLoop) tick() {
	if !l.pinging() {
		return
	}
	now := time.Now()
	if now.Before(l.nextTick) {
		return
	}
	l.nextTick = now.Add(max(l.e.opts.PingInterval/pingTicks, time.Millisecond))
	// len(l.conns) slots per pingTicks ticks; what a tick cannot visit
	// whole is carried to the next (a loop with few connections visits
	// one every few ticks, not one every tick).
	l.owed += len(l.conns)
	n := l.owed / pingTicks
	l.owed -= n * pingTicks
	for ; n > 0; n-- {
		if l.cursor >= len(l.conns) {
			l.cursor = 0
		}
		if ec := l.conns[l.cursor]; ec != nil {
			l.visit(ec)
		}
		l.cursor++
	}
}

// visit checks one connection's liveness.
func (l *eventLoop) visit(ec *engineConn) {
	c := ec.c
	if c == nil || c.ownKeepAlive() {
		// In the handshake (its timeout covers it), or left to the
		// keepalive the application set.
		return
	}
	if c.heard.Swap(false) {
		ec.pinged = false
		return
	}
	if !ec.pinged {
		// Only a busy frame lock means "try again at the next visit". A
		// write side that has failed or sent its close cannot ping at
		// all: counted as pinged, so that a peer silent through the next
		// visit too is ended rather than kept for good.
		ec.pinged = c.writeControl(PingMessage, nil, pastDeadline) != errWriteTimeout
		return
	}
	l.finish(ec, c.failKeepAlive())
}
