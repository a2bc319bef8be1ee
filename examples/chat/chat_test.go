package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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

type testServer struct {
	hub  *Hub
	srv  *httptest.Server
	url  string // of /ws, without a query
	stop func() // stops the hub and waits for Run to return

	hijacked atomic.Int32 // connections taken over from net/http
}

// startServer serves a hub over loopback. wrap, if not nil, wraps the
// test server's listener. On cleanup, after the test's connections are
// closed (they were registered later, so their cleanups run first), it
// closes the server, stops the hub and checks that every client goroutine
// ended.
func startServer(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
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
	ts := &testServer{
		hub: hub,
		srv: srv,
		url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws",
		stop: func() {
			cancel()
			waitFor(t, runDone, "hub Run to return")
		},
	}
	// Hijack moves a connection to StateHijacked before Upgrade writes
	// its 101, so by the time a client has its answer this count has it.
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			ts.hijacked.Add(1)
		}
	}
	srv.Start()
	ts.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		srv.Close()
		ts.stop()
		waited := make(chan struct{})
		go func() {
			hub.Wait()
			close(waited)
		}()
		waitFor(t, waited, "client goroutines to end")
	})
	return ts
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		require.FailNow(t, "timed out waiting for "+what)
	}
}

// dialQuery connects to /ws?query with d (DefaultDialer if nil).
func (ts *testServer) dialQuery(t *testing.T, d *websocket.Dialer, query string) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, _, err := d.Dial(ts.url+"?"+query, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// join enters room as name and waits for the presence list that shows
// it there, so that the hub has registered it.
func (ts *testServer) join(t *testing.T, d *websocket.Dialer, room, name string) *websocket.Conn {
	t.Helper()
	conn := ts.dialQuery(t, d, url.Values{"room": {room}, "name": {name}}.Encode())
	for {
		ev := next(t, conn)
		if ev.Type == "presence" && slices.Contains(ev.Users, name) {
			return conn
		}
	}
}

// waitClients waits until the hub holds n clients. No event tells a
// client that another has left, so this polls the hub.
func (ts *testServer) waitClients(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return ts.hub.ClientCount() == n },
		guard, 2*time.Millisecond, "want %d clients", n)
}

func send(t *testing.T, conn *websocket.Conn, text string) {
	t.Helper()
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(text)))
}

// next returns the next event conn receives.
func next(t *testing.T, conn *websocket.Conn) event {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	typ, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.TextMessage, typ)
	var ev event
	require.NoError(t, json.Unmarshal(msg, &ev))
	return ev
}

// expect reads past presence lists to the next chat message and checks
// who sent it and what it says.
func expect(t *testing.T, conn *websocket.Conn, from, text string) {
	t.Helper()
	for {
		ev := next(t, conn)
		if ev.Type == "presence" {
			continue
		}
		assert.Equal(t, "message", ev.Type)
		assert.Equal(t, from, ev.From)
		assert.Equal(t, text, ev.Text)
		return
	}
}

// expectPresence reads past chat messages to the next presence list.
func expectPresence(t *testing.T, conn *websocket.Conn, room string, users ...string) {
	t.Helper()
	for {
		ev := next(t, conn)
		if ev.Type == "message" {
			continue
		}
		assert.Equal(t, event{Type: "presence", Room: room, Users: users}, ev)
		return
	}
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
	ts := startServer(t, testConfig, nil)

	resp, err := http.Get(ts.srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, string(body), "new WebSocket(")
	assert.Contains(t, string(body), `"/ws?"`)
}

