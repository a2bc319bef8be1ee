package websocket

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Upgrader specifies parameters for upgrading an HTTP connection to a
// WebSocket connection.
//
// An Upgrader is not modified by its methods, so one value may serve any
// number of concurrent Upgrade calls.
type Upgrader struct {
	// HandshakeTimeout bounds how long writing the handshake response may
	// take once the connection has been hijacked. Zero means no limit.
	HandshakeTimeout time.Duration

	// ReadBufferSize and WriteBufferSize set the sizes in bytes of the
	// connection's read and write buffers. Zero means a default size. The
	// sizes do not limit the size of the messages that can be sent or
	// received.
	ReadBufferSize, WriteBufferSize int

	// WriteBufferPool, if not nil, supplies the write buffers that the
	// connection holds while it writes a message. Without it they come
	// from the library's own pools, so a connection never keeps one
	// between messages either way (gorilla keeps one unless a pool is
	// set); the field is there for gorilla programs. The pool holds values
	// the library puts there itself: a value of another kind or size (a
	// pool whose New returns []byte, a pool shared between different
	// WriteBufferSizes) is dropped and a buffer allocated instead. Use one
	// pool per distinct WriteBufferSize.
	WriteBufferPool BufferPool

	// Subprotocols lists the server's supported subprotocols, most preferred
	// first. If it is not nil, Upgrade picks the first protocol in this list
	// that the client also requested; if there is none, no protocol is
	// negotiated and the response carries no Sec-WebSocket-Protocol header.
	// If it is nil, Upgrade uses the Sec-Websocket-Protocol field of the
	// responseHeader argument, if any.
	Subprotocols []string

	// Error, if not nil, writes the HTTP response when the upgrade fails,
	// before the connection is hijacked; it receives the HTTP status and
	// the reason, a HandshakeError that Upgrade also returns. If Error is
	// nil, Upgrade replies with http.Error, the status text as the body,
	// and a "Sec-WebSocket-Version: 13" header.
	Error func(w http.ResponseWriter, r *http.Request, status int, reason error)

	// CheckOrigin reports whether the request's Origin header is
	// acceptable; if it returns false, Upgrade fails with status 403. If
	// CheckOrigin is nil, a safe default is used: a request without an
	// Origin header is accepted, and one with an Origin header is accepted
	// only if the origin's host equals the request's Host, ignoring ASCII
	// case.
	//
	// A CheckOrigin function must validate the origin carefully to prevent
	// cross-site request forgery.
	CheckOrigin func(r *http.Request) bool

	// EnableCompression asks the server to negotiate per-message
	// compression (RFC 7692) when the client offers it. Setting it does
	// not guarantee that compression is used: the server accepts the first
	// permessage-deflate offer in the client's list that it can honour,
	// and declines the others (an unacceptable offer is not an error).
	EnableCompression bool

	// Compression tunes the compression negotiated when EnableCompression
	// is set; the zero value is the default. See CompressionOptions.
	Compression CompressionOptions

	// KeepAlive, if its Interval is set, starts the keepalive of every
	// connection Upgrade (or Engine.Upgrade) returns, as
	// Conn.SetKeepAlive(KeepAlive.Interval, KeepAlive.Timeout) would; the
	// zero value leaves it off. KeepAlive is an addition to gorilla's API.
	KeepAlive KeepAlive

	// DisableHTTP2, if set, makes Upgrade refuse WebSockets opened over
	// HTTP/2 (RFC 8441 extended CONNECT) as an HTTP/1.1-only server
	// would: 405, the method not being GET. By default they are accepted
	// when the http.Server lets them in, which Go's does only when the
	// process starts with GODEBUG=http2xconnect=1 (see the package
	// documentation). A server that accepts none should rather not
	// enable that setting: it is what makes browsers open WebSockets on
	// an HTTP/2 connection in the first place. DisableHTTP2 is an
	// addition to gorilla's API.
	DisableHTTP2 bool
}

// fail answers the client with status through u.Error (or the default
// error response) and returns the HandshakeError for Upgrade to return.
func (u *Upgrader) fail(w http.ResponseWriter, r *http.Request, status int, reason string) (*Conn, error) {
	err := HandshakeError{message: reason}
	if u.Error != nil {
		u.Error(w, r, status, err)
		return nil, err
	}
	// RFC 6455 section 4.4 asks for the supported version on a 426; like
	// gorilla it is sent on every failure, which tells a client that
	// tried the wrong protocol what the endpoint speaks.
	w.Header().Set("Sec-Websocket-Version", "13")
	http.Error(w, http.StatusText(status), status)
	return nil, err
}

