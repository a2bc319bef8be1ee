package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// testConfig has timeouts long enough never to fire by accident; tests
// that exercise them shorten them.
var testConfig = Config{
	WriteWait:      10 * time.Second,
	PongWait:       30 * time.Second,
	PingPeriod:     20 * time.Second,
	MaxMessageSize: 4096,
	SendBuffer:     4,
}

// guard bounds every wait in these tests; reaching it is a failure, not a
// way of letting time pass.
const guard = 10 * time.Second

type room struct {
	hub  *Hub
	srv  *httptest.Server
	url  string
	stop func() // stops the hub and waits for Run to return
}

// startRoom serves a hub over loopback. wrap, if not nil, wraps the test
// server's listener. On cleanup, after the test's connections are closed
// (they were registered later, so their cleanups run first), it closes the
// server, stops the hub and checks that every client goroutine ended.
func startRoom(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *room {
	t.Helper()
	hub := NewHub(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		hub.Run(ctx)
		close(runDone)
	}()

	srv := httptest.NewUnstartedServer(newMux(hub))
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()

	r := &room{
		hub: hub,
		srv: srv,
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws",
		stop: func() {
			cancel()
			waitFor(t, runDone, "hub Run to return")
		},
	}
	t.Cleanup(func() {
		srv.Close()
		r.stop()
		waited := make(chan struct{})
		go func() {
			hub.Wait()
			close(waited)
		}()
		waitFor(t, waited, "client goroutines to end")
	})
	return r
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		require.FailNow(t, "timed out waiting for "+what)
	}
}

// dial joins the room with d (DefaultDialer if nil).
func (r *room) dial(t *testing.T, d *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, _, err := d.Dial(r.url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClients waits until the hub holds n clients. Registration happens
// after the handshake has completed on the client side, and no event tells
// the client when the hub has processed it, so this polls the hub.
func (r *room) waitClients(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return r.hub.ClientCount() == n },
		guard, 2*time.Millisecond, "want %d clients", n)
}

func send(t *testing.T, conn *websocket.Conn, text string) {
	t.Helper()
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(text)))
}

func expect(t *testing.T, conn *websocket.Conn, want string) {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	typ, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, websocket.TextMessage, typ)
	assert.Equal(t, want, string(msg))
}

// expectClose reads until the connection ends and returns the close code
// the server sent.
func expectClose(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		return ce
	}
}

func TestIndexPage(t *testing.T) {
	r := startRoom(t, testConfig, nil)

	resp, err := http.Get(r.srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, string(body), "new WebSocket(")
	assert.Contains(t, string(body), `location.host + "/ws"`)
}

func TestBroadcastReachesEveryone(t *testing.T) {
	r := startRoom(t, testConfig, nil)
	alice := r.dial(t, nil)
	bob := r.dial(t, nil)
	r.waitClients(t, 2)

	conns := map[string]*websocket.Conn{"alice": alice, "bob": bob}
	tests := []struct {
		name string
		from string
		text string
		want string
	}{
		{"alice speaks", "alice", "hello, room", "hello, room"},
		{"bob answers", "bob", "hi alice", "hi alice"},
		{"surrounding space trimmed", "alice", "  \tpadded\n", "padded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, conns[tt.from], tt.text)
			expect(t, alice, tt.want)
			expect(t, bob, tt.want)
		})
	}

	t.Run("blank message not relayed", func(t *testing.T) {
		send(t, bob, "   ")
		send(t, bob, "after blank")
		// Messages from one sender stay in order, so the blank one
		// would have arrived first.
		expect(t, alice, "after blank")
		expect(t, bob, "after blank")
	})
}

