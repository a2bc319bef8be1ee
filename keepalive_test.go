package websocket

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Keepalive tests use short intervals so that they run quickly, and
// assert on events (pings seen, close frames, read errors), never on
// elapsed time except as a lower bound, which a loaded machine can only
// make longer. Where a connection must survive, its timeout is long
// enough that only a missing liveness rule, not load, could end it.

// signal sends on ch without blocking: ch counts events up to its
// capacity.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// keepAliveServer serves one upgrade with u on a test server; the handler
// reads until the read fails and sends that error on the returned channel.
// setup, if not nil, runs on the Conn before the first read.
func keepAliveServer(t *testing.T, u *Upgrader, setup func(c *Conn)) (url string, readErr <-chan error) {
	t.Helper()
	errs := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(testWait))
		if setup != nil {
			setup(c)
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				errs <- err
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), errs
}

// expectPingsThenClose reads server frames from br: pings, then a close
// frame, whose code and reason it returns; it counts the pings.
func expectPingsThenClose(t *testing.T, br *bufio.Reader) (pings int, code int, reason string) {
	t.Helper()
	for {
		op, p := readServerFrame(t, br)
		switch op {
		case opPing:
			pings++
		case opClose:
			require.GreaterOrEqual(t, len(p), 2)
			return pings, int(binary.BigEndian.Uint16(p)), string(p[2:])
		default:
			require.Failf(t, "unexpected frame", "opcode %d", op)
		}
	}
}

// TestKeepAlivePingsWhileIdle: a server with Upgrader.KeepAlive pings an
// idle client, whose default ping handler answers; the server's own pong
// handler sees the pongs, and nobody is failed.
func TestKeepAlivePingsWhileIdle(t *testing.T) {
	pongs := make(chan struct{}, 100)
	u := &Upgrader{KeepAlive: KeepAlive{Interval: 20 * time.Millisecond, Timeout: testWait}}
	url, serverErr := keepAliveServer(t, u, func(c *Conn) {
		c.SetPongHandler(func(string) error { signal(pongs); return nil })
	})
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	pings := make(chan struct{}, 100)
	answer := c.PingHandler()
	c.SetPingHandler(func(s string) error { signal(pings); return answer(s) })
	c.SetReadDeadline(time.Now().Add(testWait))
	clientErr := make(chan error, 1)
	go func() {
		_, _, err := c.ReadMessage()
		clientErr <- err
	}()
	for i := 0; i < 3; i++ {
		wait(t, pings, "a ping at the client")
		wait(t, pongs, "the pong at the server's pong handler")
	}
	c.Close()
	<-clientErr
	// The client's Close, not the keepalive, ended the server's read.
	err = wait(t, serverErr, "the server's read to end")
	assert.NotErrorIs(t, err, ErrKeepAliveTimeout)
}

// TestKeepAliveSilentPeer: a raw TCP peer completes the handshake and
// then never answers. The server pings it, fails the connection with 1011
// after interval+timeout of silence at the earliest, and its blocked read
// returns ErrKeepAliveTimeout.
func TestKeepAliveSilentPeer(t *testing.T) {
	const interval, timeout = 20 * time.Millisecond, 50 * time.Millisecond
	u := &Upgrader{KeepAlive: KeepAlive{Interval: interval, Timeout: timeout}}
	url, serverErr := keepAliveServer(t, u, nil)
	start := time.Now()
	nc, br := rawEngineConn(t, url, nil)
	pings, code, reason := expectPingsThenClose(t, br)
	assert.GreaterOrEqual(t, pings, 1)
	assert.Equal(t, CloseInternalServerErr, code)
	assert.Equal(t, "keepalive timeout", reason)
	err := wait(t, serverErr, "the server's read to fail")
	assert.ErrorIs(t, err, ErrKeepAliveTimeout)
	assert.Same(t, ErrKeepAliveTimeout, err, "returned unwrapped")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.GreaterOrEqual(t, time.Since(start), interval+timeout, "failed before interval+timeout of silence")
	// And the network connection was closed.
	_, err = br.ReadByte()
	assert.Error(t, err)
	nc.Close()
}