// checkSameOrigin reports whether r has no Origin header or an Origin whose
// host equals r.Host, ignoring ASCII case.
func checkSameOrigin(r *http.Request) bool {
	origin := r.Header["Origin"]
	if len(origin) == 0 {
		return true
	}
	o, err := url.Parse(origin[0])
	if err != nil {
		return false
	}
	return asciiEqualFold(o.Host, r.Host)
}

// asciiEqualFold compares s and t folding only ASCII letters: Unicode case
// folding would let distinct non-ASCII hosts compare equal.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// selectSubprotocol returns the subprotocol for the response, or "".
func (u *Upgrader) selectSubprotocol(r *http.Request, responseHeader http.Header) string {
	if u.Subprotocols == nil {
		return responseHeader.Get("Sec-Websocket-Protocol")
	}
	for _, s := range u.Subprotocols {
		if headerListContains(r.Header, "Sec-Websocket-Protocol", s) {
			return s
		}
	}
	return ""
}

// headerHasField reports whether h has a field called name, however the
// map key is spelt: callers may fill an http.Header without canonicalising.
func headerHasField(h http.Header, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// isValidFieldName reports whether k is an HTTP token and so may be written
// as a header field name without corrupting the response.
func isValidFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// checkRequest checks that r is a WebSocket opening handshake this
// Upgrader accepts (RFC 6455 section 4.2.1) and that responseHeader is
// usable; when it is not, it returns the HTTP status to answer with and
// the reason, else status 0.
func (u *Upgrader) checkRequest(r *http.Request, responseHeader http.Header) (status int, reason string) {
	const notWebSocket = "websocket: the client is not using the websocket protocol: "

	if r.Method != http.MethodGet {
		return http.StatusMethodNotAllowed, notWebSocket + "request method is not GET"
	}
	if !r.ProtoAtLeast(1, 1) {
		return http.StatusBadRequest, notWebSocket + "HTTP/1.1 or later required"
	}
	if !headerListContainsToken(r.Header, "Connection", "upgrade") {
		return http.StatusBadRequest, notWebSocket + "'upgrade' token not found in 'Connection' header"
	}
	if !headerListContainsToken(r.Header, "Upgrade", "websocket") {
		return http.StatusBadRequest, notWebSocket + "'websocket' token not found in 'Upgrade' header"
	}
	if status, reason := u.checkVersionAndOrigin(r, responseHeader); status != 0 {
		return status, reason
	}
	if isRepeatedField(r.Header, "Sec-Websocket-Key") {
		return http.StatusBadRequest, "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header appears more than once"
	}
	if !isValidChallengeKey(r.Header.Get("Sec-Websocket-Key")) {
		return http.StatusBadRequest, "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte in length"
	}
	return 0, ""
}

// checkVersionAndOrigin holds the checks an upgrade over HTTP/1.1 and
// one over HTTP/2 share: the version, the response header and the origin.
func (u *Upgrader) checkVersionAndOrigin(r *http.Request, responseHeader http.Header) (status int, reason string) {
	// RFC 6455 section 11.3.1 and 11.3.5: Sec-WebSocket-Key and
	// Sec-WebSocket-Version must not appear more than once in a request
	// (a comma makes a list, which counts as several).
	if isRepeatedField(r.Header, "Sec-Websocket-Version") {
		return http.StatusBadRequest, "websocket: not a websocket handshake: 'Sec-WebSocket-Version' header appears more than once"
	}
	if !headerListContainsToken(r.Header, "Sec-Websocket-Version", "13") {
		return http.StatusUpgradeRequired, "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header"
	}
	if headerHasField(responseHeader, "Sec-Websocket-Extensions") {
		return http.StatusInternalServerError, "websocket: application specific 'Sec-WebSocket-Extensions' headers are unsupported"
	}
	checkOrigin := u.CheckOrigin
	if checkOrigin == nil {
		checkOrigin = checkSameOrigin
	}
	if !checkOrigin(r) {
		return http.StatusForbidden, "websocket: request origin not allowed by Upgrader.CheckOrigin"
	}
	return 0, ""
}

// Upgrade upgrades the HTTP server connection to the WebSocket protocol.
//
// responseHeader is added to the 101 response; use it for cookies
// (Set-Cookie). To negotiate a subprotocol set u.Subprotocols; the
// Sec-Websocket-Protocol field of responseHeader is used only when
// u.Subprotocols is nil. Fields whose names are not valid HTTP tokens are
// left out, and control characters (CR and LF among them) in field values
// are replaced by spaces, so an application value cannot inject header
// lines. responseHeader must not set Sec-Websocket-Extensions.
//
// If the request is not an acceptable WebSocket handshake, Upgrade replies
// with an HTTP error response (see Upgrader.Error) and returns an error of
// type HandshakeError. Once the connection has been hijacked it is never
// answered with HTTP again: if writing the 101 response fails, the network
// connection is closed and the write error is returned wrapped.
//
// Bytes the client sent behind its request (frames pipelined before the
// 101 arrived) are kept and are the first the returned Conn reads.
//
// The returned Conn runs the keepalive u.KeepAlive asks for, if any.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	c, err := u.upgrade(w, r, responseHeader)
	if err != nil {
		return nil, err
	}
	c.defaultKeepAlive(u.KeepAlive)
	return c, nil
}

