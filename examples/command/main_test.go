//go:build unix

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// guard bounds every wait in these tests; reaching it is a failure, not a
// way of letting time pass.
const guard = 10 * time.Second

// testConfig has timeouts that never fire by accident, and a short grace
// so that the tests of ending a program stay quick.
func testConfig(command ...string) Config {
	return Config{
		Command:    command,
		ReadLimit:  64 << 10,
		WriteWait:  guard,
		PongWait:   30 * time.Second,
		PingPeriod: 20 * time.Second,
		Grace:      200 * time.Millisecond,
		MaxLine:    4096,
	}
}

type testServer struct {
	s      *Server
	srv    *httptest.Server
	url    string
	reaped chan *os.ProcessState
}

// start serves cfg over loopback; wrap, if not nil, wraps the listener.
// Cleanup closes the server and waits for every program to be reaped.
func start(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	s, err := NewServer(cfg)
	require.NoError(t, err)
	ts := &testServer{s: s, reaped: make(chan *os.ProcessState, 16)}
	s.reaped = func(st *os.ProcessState) { ts.reaped <- st }
	ts.srv = httptest.NewUnstartedServer(newMux(s))
	if wrap != nil {
		ts.srv.Listener = wrap(ts.srv.Listener)
	}
	ts.srv.Start()
	ts.url = "ws" + strings.TrimPrefix(ts.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		ts.srv.Close()
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		waitFor(t, closed, "every program to be reaped")
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

func (ts *testServer) dial(t *testing.T, d *websocket.Dialer) *websocket.Conn {
	t.Helper()
	if d == nil {
		d = websocket.DefaultDialer
	}
	conn, _, err := d.Dial(ts.url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitReaped returns the state of the next program to be reaped.
func (ts *testServer) waitReaped(t *testing.T) *os.ProcessState {
	t.Helper()
	select {
	case st := <-ts.reaped:
		return st
	case <-time.After(guard):
		require.FailNow(t, "program not reaped")
		return nil
	}
}

func read(t *testing.T, conn *websocket.Conn) message {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	typ, data, err := conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.TextMessage, typ)
	var m message
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

func send(t *testing.T, conn *websocket.Conn, text string) {
	t.Helper()
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(text)))
}

// expectClose reads until the connection ends and returns the server's
// close frame.
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
	ts := start(t, testConfig("cat"), nil)
	resp, err := http.Get(ts.srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, string(body), `location.host + "/ws"`)
}

func TestNewServerNeedsAProgram(t *testing.T) {
	for _, cmd := range [][]string{nil, {"wsforge-no-such-program"}} {
		_, err := NewServer(testConfig(cmd...))
		assert.Error(t, err, "%q", cmd)
	}
}

func TestRelay(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		input   []string
		want    []message // after the start message
	}{
		{"cat echoes a line", []string{"cat"}, []string{"hello"},
			[]message{{Type: "stdout", Data: "hello\n"}}},
		{"a newline is not doubled", []string{"cat"}, []string{"one\n"},
			[]message{{Type: "stdout", Data: "one\n"}}},
		{"one message per line", []string{"cat"}, []string{"a\nb"},
			[]message{{Type: "stdout", Data: "a\n"}, {Type: "stdout", Data: "b\n"}}},
		{"bc computes", []string{"bc", "-q"}, []string{"6*7", "2^10"},
			[]message{{Type: "stdout", Data: "42\n"}, {Type: "stdout", Data: "1024\n"}}},
		// Standard output and error are separate pipes read by separate
		// goroutines, so only lines of one of them keep their order.
		{"standard error", []string{"sh", "-c", `read x; echo "no $x" >&2; echo again >&2`}, []string{"way"},
			[]message{{Type: "stderr", Data: "no way\n"}, {Type: "stderr", Data: "again\n"}}},
		{"a long line in pieces", []string{"sh", "-c", `read x; echo "$x$x"`}, []string{strings.Repeat("y", 3000)},
			[]message{{Type: "stdout", Data: strings.Repeat("y", 4096)}, {Type: "stdout", Data: strings.Repeat("y", 1904) + "\n"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, testConfig(tt.command...), nil)
			conn := ts.dial(t, nil)
			assert.Equal(t, message{Type: "start", Data: strings.Join(tt.command, " ")}, read(t, conn))
			for _, in := range tt.input {
				send(t, conn, in)
			}
			for _, want := range tt.want {
				assert.Equal(t, want, read(t, conn))
			}
		})
	}
}

func TestExitStatusReported(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   message
	}{
		{"success", `exit 0`, message{Type: "exit", Data: "exit status 0"}},
		{"failure", `echo bye; exit 3`, message{Type: "exit", Data: "exit status 3", Code: 3}},
		{"killed", `kill -9 $$`, message{Type: "exit", Data: "signal: killed", Code: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, testConfig("sh", "-c", tt.script), nil)
			conn := ts.dial(t, nil)
			var got message
			for got = read(t, conn); got.Type != "exit"; got = read(t, conn) {
			}
			assert.Equal(t, tt.want, got)
			ce := expectClose(t, conn)
			assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
			assert.Equal(t, "program exited", ce.Text)
			ts.waitReaped(t)
		})
	}
}

