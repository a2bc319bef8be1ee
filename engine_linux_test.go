//go:build linux

package websocket

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEngineWriteQueueFull writes to a peer that never reads: once the
// socket buffers are full, writes queue up to MaxQueuedBytes and then fail
// with ErrWriteQueueFull instead of blocking or growing without bound.
func TestEngineWriteQueueFull(t *testing.T) {
	rec := newEngineRecorder(false)
	conns := make(chan *Conn, 1)
	rec.onOpen = func(c *Conn) { conns <- c }
	_, url := startEngine(t, EngineOptions{Loops: 1, MaxQueuedBytes: 256 << 10}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	sc := wait(t, conns, "OnOpen")
	msg := make([]byte, 64<<10)
	// Loopback socket buffers take a few MiB at most; 10,000 writes
	// (640 MiB) only bound the test should the queue not.
	for i := 0; i < 10_000; i++ {
		if err = sc.WriteMessage(BinaryMessage, msg); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, ErrWriteQueueFull)
	assert.ErrorIs(t, sc.WriteMessage(BinaryMessage, msg), ErrWriteQueueFull, "the write side stays failed")
}

// TestEngineBlockingReadsRefused: a Conn served by an Engine is read by
// its handler; NextReader and ReadMessage say so instead of racing the loop.
func TestEngineBlockingReadsRefused(t *testing.T) {
	rec := newEngineRecorder(false)
	errs := make(chan error, 2)
	rec.onOpen = func(c *Conn) {
		_, _, err := c.ReadMessage()
		errs <- err
		_, _, err = c.NextReader()
		errs <- err
	}
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	assert.ErrorIs(t, wait(t, errs, "ReadMessage"), errEngineRead)
	assert.ErrorIs(t, wait(t, errs, "NextReader"), errEngineRead)
}

// TestEngineWriteBeforeLoop writes more than a socket takes at once right
// after Upgrade returns, while the loop is held up and has not registered
// the connection yet: the queued rest must still go out once it does.
func TestEngineWriteBeforeLoop(t *testing.T) {
	e, err := NewEngine(EngineOptions{Loops: 1})
	require.NoError(t, err)
	defer e.Close()
	release := make(chan struct{})
	gate := newEngineRecorder(false)
	// The first connection's OnOpen holds the only loop (a handler must
	// not block; here that is the point) until the write below returns.
	gate.onOpen = func(*Conn) { <-release }
	rec := newEngineRecorder(false)
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/gate" {
			e.Upgrade(&Upgrader{}, w, r, nil, gate)
			return
		}
		c, err := e.Upgrade(&Upgrader{}, w, r, nil, rec)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		err = c.WriteMessage(BinaryMessage, big)
		close(release)
		if err != nil {
			t.Errorf("write: %v", err)
		}
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	g, _, err := DefaultDialer.Dial(url+"/gate", nil)
	require.NoError(t, err)
	defer g.Close()
	c, _, err := DefaultDialer.Dial(url+"/big", nil)
	require.NoError(t, err)
	defer c.Close()
	// Not reading until the write has returned makes it queue.
	wait(t, release, "the write to return")
	c.SetReadDeadline(time.Now().Add(testWait))
	_, got, err := c.ReadMessage()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got))
}

// TestEngineTCPKeepAlive reads back the probe settings the Engine gives
// the sockets it serves, whichever way they came: the period plus up to
// half of it before the first probe, four probes a quarter period apart;
// or no probes at all.
func TestEngineTCPKeepAlive(t *testing.T) {
	tests := []struct {
		name   string
		period time.Duration
		want   time.Duration // zero: probes off
	}{
		{"default: off", 0, 0},
		{"set", 40 * time.Second, 40 * time.Second},
		{"off", -1, 0},
	}
	for _, tt := range tests {
		for _, serve := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/serve=%v", tt.name, serve), func(t *testing.T) {
				rec := newEngineRecorder(false)
				opts := EngineOptions{Loops: 1, TCPKeepAlive: tt.period}
				start := startEngine
				if serve {
					start = startEngineServe
				}
				_, url := start(t, opts, &Upgrader{}, rec)
				c, _, err := DefaultDialer.Dial(url, nil)
				require.NoError(t, err)
				defer c.Close()
				fd := wait(t, rec.opened, "OnOpen").conn.(*engineConn).fd
				opt := func(level, name int) int {
					v, err := syscall.GetsockoptInt(fd, level, name)
					require.NoError(t, err)
					return v
				}
				if tt.want == 0 {
					assert.Zero(t, opt(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE))
					return
				}
				assert.Equal(t, 1, opt(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE))
				idle := time.Duration(opt(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)) * time.Second
				assert.GreaterOrEqual(t, idle, tt.want)
				assert.LessOrEqual(t, idle, tt.want+tt.want/2)
				assert.Equal(t, int(tt.want/4/time.Second), opt(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL))
				assert.Equal(t, keepAliveProbes, opt(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT))
			})
		}
	}
}

// TestEngineTCPKeepAliveSpread: sockets accepted together get different
// idle times, so their probes do not come together.
func TestEngineTCPKeepAliveSpread(t *testing.T) {
	o := EngineOptions{TCPKeepAlive: 2 * time.Minute}
	seen := map[time.Duration]bool{}
	for i := 0; i < 100; i++ {
		d := o.tcpKeepAliveIdle()
		require.GreaterOrEqual(t, d, o.TCPKeepAlive)
		require.LessOrEqual(t, d, o.TCPKeepAlive*3/2)
		seen[d/time.Second] = true
	}
	assert.Greater(t, len(seen), 20, "idle times in whole seconds, of 100 sockets")
}