// upgrade is Upgrade without starting the keepalive.
func (u *Upgrader) upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	if !u.DisableHTTP2 && isExtendedConnect(r) {
		return u.upgradeH2(w, r, responseHeader)
	}
	if status, reason := u.checkRequest(r, responseHeader); status != 0 {
		return u.fail(w, r, status, reason)
	}
	challengeKey := r.Header.Get("Sec-Websocket-Key")
	subprotocol := u.selectSubprotocol(r, responseHeader)
	pmd, extensions, pmdOK, err := u.negotiateCompression(r)
	if err != nil {
		return u.fail(w, r, http.StatusInternalServerError, err.Error())
	}

	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			return u.fail(w, r, http.StatusInternalServerError, "websocket: response does not implement http.Hijacker")
		}
		return u.fail(w, r, http.StatusInternalServerError, "websocket: hijack: "+err.Error())
	}

	// The server may have buffered bytes the client pipelined behind its
	// request; they belong to the WebSocket stream. Peek of no more than
	// Buffered() never reads from the network. newConn copies them, so
	// neither the bufio objects nor their buffers outlive this call.
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		pending, _ = brw.Reader.Peek(n)
	}
	c := newConn(netConn, true, u.ReadBufferSize, u.WriteBufferSize, u.WriteBufferPool, pending)
	c.subprotocol = subprotocol
	if pmdOK {
		c.extensions = extensions
		c.enableCompression(pmd, &u.Compression)
	}

	// net/http's connection keeps brw's reader and writer (4 KiB each)
	// reachable for as long as the handler runs, which for a WebSocket is
	// the connection's life. The Conn needs neither: the writer's empty
	// buffer holds the 101 response and then joins the library's pool,
	// and both are emptied so that they do not stay pinned.
	var scratch []byte
	if brw.Writer.Buffered() == 0 {
		scratch = brw.Writer.AvailableBuffer()
		*brw.Writer = bufio.Writer{}
	}
	*brw.Reader = bufio.Reader{}

	p := u.appendResponse(scratch, challengeKey, subprotocol, extensions, responseHeader)
	if cap(scratch) > 0 && cap(p) == cap(scratch) {
		defer putBuffer(&buffer{b: p[:cap(p)]})
	}

	// Deadlines the http.Server set for the request must not carry over to
	// the WebSocket connection.
	netConn.SetDeadline(time.Time{})
	if u.HandshakeTimeout > 0 {
		netConn.SetWriteDeadline(time.Now().Add(u.HandshakeTimeout))
	}
	if _, err := netConn.Write(p); err != nil {
		netConn.Close()
		return nil, fmt.Errorf("websocket: writing handshake response: %w", err)
	}
	if u.HandshakeTimeout > 0 {
		netConn.SetWriteDeadline(time.Time{})
	}
	return c, nil
}

