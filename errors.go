package websocket

import (
	"errors"
	"slices"
	"strconv"
)

// The message types are defined in RFC 6455, section 11.8.
const (
	// TextMessage denotes a text data message. The text message payload is
	// interpreted as UTF-8 encoded text data.
	TextMessage = 1

	// BinaryMessage denotes a binary data message.
	BinaryMessage = 2

	// CloseMessage denotes a close control message. The optional message
	// payload contains a numeric code and text. Use the FormatCloseMessage
	// function to format a close message payload.
	CloseMessage = 8

	// PingMessage denotes a ping control message. The optional message payload
	// is UTF-8 encoded text.
	PingMessage = 9

	// PongMessage denotes a pong control message. The optional message payload
	// is UTF-8 encoded text.
	PongMessage = 10
)

// Close codes defined in RFC 6455, section 11.7.
const (
	CloseNormalClosure           = 1000
	CloseGoingAway               = 1001
	CloseProtocolError           = 1002
	CloseUnsupportedData         = 1003
	CloseNoStatusReceived        = 1005
	CloseAbnormalClosure         = 1006
	CloseInvalidFramePayloadData = 1007
	ClosePolicyViolation         = 1008
	CloseMessageTooBig           = 1009
	CloseMandatoryExtension      = 1010
	CloseInternalServerErr       = 1011
	CloseServiceRestart          = 1012
	CloseTryAgainLater           = 1013
	CloseTLSHandshake            = 1015
)

// ErrCloseSent is returned when the application writes a message to the
// connection after sending a close message.
var ErrCloseSent = errors.New("websocket: close sent")

// ErrReadLimit is returned when reading a message that is larger than the
// read limit set for the connection. The connection has then been failed
// with close code 1009 (CloseMessageTooBig).
var ErrReadLimit = errors.New("websocket: read limit exceeded")

// ErrBadHandshake is returned when the server response to opening handshake is
// invalid. Dial returns it together with the server's *http.Response.
var ErrBadHandshake = errors.New("websocket: bad handshake")

// ErrResponseHeaderTooLarge is wrapped by the error Dial returns when the
// server's (or an HTTP proxy's) handshake response is larger than
// Dialer.MaxResponseHeaderBytes.
var ErrResponseHeaderTooLarge = errors.New("websocket: handshake response header too large")

// CloseError represents a close message. The read methods return a
// *CloseError (unwrapped, so that a type assertion works as with gorilla)
// when the peer sent a close frame, and one with Code CloseAbnormalClosure
// when the connection ended without a close frame.
type CloseError struct {
	// Code is defined in RFC 6455, section 11.7.
	Code int

	// Text is the optional text payload.
	Text string
}

// Error returns "websocket: close " and the code, then the code's name in
// parentheses for the codes RFC 6455 defines (1000-1003, 1005-1011 and
// 1015), then ": " and Text when Text is not empty: for example
// "websocket: close 1001 (going away): server restart". The text is
// gorilla's, character for character, so that programs and logs that
// match on it keep working; Text is the peer's, unescaped, so prefer Code,
// IsCloseError and IsUnexpectedCloseError to parsing it.
func (e *CloseError) Error() string {
	s := make([]byte, 0, 48+len(e.Text))
	s = append(s, "websocket: close "...)
	s = strconv.AppendInt(s, int64(e.Code), 10)
	if name := closeCodeName(e.Code); name != "" {
		s = append(s, " ("...)
		s = append(s, name...)
		s = append(s, ')')
	}
	if e.Text != "" {
		s = append(s, ": "...)
		s = append(s, e.Text...)
	}
	return string(s)
}

func closeCodeName(code int) string {
	switch code {
	case CloseNormalClosure:
		return "normal"
	case CloseGoingAway:
		return "going away"
	case CloseProtocolError:
		return "protocol error"
	case CloseUnsupportedData:
		return "unsupported data"
	case CloseNoStatusReceived:
		return "no status"
	case CloseAbnormalClosure:
		return "abnormal closure"
	case CloseInvalidFramePayloadData:
		return "invalid payload data"
	case ClosePolicyViolation:
		return "policy violation"
	case CloseMessageTooBig:
		return "message too big"
	case CloseMandatoryExtension:
		return "mandatory extension missing"
	case CloseInternalServerErr:
		return "internal server error"
	case CloseTLSHandshake:
		return "TLS handshake error"
	}
	return ""
}

// IsCloseError reports whether err is (or wraps) a *CloseError with one of
// the specified codes.
func IsCloseError(err error, codes ...int) bool {
	var e *CloseError
	return errors.As(err, &e) && slices.Contains(codes, e.Code)
}

// IsUnexpectedCloseError reports whether err is (or wraps) a *CloseError
// with a code that is not in the list of expected codes.
func IsUnexpectedCloseError(err error, expectedCodes ...int) bool {
	var e *CloseError
	return errors.As(err, &e) && !slices.Contains(expectedCodes, e.Code)
}

// HandshakeError describes an error with the handshake from the peer.
type HandshakeError struct {
	message string
}

// Error returns why the Upgrader refused the upgrade request, starting
// with "websocket: ", for example "websocket: request origin not allowed by
// Upgrader.CheckOrigin". Where gorilla makes the same check, the message is
// gorilla's word for word. The HTTP status sent to the client is not part
// of it.
func (e HandshakeError) Error() string { return e.message }

// ProtocolError is returned by the read methods when the peer broke
// RFC 6455 (or RFC 7692). Before returning it the connection sent a close
// frame with Code to the peer and closed the network connection.
type ProtocolError struct {
	// Code is the close code sent to the peer: CloseProtocolError for a
	// malformed frame, CloseInvalidFramePayloadData for invalid UTF-8.
	Code int
	// Reason says what the peer did wrong.
	Reason string
}

// Error returns "websocket: " followed by Reason, for example
// "websocket: invalid UTF-8 in text message". The close code sent to the
// peer is in Code, not in the text.
func (e *ProtocolError) Error() string { return "websocket: " + e.Reason }

// netError is a timeout error with the net.Error methods, for write lock
// waits that run past a deadline.
type netError struct {
	msg     string
	timeout bool
}

func (e *netError) Error() string   { return e.msg }
func (e *netError) Timeout() bool   { return e.timeout }
func (e *netError) Temporary() bool { return e.timeout }

var (
	errWriteTimeout   = &netError{msg: "websocket: write timeout", timeout: true}
	errUnexpectedEOF  = &CloseError{Code: CloseAbnormalClosure, Text: "unexpected EOF"}
	errBadWriteOpCode = errors.New("websocket: bad write message type")
	errWriteClosed    = errors.New("websocket: write closed")
	errInvalidControl = errors.New("websocket: invalid control frame")
)