func TestTokenCheckedBeforeUpgrade(t *testing.T) {
	tests := []struct {
		name       string
		token      string // the server's
		query      string
		wantStatus int
	}{
		{"no token needed", "", "", http.StatusSwitchingProtocols},
		{"no token needed, one given", "", "token=x", http.StatusSwitchingProtocols},
		{"right token", "s3cret", "token=s3cret", http.StatusSwitchingProtocols},
		{"missing token", "s3cret", "", http.StatusUnauthorized},
		{"wrong token", "s3cret", "token=s3cre", http.StatusUnauthorized},
		{"token plus more", "s3cret", "token=s3cret2", http.StatusUnauthorized},
		{"wrong token, bad room", "s3cret", "token=no&room=NO!", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig
			cfg.Token = tt.token
			ts := startServer(t, cfg, nil)
			conn, resp, err := websocket.DefaultDialer.Dial(ts.url+"?"+tt.query, nil)
			require.NotNil(t, resp)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantStatus != http.StatusSwitchingProtocols {
				require.ErrorIs(t, err, websocket.ErrBadHandshake)
				body, _ := io.ReadAll(resp.Body)
				assert.Equal(t, "wrong or missing token\n", string(body))
				assert.Zero(t, ts.hijacked.Load(), "a refused request was hijacked")
				return
			}
			require.NoError(t, err)
			defer conn.Close()
			assert.Equal(t, int32(1), ts.hijacked.Load())
			expectPresence(t, conn, "lobby", "anonymous")
		})
	}
}

func TestRoomAndNameValidated(t *testing.T) {
	tests := []struct {
		name   string
		query  url.Values
		reason string // empty: accepted
	}{
		{"defaults", url.Values{}, ""},
		{"plain room", url.Values{"room": {"go-nuts_2"}}, ""},
		{"longest room", url.Values{"room": {strings.Repeat("r", 32)}}, ""},
		{"room too long", url.Values{"room": {strings.Repeat("r", 33)}}, "room name longer than 32 characters"},
		{"capitals", url.Values{"room": {"Lobby"}}, "room name may use only a-z, 0-9, - and _"},
		{"space", url.Values{"room": {"a b"}}, "room name may use only a-z, 0-9, - and _"},
		{"slash", url.Values{"room": {"../etc"}}, "room name may use only a-z, 0-9, - and _"},
		{"non-ASCII room", url.Values{"room": {"café"}}, "room name may use only a-z, 0-9, - and _"},
		{"non-ASCII name", url.Values{"name": {"Zoë ✓"}}, ""},
		{"longest name", url.Values{"name": {strings.Repeat("é", 32)}}, ""},
		{"name too long", url.Values{"name": {strings.Repeat("é", 33)}}, "user name longer than 32 characters"},
		{"control in name", url.Values{"name": {"a\x07b"}}, "user name has a control character"},
		{"name not UTF-8", url.Values{"name": {"\xff"}}, "user name is not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, testConfig, nil)
			conn := ts.dialQuery(t, nil, tt.query.Encode())
			if tt.reason == "" {
				ev := next(t, conn)
				assert.Equal(t, "presence", ev.Type)
				return
			}
			ce := expectClose(t, conn)
			assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
			assert.Equal(t, tt.reason, ce.Text)
			assert.Zero(t, ts.hub.ClientCount())
		})
	}
}

func TestBroadcastReachesEveryone(t *testing.T) {
	ts := startServer(t, testConfig, nil)
	alice := ts.join(t, nil, "lobby", "alice")
	bob := ts.join(t, nil, "lobby", "bob")

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
		{"markup is text", "bob", "<b>bold</b>", "<b>bold</b>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send(t, conns[tt.from], tt.text)
			expect(t, alice, tt.from, tt.want)
			expect(t, bob, tt.from, tt.want)
		})
	}

	t.Run("blank message not relayed", func(t *testing.T) {
		send(t, bob, "   ")
		send(t, bob, "after blank")
		// Messages from one sender stay in order, so the blank one
		// would have arrived first.
		expect(t, alice, "bob", "after blank")
		expect(t, bob, "bob", "after blank")
	})
}

func TestRoomsAreSeparate(t *testing.T) {
	ts := startServer(t, testConfig, nil)
	ann := ts.join(t, nil, "go", "ann")
	ben := ts.join(t, nil, "go", "ben")
	cat := ts.join(t, nil, "rust", "cat")
	dan := ts.join(t, nil, "rust", "dan")

	// Each message is seen by its room before the next is sent, so the
	// hub has handled it: had it leaked into the other room, it would
	// come there before that room's next message.
	steps := []struct {
		from *websocket.Conn
		name string
		text string
		room []*websocket.Conn
	}{
		{ann, "ann", "gophers here", []*websocket.Conn{ann, ben}},
		{cat, "cat", "crabs here", []*websocket.Conn{cat, dan}},
		{ben, "ben", "go again", []*websocket.Conn{ann, ben}},
		{dan, "dan", "rust again", []*websocket.Conn{cat, dan}},
	}
	for _, st := range steps {
		send(t, st.from, st.text)
		for _, c := range st.room {
			expect(t, c, st.name, st.text)
		}
	}
}