// negotiateCompression answers r's permessage-deflate offers when
// u.EnableCompression is set: the parameters and the response's extension
// field for the offer accepted, if one is; an error only for invalid
// u.Compression.
func (u *Upgrader) negotiateCompression(r *http.Request) (pmd pmdParams, extensions string, ok bool, err error) {
	if !u.EnableCompression {
		return pmd, "", false, nil
	}
	if err := u.Compression.validate(); err != nil {
		return pmd, "", false, err
	}
	// A malformed header still yields the offers parsed before the
	// fault; an offer that is not acceptable is declined, and so are
	// offers past the first maxExtensionOffers.
	offers, _ := parseExtensions(r.Header, maxExtensionOffers)
	pmd, extensions, ok = negotiateServer(offers, u.Compression.pmdOptions())
	return pmd, extensions, ok, nil
}

// appendResponse appends the complete 101 response to dst. It sizes the
// buffer once so the response is built with a single allocation.
func (u *Upgrader) appendResponse(dst []byte, challengeKey, subprotocol, extensions string, responseHeader http.Header) []byte {
	const (
		statusLines = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
		protoField  = "Sec-WebSocket-Protocol: "
		extField    = "Sec-WebSocket-Extensions: "
		acceptLen   = 28 // base64 of a SHA-1 sum
	)
	n := len(statusLines) + acceptLen + 2 + 2
	if subprotocol != "" {
		n += len(protoField) + len(subprotocol) + 2
	}
	if extensions != "" {
		n += len(extField) + len(extensions) + 2
	}
	for k, vs := range responseHeader {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}

	dst = append(dst, statusLines...)
	dst = append(dst, computeAcceptKey(challengeKey)...)
	dst = append(dst, "\r\n"...)
	if subprotocol != "" {
		dst = append(dst, protoField...)
		dst = appendFieldValue(dst, subprotocol)
		dst = append(dst, "\r\n"...)
	}
	if extensions != "" {
		// Built by negotiateServer from tokens and numbers only.
		dst = append(dst, extField...)
		dst = append(dst, extensions...)
		dst = append(dst, "\r\n"...)
	}
	forEachResponseField(responseHeader, func(k, v string) {
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = appendFieldValue(dst, v)
		dst = append(dst, "\r\n"...)
	})
	return append(dst, "\r\n"...)
}

// forEachResponseField calls f for each field of the application's
// responseHeader that goes into the handshake response: not
// Sec-WebSocket-Protocol, which the negotiated subprotocol answers for,
// and not one whose name is not an HTTP token. f sanitises the value.
func forEachResponseField(responseHeader http.Header, f func(k, v string)) {
	for k, vs := range responseHeader {
		if strings.EqualFold(k, "Sec-Websocket-Protocol") || !isValidFieldName(k) {
			continue
		}
		for _, v := range vs {
			f(k, v)
		}
	}
}

// appendFieldValue appends v with every control character other than
// horizontal tab replaced by a space: a CR or LF would end the line and
// let the value inject header fields or a body.
func appendFieldValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		b := v[i]
		if (b < ' ' && b != '\t') || b == 0x7f {
			b = ' '
		}
		dst = append(dst, b)
	}
	return dst
}

// Upgrade upgrades the HTTP server connection to the WebSocket protocol.
//
// Deprecated: Use websocket.Upgrader instead.
//
// This function does not check the Origin header: the application must do
// so before calling it, for example by comparing it with "http://"+r.Host
// and replying 403 on a mismatch. Nor does it write any HTTP response when
// the handshake is invalid: it returns a HandshakeError and the application
// should reply with an HTTP error itself.
//
// Subprotocol negotiation is left to the application: read the client's
// list with Subprotocols(r) and put the chosen protocol in the
// Sec-Websocket-Protocol field of responseHeader. responseHeader is sent
// with the 101 response, as with Upgrader.Upgrade.
//
// readBufSize and writeBufSize set the connection's buffer sizes; they do
// not limit message sizes.
func Upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header, readBufSize, writeBufSize int) (*Conn, error) {
	u := Upgrader{
		ReadBufferSize:  readBufSize,
		WriteBufferSize: writeBufSize,
		// Writing nothing on failure is what callers of this old API
		// expect: they answer the error themselves.
		Error:       func(http.ResponseWriter, *http.Request, int, error) {},
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return u.Upgrade(w, r, responseHeader)
}