// TestKeepAlivePeerStopsReading: one side has keepalive and the other
// stops reading, so it answers no ping. The keepalive side's read fails
// with ErrKeepAliveTimeout; the other side, reading at last, finds the
// pings and then the close frame with 1011.
func TestKeepAlivePeerStopsReading(t *testing.T) {
	ka := KeepAlive{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond}
	for _, side := range []string{"server", "client"} {
		t.Run(side, func(t *testing.T) {
			u, d := &Upgrader{}, &Dialer{}
			if side == "server" {
				u.KeepAlive = ka
			} else {
				d.KeepAlive = ka
			}
			client, server := newPair(t, u, d)
			alive, silent := server, client
			if side == "client" {
				alive, silent = client, server
			}
			var err error
			hangGuard(t, func() { _, _, err = alive.ReadMessage() })
			assert.ErrorIs(t, err, ErrKeepAliveTimeout)
			// Permanent, as every read error.
			_, _, err = alive.ReadMessage()
			assert.ErrorIs(t, err, ErrKeepAliveTimeout)

			pings := 0
			silent.SetPingHandler(func(string) error { pings++; return nil })
			_, _, err = silent.ReadMessage()
			var ce *CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, CloseInternalServerErr, ce.Code)
			assert.Equal(t, "keepalive timeout", ce.Text)
			assert.GreaterOrEqual(t, pings, 1)
		})
	}
}

// TestKeepAliveDataIsLiveness: a peer that sends data messages but never
// answers a ping stays connected for many times interval+timeout; once it
// stops sending, it is failed.
func TestKeepAliveDataIsLiveness(t *testing.T) {
	const interval, timeout = 20 * time.Millisecond, 300 * time.Millisecond
	u := &Upgrader{KeepAlive: KeepAlive{Interval: interval, Timeout: timeout}}
	url, serverErr := keepAliveServer(t, u, nil)
	nc, br := rawEngineConn(t, url, nil)

	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		frame := clientFrame(true, opText, []byte("still here"))
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := nc.Write(frame); err != nil {
					return
				}
			}
		}
	}()
	// Enough pings that the connection has outlived interval+timeout
	// twice over.
	const want = int((2*(interval+timeout))/interval) + 1
	start := time.Now()
	for pings := 0; pings < want; {
		op, _ := readServerFrame(t, br)
		require.Equal(t, byte(opPing), op, "the server ended a connection that kept sending data")
		pings++
	}
	require.Greater(t, time.Since(start), interval+timeout)
	select {
	case err := <-serverErr:
		require.Failf(t, "server read ended", "%v", err)
	default:
	}
	// Silence now: the same connection is failed.
	close(stop)
	<-sent
	_, code, _ := expectPingsThenClose(t, br)
	assert.Equal(t, CloseInternalServerErr, code)
	assert.ErrorIs(t, wait(t, serverErr, "the server's read to fail"), ErrKeepAliveTimeout)
}

// TestKeepAliveDialerAndOff: Dialer.KeepAlive pings the server; after
// SetKeepAlive(0, 0) the client sends no more pings and is not failed
// although the server answers nothing.
func TestKeepAliveDialerAndOff(t *testing.T) {
	d := &Dialer{KeepAlive: KeepAlive{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond}}
	client, server := newPair(t, nil, d)
	var pings atomic.Int32
	first := make(chan struct{}, 1)
	server.SetPingHandler(func(string) error { pings.Add(1); signal(first); return nil })
	go server.ReadMessage()
	wait(t, first, "the client's first ping")
	client.SetKeepAlive(0, 0)
	// A tick already running may still send one ping.
	after := pings.Load() + 1

	// With keepalive on, this read would fail with ErrKeepAliveTimeout
	// within 2*20+50 ms; off, only the read deadline ends it.
	client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, _, err := client.ReadMessage()
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.NotErrorIs(t, err, ErrKeepAliveTimeout)
	assert.LessOrEqual(t, pings.Load(), after)
}

// TestKeepAliveOnlyPings: a zero Timeout pings and never fails.
func TestKeepAliveOnlyPings(t *testing.T) {
	client, server := newPair(t, nil, &Dialer{KeepAlive: KeepAlive{Interval: 10 * time.Millisecond}})
	pings := make(chan struct{}, 100)
	server.SetPingHandler(func(string) error { signal(pings); return nil })
	go server.ReadMessage()
	for i := 0; i < 20; i++ { // 200 ms at least: past any timeout a bug might apply
		wait(t, pings, "a ping")
	}
	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err := client.ReadMessage()
	assert.NotErrorIs(t, err, ErrKeepAliveTimeout)
}

