package websocket

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestErrorText pins the Error text of the exported error types, which
// their doc comments describe and gorilla's users match on.
func TestErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"close, named code", &CloseError{Code: CloseNormalClosure}, "websocket: close 1000 (normal)"},
		{"close, named code and text", &CloseError{Code: CloseGoingAway, Text: "server restart"}, "websocket: close 1001 (going away): server restart"},
		{"close, abnormal closure", &CloseError{Code: CloseAbnormalClosure, Text: "unexpected EOF"}, "websocket: close 1006 (abnormal closure): unexpected EOF"},
		{"close, TLS handshake", &CloseError{Code: CloseTLSHandshake}, "websocket: close 1015 (TLS handshake error)"},
		{"close, code without a name", &CloseError{Code: CloseTryAgainLater, Text: "too slow"}, "websocket: close 1013: too slow"},
		{"close, reserved code", &CloseError{Code: 1004}, "websocket: close 1004"},
		{"close, application code", &CloseError{Code: 4000, Text: "bye"}, "websocket: close 4000: bye"},
		{"handshake", HandshakeError{message: "websocket: request origin not allowed by Upgrader.CheckOrigin"}, "websocket: request origin not allowed by Upgrader.CheckOrigin"},
		{"protocol", &ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"}, "websocket: invalid UTF-8 in text message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}