// smallSendBuffer shrinks the kernel send buffer of accepted connections,
// so that a client that stops reading pushes back on the server after a
// few kilobytes instead of a few megabytes.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestSlowClientIsDropped(t *testing.T) {
	r := startRoom(t, testConfig, func(l net.Listener) net.Listener { return smallSendBuffer{l} })

	fast := r.dial(t, nil)
	// slow never reads until it has been dropped. A small receive buffer
	// on its side too keeps the amount of data in flight small.
	slowDialer := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}
	slow := r.dial(t, slowDialer)
	r.waitClients(t, 2)

	// Every message goes to both clients. Once slow's socket buffers and
	// then its queue of testConfig.SendBuffer messages are full, the hub
	// must drop it rather than stop relaying to fast. fast reading its
	// own message back means the hub has handled that broadcast, and
	// ClientCount, answered by the hub afterwards, sees its outcome.
	payload := strings.Repeat("x", 1000)
	const limit = 2000 // ~2 MB; far more than the buffers can hold
	sent := 0
	for sent < limit && r.hub.ClientCount() == 2 {
		msg := strconv.Itoa(sent) + payload
		send(t, fast, msg)
		expect(t, fast, msg)
		sent++
	}
	require.Equal(t, 1, r.hub.ClientCount(), "slow client still in the room after %d messages", sent)
	t.Logf("slow client dropped after %d messages", sent)

	// The room goes on without it.
	send(t, fast, "still here")
	expect(t, fast, "still here")
	assert.Equal(t, 1, r.hub.ClientCount())

	// Once slow reads again it gets what was already queued, then a
	// close frame telling it why it was dropped.
	ce := expectClose(t, slow)
	assert.Equal(t, websocket.CloseTryAgainLater, ce.Code)
	assert.Equal(t, "too slow", ce.Text)
}

func TestDisconnectUnregisters(t *testing.T) {
	tests := []struct {
		name  string
		leave func(*websocket.Conn) error
	}{
		{"close handshake", func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
		}},
		{"connection dropped", func(c *websocket.Conn) error {
			return c.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRoom(t, testConfig, nil)
			stay := r.dial(t, nil)
			leave := r.dial(t, nil)
			r.waitClients(t, 2)

			require.NoError(t, tt.leave(leave))
			r.waitClients(t, 1)

			send(t, stay, "anyone?")
			expect(t, stay, "anyone?")
		})
	}
}

func TestOversizedMessageDisconnects(t *testing.T) {
	cfg := testConfig
	cfg.MaxMessageSize = 16
	r := startRoom(t, cfg, nil)
	conn := r.dial(t, nil)
	r.waitClients(t, 1)

	send(t, conn, strings.Repeat("y", 17))
	ce := expectClose(t, conn)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	r.waitClients(t, 0)
}

// TestPingsKeepClientsAlive checks that a client that answers pings stays
// while one that never reads is dropped after PongWait. A pong must make
// it back within PongWait, which on a loaded machine can take a while:
// PongWait is 2 s (20 pings), not the tight 250 ms it once was, which
// failed under CPU load.
func TestPingsKeepClientsAlive(t *testing.T) {
	cfg := testConfig
	cfg.PingPeriod = 100 * time.Millisecond
	cfg.PongWait = 2 * time.Second
	r := startRoom(t, cfg, nil)

	// live answers pings, as every reading client does by default; the
	// custom handler only adds a count.
	live := r.dial(t, nil)
	pings := make(chan struct{}, 1)
	live.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan string, 16)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, msg, err := live.ReadMessage()
			if err != nil {
				return
			}
			msgs <- string(msg)
		}
	}()
	t.Cleanup(func() {
		live.Close()
		<-readerDone
	})

	// silent never reads, so it never sees a ping nor answers one.
	_ = r.dial(t, nil)
	r.waitClients(t, 2)

	// Without pongs a client is gone after PongWait.
	r.waitClients(t, 1)

	// live has answered pings for well over PongWait (30 periods, 1.5
	// times PongWait) and is still there.
	for i := 0; i < 30; i++ {
		waitFor(t, pings, "ping")
	}
	assert.Equal(t, 1, r.hub.ClientCount())
	sender := r.dial(t, nil)
	r.waitClients(t, 2)
	send(t, sender, "ping pong")
	select {
	case msg := <-msgs:
		assert.Equal(t, "ping pong", msg)
	case <-time.After(guard):
		require.FailNow(t, "live client got no message")
	}
}

func TestHubShutdown(t *testing.T) {
	r := startRoom(t, testConfig, nil)
	a := r.dial(t, nil)
	b := r.dial(t, nil)
	r.waitClients(t, 2)

	r.stop()
	for _, c := range []*websocket.Conn{a, b} {
		ce := expectClose(t, c)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	}
	assert.Equal(t, 0, r.hub.ClientCount())

	// A late arrival is turned away the same way.
	late := r.dial(t, nil)
	ce := expectClose(t, late)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
}
