package websocket

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnExtensions checks Conn.Extensions on both ends of a connection
// between our Dialer and our Upgrader over loopback TCP: the value of the
// 101 response's Sec-WebSocket-Extensions, the same on both sides, exactly
// when compression is on. TestCompressHandshakeServer and
// TestCompressDialResponse check it against raw peers' offers and answers.
func TestConnExtensions(t *testing.T) {
	tests := []struct {
		name string
		u    Upgrader
		d    Dialer
		want string
	}{
		{name: "neither side enables compression"},
		{name: "client does not offer", u: Upgrader{EnableCompression: true}},
		{name: "server declines the offer", d: Dialer{EnableCompression: true}},
		{
			name: "defaults",
			u:    Upgrader{EnableCompression: true},
			d:    Dialer{EnableCompression: true},
			want: "permessage-deflate",
		},
		{
			name: "server's options",
			u:    Upgrader{EnableCompression: true, Compression: CompressionOptions{ServerNoContextTakeover: true, ClientMaxWindowBits: 10}},
			d:    Dialer{EnableCompression: true},
			want: "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
		},
		{
			name: "client's requests",
			u:    Upgrader{EnableCompression: true},
			d:    Dialer{EnableCompression: true, Compression: CompressionOptions{ServerMaxWindowBits: 9, ClientNoContextTakeover: true}},
			want: "permessage-deflate; client_no_context_takeover; server_max_window_bits=9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := newPair(t, &tt.u, &tt.d)
			assert.Equal(t, tt.want, server.Extensions(), "server")
			assert.Equal(t, tt.want, client.Extensions(), "client")
			// A non-empty result means compression was negotiated; either
			// way messages go through intact.
			on := tt.want != ""
			assert.Equal(t, on, server.inflate != nil, "server compresses")
			assert.Equal(t, on, client.inflate != nil, "client compresses")
			msg := bytes.Repeat([]byte("extensions "), 100)
			for _, pair := range [][2]*Conn{{client, server}, {server, client}} {
				require.NoError(t, pair[0].WriteMessage(TextMessage, msg))
				_, got, err := pair[1].ReadMessage()
				require.NoError(t, err)
				require.Equal(t, msg, got)
			}
			// It stays what the handshake said.
			assert.Equal(t, tt.want, server.Extensions(), "server, later")
			assert.Equal(t, tt.want, client.Extensions(), "client, later")
		})
	}
}
