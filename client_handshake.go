package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"time"
)

// The client's half of the opening handshake (RFC 6455 section 4.1): the
// request it sends, the exchange over the connection, and the checks the
// server's response must pass.

// maxErrorBodySize bounds how much of a refusing server's response body
// Dial keeps for the caller to inspect.
const maxErrorBodySize = 1024

// aLongTimeAgo is a deadline in the past: setting it makes every pending
// and future read and write on a net.Conn fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// headerLimitReader reads from r until limit bytes have passed, then fails:
// a server that streams header bytes without end must not grow the
// client's heap with them. The handshake's bufio.Reader sits on it, so
// what the bufio.Reader reads ahead counts too, which only makes the
// limit a little stricter.
type headerLimitReader struct {
	r     io.Reader
	left  int64
	limit int64
}

func newHeaderLimitReader(r io.Reader, limit int64) *headerLimitReader {
	return &headerLimitReader{r: r, left: limit, limit: limit}
}

// checkRead returns the error to report for err, which ended reading a
// response through l. Running into the limit is reported as such even
// where the response parser saw it first as a truncated line: bufio's
// ReadLine hands out a partial line before the error that cut it.
func (l *headerLimitReader) checkRead(err error) error {
	if l.left <= 0 {
		return l.tooLarge()
	}
	return err
}

func (l *headerLimitReader) tooLarge() error {
	return fmt.Errorf("%w (more than %d bytes)", ErrResponseHeaderTooLarge, l.limit)
}

// roundTrip sends the upgrade request req over netConn and reads the
// response, at most d.MaxResponseHeaderBytes of it. The returned reader
// holds what followed the response.
func (d *Dialer) roundTrip(ctx context.Context, netConn net.Conn, req *http.Request) (*http.Response, *bufio.Reader, error) {
	if err := req.Write(netConn); err != nil {
		return nil, nil, abortError(ctx, err)
	}
	bufSize := d.ReadBufferSize
	if bufSize <= 0 {
		bufSize = defaultReadBufferSize
	}
	lr := newHeaderLimitReader(netConn, d.maxResponseHeaderBytes())
	br := bufio.NewReaderSize(lr, bufSize)
	if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.GotFirstResponseByte != nil {
		if _, err := br.Peek(1); err == nil {
			trace.GotFirstResponseByte()
		}
	}
	resp, err := http.ReadResponse(br, req)
	if err == nil {
		return resp, br, nil
	}
	if err := lr.checkRead(err); errors.Is(err, ErrResponseHeaderTooLarge) {
		return nil, nil, err
	}
	if ctx.Err() == nil && d.TLSClientConfig != nil {
		for _, proto := range d.TLSClientConfig.NextProtos {
			if proto != "http/1.1" {
				return nil, nil, fmt.Errorf("websocket: reading the handshake response failed; "+
					"TLSClientConfig offers ALPN protocol %q but only HTTP/1.1 is spoken "+
					"(a tls.Config shared with an http.Transport can cause this): %w", proto, err)
			}
		}
	}
	return nil, nil, abortError(ctx, err)
}

// checkResponse decides whether resp, the answer to the upgrade request
// for u made with challengeKey and offering the subprotocols offered,
// accepts the upgrade, and returns what was negotiated. It keeps the
// response's cookies, as a browser (and gorilla) would, whatever the
// answer. On a refusal the error is ErrBadHandshake and resp keeps a
// little of its body for the caller to show or log; on success its Body
// is empty.
func (d *Dialer) checkResponse(u *url.URL, resp *http.Response, challengeKey string, offered []string) (subprotocol string, pmd pmdParams, pmdOK bool, err error) {
	if d.Jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			d.Jar.SetCookies(u, rc)
		}
	}
	subprotocol, ok := checkHandshakeResponse(resp, challengeKey, offered, d.EnableCompression)
	if ok && d.EnableCompression {
		// One element is all a valid response has: two are enough to
		// tell it is not.
		response, valid := parseExtensions(resp.Header, 2)
		if !valid {
			return "", pmd, false, fmt.Errorf("%w: malformed Sec-WebSocket-Extensions header", errInvalidCompression)
		}
		if pmd, pmdOK, err = acceptServerResponse(response, d.Compression.pmdOptions()); err != nil {
			return "", pmd, false, err
		}
	}
	if !ok {
		// The connection is closed on return.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodySize))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return "", pmd, false, ErrBadHandshake
	}
	resp.Body = http.NoBody
	return subprotocol, pmd, pmdOK, nil
}

