//go:build !linux

package websocket

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// An Engine serves WebSocket connections through an EventHandler. On Linux
// a few event loops serve them all; elsewhere, as here, the same API runs
// on a goroutine per connection that reads with ReadMessage.
//
// An Engine is safe for concurrent use.
type Engine struct {
	opts   EngineOptions
	closed atomic.Bool
	mu     sync.Mutex
	conns  map[*Conn]struct{}
	done   sync.WaitGroup
}

// NewEngine returns an Engine.
func NewEngine(opts EngineOptions) (*Engine, error) {
	return &Engine{opts: opts.withDefaults(), conns: make(map[*Conn]struct{})}, nil
}

// Close stops the Engine: each connection it serves is sent a close frame
// with CloseGoingAway, closed, and given to OnClose with ErrEngineClosed.
// Close returns once every connection has ended.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	e.mu.Lock()
	for c := range e.conns {
		c.WriteControl(CloseMessage, FormatCloseMessage(CloseGoingAway, ""), time.Now().Add(closeWriteWait))
		c.Close()
	}
	e.mu.Unlock()
	e.done.Wait()
	return nil
}

// loopsPing says that there are no loops here to send PingInterval's
// pings: Upgrade gives each Conn a keepalive instead.
const loopsPing = false

func (e *Engine) serve(c *Conn, h EventHandler) error {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		// Here the period is also the interval between probes, and the
		// system decides how many go unanswered before the end.
		if idle := e.opts.tcpKeepAliveIdle(); idle > 0 {
			tc.SetKeepAlive(true)
			tc.SetKeepAlivePeriod(idle)
		} else {
			tc.SetKeepAlive(false)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return ErrEngineClosed
	}
	e.conns[c] = struct{}{}
	e.done.Add(1)
	go func() {
		defer e.done.Done()
		h.OnOpen(c)
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				if e.closed.Load() {
					err = ErrEngineClosed
				}
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
				c.Close()
				h.OnClose(c, err)
				return
			}
			h.OnMessage(c, mt, p)
		}
	}()
	return nil
}

// Serve accepts connections from ln and serves them with h after
// upgrading each with u, here through net/http (on Linux the Engine's
// loops read the handshake themselves). It returns ErrEngineClosed once
// the Engine is closed, or the error that ended ln.
func (e *Engine) Serve(ln net.Listener, u *Upgrader, h EventHandler) error {
	err := http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.Upgrade(u, w, r, nil, h)
	}))
	if e.closed.Load() {
		return ErrEngineClosed
	}
	return err
}