// TestPageGoneEndsProgram checks each step of ending a program whose page
// has left: end of input, SIGINT, SIGTERM, SIGKILL. The programs ignore
// the signals they should outlast (an ignored signal stays ignored across
// exec) and say "ready" once they do, so no signal can come too early.
func TestPageGoneEndsProgram(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantSignal syscall.Signal // 0: exits by itself, status 0
	}{
		{"end of input", `echo ready; cat`, 0},
		{"SIGINT", `echo ready; exec sleep 1000`, syscall.SIGINT},
		{"SIGTERM", `trap "" INT; echo ready; exec sleep 1000`, syscall.SIGTERM},
		{"SIGKILL", `trap "" INT TERM; echo ready; exec sleep 1000`, syscall.SIGKILL},
	}
	leave := map[string]func(*websocket.Conn) error{
		"close handshake": func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
		},
		"connection dropped": func(c *websocket.Conn) error { return c.Close() },
	}
	for _, tt := range tests {
		for how, leave := range leave {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				ts := start(t, testConfig("sh", "-c", tt.script), nil)
				conn := ts.dial(t, nil)
				assert.Equal(t, "start", read(t, conn).Type)
				assert.Equal(t, message{Type: "stdout", Data: "ready\n"}, read(t, conn))

				require.NoError(t, leave(conn))
				st := ts.waitReaped(t)
				ws := st.Sys().(syscall.WaitStatus)
				if tt.wantSignal == 0 {
					assert.True(t, st.Success(), "%v", st)
				} else {
					require.True(t, ws.Signaled(), "%v", st)
					assert.Equal(t, tt.wantSignal, ws.Signal())
				}
			})
		}
	}
}

func TestShutdownTellsPages(t *testing.T) {
	ts := start(t, testConfig("cat"), nil)
	conns := []*websocket.Conn{ts.dial(t, nil), ts.dial(t, nil)}
	for _, c := range conns {
		require.Equal(t, "start", read(t, c).Type)
	}
	closed := make(chan struct{})
	go func() { ts.s.Close(); close(closed) }()
	for _, c := range conns {
		ce := expectClose(t, c)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		assert.Equal(t, "server shutting down", ce.Text)
	}
	waitFor(t, closed, "Close to return")
	for range conns {
		ts.waitReaped(t)
	}

	resp, err := http.Get(ts.srv.URL + "/ws")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestOversizedMessageRefused(t *testing.T) {
	ts := start(t, testConfig("cat"), nil)
	conn := ts.dial(t, nil)
	require.Equal(t, "start", read(t, conn).Type)
	// The write may fail once the server has closed; the close frame it
	// sent first is what matters.
	conn.WriteMessage(websocket.TextMessage, make([]byte, 10<<20))
	ce := expectClose(t, conn)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	ts.waitReaped(t)
}

// smallBuffers shrinks the kernel socket buffers of accepted connections,
// so that back-pressure reaches the sender after kilobytes, not megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestFloodWithoutReadingIsBounded sends 10 MiB to cat in messages under
// the read limit and never reads cat's output. The server must stop
// reading once cat's output backs up, so the sender stalls long before
// 10 MiB, and the server holds no more than the read limit meanwhile.
func TestFloodWithoutReadingIsBounded(t *testing.T) {
	cfg := testConfig("cat")
	ts := start(t, cfg, func(l net.Listener) net.Listener { return smallBuffers{l} })
	d := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		c, err := nd.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
			tc.SetWriteBuffer(4096)
		}
		return c, err
	}}
	conn := ts.dial(t, d)
	require.Equal(t, "start", read(t, conn).Type)
	before := heapInUse()

	const total = 10 << 20
	chunk := []byte(strings.Repeat("z", 32<<10))
	// A write that makes no progress for a second means the pipeline is
	// full. On a loaded machine the stall may be declared early; that can
	// only make the measurement below kinder to a faulty server, never
	// fail a correct one.
	sent := 0
	for sent < total {
		require.NoError(t, conn.SetWriteDeadline(time.Now().Add(time.Second)))
		if err := conn.WriteMessage(websocket.TextMessage, chunk); err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			break
		}
		sent += len(chunk)
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("sent %d KiB before stalling; heap in use grew by %d KiB", sent>>10, grown>>10)
	assert.Less(t, sent, total, "the server read everything: no back-pressure")
	// The client's half-written frame is on the same heap: it masks a
	// copy of each frame it sends.
	assert.Less(t, grown, cfg.ReadLimit+int64(len(chunk)), "the server holds more than the read limit")

	conn.Close()
	ts.waitReaped(t)
}