// handshakeRequest builds the upgrade request for u, which has the scheme
// http or https. It returns the subprotocols offered, either from
// d.Subprotocols or from the caller's Sec-WebSocket-Protocol field.
func (d *Dialer) handshakeRequest(ctx context.Context, u *url.URL, challengeKey string, requestHeader http.Header) (*http.Request, []string, error) {
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header),
		Host:       u.Host,
	}
	req = req.WithContext(ctx)

	if d.Jar != nil {
		for _, cookie := range d.Jar.Cookies(u) {
			req.AddCookie(cookie)
		}
	}

	// The spelling of RFC 6455's examples is used on the wire (hence the
	// direct map assignments, which skip canonicalisation) because some
	// servers compare header names case-sensitively.
	req.Header["Upgrade"] = []string{"websocket"}
	req.Header["Connection"] = []string{"Upgrade"}
	req.Header["Sec-WebSocket-Key"] = []string{challengeKey}
	req.Header["Sec-WebSocket-Version"] = []string{"13"}
	offered := d.Subprotocols
	if len(d.Subprotocols) > 0 {
		req.Header["Sec-WebSocket-Protocol"] = []string{strings.Join(d.Subprotocols, ", ")}
	}

	for k, vs := range requestHeader {
		switch ck := http.CanonicalHeaderKey(k); ck {
		case "Host":
			if len(vs) > 0 {
				req.Host = vs[0]
			}
		case "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions":
			return nil, nil, fmt.Errorf("%w: %s", errDuplicateHeader, k)
		case "Sec-Websocket-Protocol":
			if len(d.Subprotocols) > 0 {
				return nil, nil, fmt.Errorf("%w: %s", errDuplicateHeader, k)
			}
			req.Header["Sec-WebSocket-Protocol"] = vs
			offered = headerList(http.Header{ck: vs}, ck)
		default:
			req.Header[k] = vs
		}
	}

	if u.User != nil {
		if len(req.Header.Values("Authorization")) == 0 {
			password, _ := u.User.Password()
			cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + password))
			req.Header.Set("Authorization", "Basic "+cred)
		}
		// Keep the credentials out of what the Proxy func, the jar and any
		// logging of the request see.
		u.User = nil
	}

	if d.EnableCompression {
		if err := d.Compression.validate(); err != nil {
			return nil, nil, err
		}
		req.Header["Sec-WebSocket-Extensions"] = []string{clientOffer(d.Compression.pmdOptions())}
	}

	return req, offered, nil
}

// checkHandshakeResponse reports whether resp accepts the upgrade requested
// with challengeKey, and returns the subprotocol the server chose. With
// compressionOffered, the Sec-WebSocket-Extensions response is left for
// acceptServerResponse to check; without, any extension fails.
func checkHandshakeResponse(resp *http.Response, challengeKey string, offered []string, compressionOffered bool) (subprotocol string, ok bool) {
	// RFC 6455 section 11.3.3: Sec-WebSocket-Accept must not appear more
	// than once.
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!headerListContainsToken(resp.Header, "Upgrade", "websocket") ||
		!headerListContainsToken(resp.Header, "Connection", "upgrade") ||
		len(resp.Header["Sec-Websocket-Accept"]) != 1 ||
		resp.Header.Get("Sec-Websocket-Accept") != computeAcceptKey(challengeKey) {
		return "", false
	}

	// RFC 6455 section 4.1: the client fails the connection if the server
	// picks a subprotocol it did not offer, or more than one.
	if vs := resp.Header["Sec-Websocket-Protocol"]; len(vs) > 0 {
		if len(vs) > 1 {
			return "", false
		}
		subprotocol = strings.TrimSpace(vs[0])
		if subprotocol != "" && !containsString(offered, subprotocol) {
			return "", false
		}
	}

	// Likewise for an extension that was not offered.
	if !compressionOffered && !headerListEmpty(resp.Header, "Sec-Websocket-Extensions") {
		return "", false
	}
	return subprotocol, true
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseWebSocketURL parses a ws or wss URL and returns it with the scheme
// http or https, which is what cookie jars and proxy functions understand.
func parseWebSocketURL(urlStr string) (*url.URL, error) {
	u, err := url.Parse(urlStr)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, errMalformedURL
	}
	if u.Hostname() == "" {
		return nil, errMalformedURL
	}
	return u, nil
}

// targetAddr returns the host:port to dial for u (scheme http or https),
// with the scheme's default port when u has none, and the bare host name
// (no brackets around an IPv6 literal) for TLS.
func targetAddr(u *url.URL) (hostPort, hostName string) {
	hostName = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(hostName, port), hostName
}

func cloneTLSConfig(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return &tls.Config{}
	}
	return cfg.Clone()
}

// abortError returns the error to report for err, which ended the
// handshake. When ctx was canceled the connection's deadline was forced
// into the past, so err is only a symptom: the caller gets the context's
// error instead. Expired deadlines keep their net.Error, as with gorilla.
func abortError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(ctxErr, context.DeadlineExceeded) && !errors.Is(err, ctxErr) {
		return fmt.Errorf("websocket: handshake aborted: %w", ctxErr)
	}
	return err
}

// cancelWatch forces a past deadline on a connection when a context is
// done, so that blocked handshake reads and writes return.
type cancelWatch struct {
	stopFunc func() bool
	done     chan struct{}
}

func watchCancel(ctx context.Context, c net.Conn) *cancelWatch {
	w := &cancelWatch{done: make(chan struct{})}
	w.stopFunc = context.AfterFunc(ctx, func() {
		c.SetDeadline(aLongTimeAgo)
		close(w.done)
	})
	return w
}

// stop ends the watch; when it returns, the watch's goroutine (if it was
// started) has finished. It is safe on a nil watch and to call twice.
func (w *cancelWatch) stop() {
	if w == nil || w.stopFunc == nil {
		return
	}
	if !w.stopFunc() {
		<-w.done
	}
	w.stopFunc = nil
}
