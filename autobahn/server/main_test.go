package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wsforge/websocket"
)

// startEchoServer serves echoHandler on loopback and returns its ws:// URL.
func startEchoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(echoHandler))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func TestEcho(t *testing.T) {
	base := startEchoServer(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB

	tests := []struct {
		name    string
		path    string
		msgType int
		payload []byte
	}{
		{"text", "/", websocket.TextMessage, []byte("Hello, Autobahn")},
		{"binary", "/", websocket.BinaryMessage, []byte{0, 1, 2, 0xfe, 0xff}},
		{"empty text", "/", websocket.TextMessage, []byte{}},
		{"utf-8 text on another path", "/any/path?x=1", websocket.TextMessage, []byte("κόσμε ✓")},
		{"1 MiB binary", "/", websocket.BinaryMessage, big},
		{"1 MiB text", "/", websocket.TextMessage, big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp, err := websocket.DefaultDialer.Dial(base+tc.path, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			defer conn.Close()
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
			require.NoError(t, conn.SetWriteDeadline(time.Now().Add(10*time.Second)))

			// The server echoes while the message is still arriving, so a
			// large message must be written and read concurrently or both
			// ends can stall on full socket buffers.
			writeErr := make(chan error, 1)
			go func() { writeErr <- conn.WriteMessage(tc.msgType, tc.payload) }()

			mt, got, err := conn.ReadMessage()
			require.NoError(t, err)
			require.NoError(t, <-writeErr)
			assert.Equal(t, tc.msgType, mt)
			assert.True(t, bytes.Equal(tc.payload, got), "echoed payload differs: got %d bytes, want %d", len(got), len(tc.payload))
		})
	}
}

func TestEchoSeveralMessagesThenClose(t *testing.T) {
	conn, _, err := websocket.DefaultDialer.Dial(startEchoServer(t), nil)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))

	msgs := []struct {
		msgType int
		payload string
	}{
		{websocket.TextMessage, "one"},
		{websocket.BinaryMessage, "two"},
		{websocket.TextMessage, "three"},
	}
	for _, m := range msgs {
		require.NoError(t, conn.WriteMessage(m.msgType, []byte(m.payload)))
	}
	for _, m := range msgs {
		mt, got, err := conn.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, m.msgType, mt)
		assert.Equal(t, m.payload, string(got))
	}

	// The close handshake is answered by the library, not by the server
	// program, which has no close handling of its own.
	require.NoError(t, conn.WriteMessage(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye")))
	_, _, err = conn.ReadMessage()
	assert.True(t, websocket.IsCloseError(err, websocket.CloseNormalClosure), "got %v", err)
}