// TestKeepAliveStoppedByClose: Close stops the timer, and SetKeepAlive on
// a closed Conn starts nothing.
func TestKeepAliveStoppedByClose(t *testing.T) {
	client, _ := newPair(t, nil, &Dialer{KeepAlive: KeepAlive{Interval: time.Hour, Timeout: time.Hour}})
	ka := client.ka.Load()
	require.NotNil(t, ka)
	require.NoError(t, client.Close())
	client.SetKeepAlive(time.Millisecond, time.Millisecond)
	ka.mu.Lock()
	defer ka.mu.Unlock()
	assert.Zero(t, ka.interval)
	assert.False(t, ka.t.Stop(), "the timer was still armed")
}

// TestKeepAliveEngine: an Engine connection with Upgrader.KeepAlive pings
// a client that answers and keeps it; a raw peer that never answers is
// failed with 1011, and OnClose gets ErrKeepAliveTimeout.
func TestKeepAliveEngine(t *testing.T) {
	const interval, timeout = 20 * time.Millisecond, 50 * time.Millisecond
	rec := newEngineRecorder(true)
	u := &Upgrader{KeepAlive: KeepAlive{Interval: interval, Timeout: timeout}}
	_, url := startEngine(t, EngineOptions{Loops: 1}, u, rec)

	t.Run("answering client stays", func(t *testing.T) {
		c, _, err := DefaultDialer.Dial(url, nil)
		require.NoError(t, err)
		defer c.Close()
		wait(t, rec.opened, "OnOpen")
		pings := make(chan struct{}, 100)
		answer := c.PingHandler()
		c.SetPingHandler(func(s string) error { signal(pings); return answer(s) })
		c.SetReadDeadline(time.Now().Add(testWait))
		go c.ReadMessage()
		// 4*(interval+timeout) worth of pings: the pongs kept it.
		for i := 0; i < int(4*(interval+timeout)/interval); i++ {
			wait(t, pings, "a ping")
		}
		select {
		case err := <-rec.closed:
			require.Failf(t, "engine closed an answering client", "%v", err)
		default:
		}
		c.Close()
		assert.NotErrorIs(t, wait(t, rec.closed, "OnClose"), ErrKeepAliveTimeout)
	})

	t.Run("silent peer", func(t *testing.T) {
		_, br := rawEngineConn(t, url, nil)
		wait(t, rec.opened, "OnOpen")
		pings, code, reason := expectPingsThenClose(t, br)
		assert.GreaterOrEqual(t, pings, 1)
		assert.Equal(t, CloseInternalServerErr, code)
		assert.Equal(t, "keepalive timeout", reason)
		err := wait(t, rec.closed, "OnClose")
		assert.ErrorIs(t, err, ErrKeepAliveTimeout)
	})

	t.Run("OnOpen overrides", func(t *testing.T) {
		rec := newEngineRecorder(false)
		rec.onOpen = func(c *Conn) { c.SetKeepAlive(0, 0) }
		_, url := startEngine(t, EngineOptions{Loops: 1}, u, rec)
		nc, br := rawEngineConn(t, url, nil)
		wait(t, rec.opened, "OnOpen")
		// Silent for well over 2*interval+timeout: with the Upgrader's
		// keepalive a ping and a close would come.
		nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := br.ReadByte()
		var ne net.Error
		require.ErrorAs(t, err, &ne, "a frame arrived after OnOpen turned keepalive off")
		assert.True(t, ne.Timeout())
	})
}

// TestKeepAliveIdleMemory measures what keepalive adds to an idle server
// connection: the heap and stack of 2,000 connections blocked in
// ReadMessage, before and after SetKeepAlive on each.
func TestKeepAliveIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 2000
	conns := make(chan *Conn, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
		c.ReadMessage()
		c.Close()
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	var clients, servers []*Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, _, err := DefaultDialer.Dial(url, nil)
		require.NoError(t, err)
		clients = append(clients, c)
		servers = append(servers, wait(t, conns, "the server Conn"))
	}
	measure := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	before := measure()
	for _, c := range servers {
		c.SetKeepAlive(time.Hour, time.Hour)
	}
	after := measure()
	per := float64(int64(after)-int64(before)) / n
	t.Logf("keepalive adds %.0f bytes per idle connection", per)
	assert.LessOrEqual(t, per, 256.0, "keepalive costs more than planned per idle connection")
	runtime.KeepAlive(servers)
}