func TestPresenceOnJoinAndLeave(t *testing.T) {
	ts := startServer(t, testConfig, nil)
	zoe := ts.dialQuery(t, nil, "room=r&name=zoe")
	expectPresence(t, zoe, "r", "zoe")
	other := ts.join(t, nil, "elsewhere", "x") // not in r: no presence for r
	amy := ts.dialQuery(t, nil, "room=r&name=amy")
	expectPresence(t, zoe, "r", "amy", "zoe")
	expectPresence(t, amy, "r", "amy", "zoe")

	require.NoError(t, other.Close())
	require.NoError(t, amy.WriteMessage(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")))
	expectPresence(t, zoe, "r", "zoe")
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
	r := startServer(t, testConfig, func(l net.Listener) net.Listener { return smallSendBuffer{l} })

	fast := r.join(t, nil, "lobby", "fast")
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
	slow := r.join(t, slowDialer, "lobby", "slow")
	expectPresence(t, fast, "lobby", "fast", "slow")

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
		expect(t, fast, "fast", msg)
		sent++
	}
	require.Equal(t, 1, r.hub.ClientCount(), "slow client still in the room after %d messages", sent)
	t.Logf("slow client dropped after %d messages", sent)

	// The room goes on without it, and says so.
	expectPresence(t, fast, "lobby", "fast")
	send(t, fast, "still here")
	expect(t, fast, "fast", "still here")
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
			r := startServer(t, testConfig, nil)
			stay := r.join(t, nil, "lobby", "stay")
			leave := r.join(t, nil, "lobby", "leave")
			expectPresence(t, stay, "lobby", "leave", "stay")

			require.NoError(t, tt.leave(leave))
			expectPresence(t, stay, "lobby", "stay")
			assert.Equal(t, 1, r.hub.ClientCount())

			send(t, stay, "anyone?")
			expect(t, stay, "stay", "anyone?")
		})
	}
}

func TestOversizedMessageDisconnects(t *testing.T) {
	cfg := testConfig
	cfg.MaxMessageSize = 16
	r := startServer(t, cfg, nil)
	conn := r.join(t, nil, "lobby", "big")

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
	r := startServer(t, cfg, nil)

	// live answers pings, as every reading client does by default; the
	// custom handler only adds a count.
	live := r.dialQuery(t, nil, "name=live")
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
			var ev event
			if err := live.ReadJSON(&ev); err != nil {
				return
			}
			if ev.Type == "message" {
				msgs <- ev.Text
			}
		}
	}()
	t.Cleanup(func() {
		live.Close()
		<-readerDone
	})

	// silent never reads, so it never sees a ping nor answers one.
	_ = r.dialQuery(t, nil, "name=silent")
	r.waitClients(t, 2)

	// Without pongs a client is gone after PongWait.
	r.waitClients(t, 1)

	// live has answered pings for well over PongWait (30 periods, 1.5
	// times PongWait) and is still there.
	for i := 0; i < 30; i++ {
		waitFor(t, pings, "ping")
	}
	assert.Equal(t, 1, r.hub.ClientCount())
	sender := r.dialQuery(t, nil, "name=sender")
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
	r := startServer(t, testConfig, nil)
	a := r.join(t, nil, "one", "a")
	b := r.join(t, nil, "two", "b")
	assert.Equal(t, 2, r.hub.ClientCount())

	r.stop()
	for _, c := range []*websocket.Conn{a, b} {
		ce := expectClose(t, c)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	}
	assert.Equal(t, 0, r.hub.ClientCount())

	// A late arrival is turned away the same way.
	late := r.dialQuery(t, nil, "")
	ce := expectClose(t, late)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
}
