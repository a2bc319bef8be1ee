package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// dial connects to the test server's /echo endpoint. The read deadline
// turns a missing echo into a test failure instead of a hang.
func dial(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/echo"
	conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	return conn
}

func TestIndexPage(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Contains(t, string(body), "<script>")
	assert.Contains(t, string(body), "new WebSocket(")
	assert.Contains(t, string(body), `"/echo"`)

	// Only the exact root is the page; other paths are not.
	resp2, err := http.Get(srv.URL + "/nope")
	require.NoError(t, err)
	resp2.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp2.StatusCode)
}

func TestEchoPlainHTTPRejected(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/echo")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestEchoMessages(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()
	conn := dial(t, srv)

	tests := []struct {
		name string
		typ  int
		data []byte
	}{
		{"text", websocket.TextMessage, []byte("hello, echo")},
		{"empty text", websocket.TextMessage, []byte{}},
		{"binary", websocket.BinaryMessage, []byte{0x00, 0xff, 0x10, 0x80}},
		{"large binary", websocket.BinaryMessage, []byte(strings.Repeat("0123456789", 10000))},
		{"utf8 text", websocket.TextMessage, []byte("héllo wörld ✓")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, conn.WriteMessage(tt.typ, tt.data))
			typ, got, err := conn.ReadMessage()
			require.NoError(t, err)
			assert.Equal(t, tt.typ, typ)
			assert.Equal(t, tt.data, got)
		})
	}
}

func TestEchoCloseHandshake(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()
	conn := dial(t, srv)

	// One round trip first, so the close is not the only traffic.
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("before close")))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "before close", string(msg))

	require.NoError(t, conn.WriteMessage(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")))

	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseNormalClosure, ce.Code)
	assert.True(t, websocket.IsCloseError(err, websocket.CloseNormalClosure))

	// The connection is finished for writing once our close was sent.
	assert.ErrorIs(t, conn.WriteMessage(websocket.TextMessage, []byte("late")), websocket.ErrCloseSent)
}

func TestGoingAway(t *testing.T) {
	srv := httptest.NewServer(newMux())
	defer srv.Close()
	conns := []*websocket.Conn{dial(t, srv), dial(t, srv)}
	// An echo means the handler has registered its connection.
	for _, c := range conns {
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("hi")))
		_, _, err := c.ReadMessage()
		require.NoError(t, err)
	}

	done := make(chan struct{})
	go func() { live.goingAway(5 * time.Second); close(done) }()
	for _, c := range conns {
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		assert.Equal(t, "server shutting down", ce.Text)
	}
	<-done
}
