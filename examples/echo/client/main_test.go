package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// echoServer is a minimal echo endpoint that reports to the test what it
// saw: seen is closed once it has echoed `want` messages, and the error that
// ended its read loop is sent on result.
type echoServer struct {
	want   int
	seen   chan struct{}
	result chan error
}

func newEchoServer(want int) *echoServer {
	return &echoServer{want: want, seen: make(chan struct{}), result: make(chan error, 1)}
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var up websocket.Upgrader
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.result <- err
		return
	}
	defer conn.Close()
	n := 0
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			s.result <- err
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			s.result <- err
			return
		}
		n++
		if n == s.want {
			close(s.seen)
		}
	}
}

// hostOf turns an httptest URL into the host:port that run expects.
func hostOf(srv *httptest.Server) string {
	return strings.TrimPrefix(srv.URL, "http://")
}

// wait fails the test if ch does not become ready in time; it is a guard
// against hangs, not a synchronisation device.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		require.FailNow(t, "timed out waiting for "+what)
	}
	panic("unreachable")
}

func TestRunClosesCleanlyOnCancel(t *testing.T) {
	es := newEchoServer(3)
	srv := httptest.NewServer(es)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// recv hears about echoes that run logged; a full buffer just means
	// the test already has what it needs.
	recv := make(chan struct{}, 1)
	logf := func(format string, args ...any) {
		if strings.HasPrefix(format, "recv:") {
			select {
			case recv <- struct{}{}:
			default:
			}
		}
		t.Logf(format, args...)
	}

	errc := make(chan error, 1)
	go func() { errc <- run(ctx, hostOf(srv), 10*time.Millisecond, logf) }()

	wait(t, es.seen, "server to echo 3 messages")
	// The echoes travel back to run's reader, which logs them.
	wait(t, recv, "client to log an echo")
	cancel()

	require.NoError(t, wait(t, errc, "run to return"))

	err := wait(t, es.result, "server read loop to end")
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
}

func TestRunReportsServerGone(t *testing.T) {
	// The server closes with 1001 right after the handshake; run must
	// return an error rather than keep ticking.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var up websocket.Upgrader
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutting down")
		conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		// Wait for the client's answer so the close handshake completes.
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	err := run(context.Background(), hostOf(srv), time.Hour, t.Logf)
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	assert.Equal(t, "shutting down", ce.Text)
}

func TestRunDialError(t *testing.T) {
	// A server that is not a WebSocket endpoint fails the handshake.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()

	err := run(context.Background(), hostOf(srv), time.Hour, t.Logf)
	require.ErrorIs(t, err, websocket.ErrBadHandshake)
}
