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

// errMalformedURL is returned by Dial for a URL whose scheme is not ws or
// wss, or that names no host.
var errMalformedURL = errors.New("websocket: malformed ws or wss URL")

// errDuplicateHeader is wrapped by the error Dial returns when the caller's
// request header sets a field the handshake itself owns.
var errDuplicateHeader = errors.New("websocket: duplicate header not allowed")

// errNoConn is returned when a caller-supplied dial function returns
// neither a connection nor an error.
var errNoConn = errors.New("websocket: dial function returned a nil net.Conn")

// maxErrorBodySize bounds how much of a refusing server's response body
// Dial keeps for the caller to inspect.
const maxErrorBodySize = 1024

// aLongTimeAgo is a deadline in the past: setting it makes every pending
// and future read and write on a net.Conn fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// NewClient creates a new client connection over netConn, whose handshake
// has not started yet. The URL u gives the host and request URI; requestHeader
// is copied into the handshake request as with Dialer.Dial. On a refused
// handshake the error is ErrBadHandshake and response is the server's
// response.
//
// Deprecated: Use Dialer instead.
func NewClient(netConn net.Conn, u *url.URL, requestHeader http.Header, readBufSize, writeBufSize int) (c *Conn, response *http.Response, err error) {
	d := Dialer{
		ReadBufferSize:  readBufSize,
		WriteBufferSize: writeBufSize,
		NetDial: func(string, string) (net.Conn, error) {
			return netConn, nil
		},
	}
	return d.Dial(u.String(), requestHeader)
}

// A Dialer holds the options for connecting to a WebSocket server. The zero
// value dials directly (no proxy) with no handshake timeout.
//
// A Dialer's methods may be called concurrently from several goroutines; the
// fields must not be changed while a dial is in progress.
type Dialer struct {
	// NetDial dials the TCP connection to the server (or to the proxy) when
	// NetDialContext is nil. It cannot be interrupted: a context or
	// HandshakeTimeout only starts to apply once it has returned. If NetDial
	// and NetDialContext are both nil, a net.Dialer is used.
	NetDial func(network, addr string) (net.Conn, error)

	// NetDialContext dials the TCP connection to the server (or to the
	// proxy). It takes precedence over NetDial. The context it receives
	// carries the handshake deadline, if any.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// NetDialTLSContext, if set, dials wss URLs: it must return a connection
	// whose TLS handshake is done, so TLSClientConfig is not used for
	// them. ws URLs never use it. As in gorilla/websocket, a wss dial
	// through a proxy also uses it, to reach the proxy, and then makes no
	// TLS handshake of its own with the server.
	NetDialTLSContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Proxy returns the proxy to use for a request, or nil for none. A
	// non-nil error aborts the dial with that error. The request's URL has
	// the scheme http for ws URLs and https for wss URLs, so
	// http.ProxyFromEnvironment picks HTTP_PROXY or HTTPS_PROXY as for
	// ordinary requests. Proxy URLs with the schemes http, https, socks5 and
	// socks5h are supported; user information in the proxy URL is sent as
	// proxy credentials. If Proxy is nil, no proxy is used.
	Proxy func(*http.Request) (*url.URL, error)

	// TLSClientConfig configures the TLS connection for wss URLs, and for
	// an https proxy. It is cloned, never modified. If it is nil a default
	// configuration is used. If its ServerName is empty, the host of the URL
	// is used for SNI and certificate verification. It is ignored for wss
	// URLs when NetDialTLSContext is set.
	TLSClientConfig *tls.Config

	// HandshakeTimeout bounds the whole opening handshake: dialing, the
	// proxy exchange, TLS and the HTTP upgrade. Zero means no limit other
	// than the context's. A negative value makes every dial fail.
	HandshakeTimeout time.Duration

	// ReadBufferSize and WriteBufferSize are the I/O buffer sizes in bytes;
	// zero means a useful default. They do not limit the size of the
	// messages that can be sent or received.
	ReadBufferSize, WriteBufferSize int

	// WriteBufferPool, if not nil, supplies the connection's write buffers
	// while a message is being written, instead of each connection owning
	// one for its lifetime. Use one pool per distinct WriteBufferSize.
	WriteBufferPool BufferPool

	// Subprotocols lists the subprotocols offered to the server, in order
	// of preference. The server's choice is available from
	// Conn.Subprotocol; a choice that was not offered fails the handshake.
	Subprotocols []string

	// EnableCompression asks to negotiate per message compression
	// (RFC 7692). The server may decline, so setting it does not guarantee
	// compression. A response that accepts the offer in a way RFC 7692
	// does not allow fails the handshake with an error that wraps the
	// package's invalid compression negotiation error.
	EnableCompression bool

	// Compression tunes the offer made, and the compression used, when
	// EnableCompression is set; the zero value is the default. See
	// CompressionOptions.
	Compression CompressionOptions

	// Jar, if not nil, supplies the cookies sent with the handshake request
	// and stores the cookies set by the server's response. If nil, cookies
	// are neither sent nor stored.
	Jar http.CookieJar

	// MaxResponseHeaderBytes bounds how many bytes of the handshake
	// response (status line and header fields, and of an HTTP proxy's
	// CONNECT response) the dial reads. Zero means the default, 1 MiB
	// (net/http's DefaultMaxHeaderBytes, what an http.Server accepts of a
	// request). A larger response fails the dial with an error that wraps
	// ErrResponseHeaderTooLarge.
	MaxResponseHeaderBytes int64
}

// maxResponseHeaderBytes returns the limit on the handshake response.
func (d *Dialer) maxResponseHeaderBytes() int64 {
	if d.MaxResponseHeaderBytes > 0 {
		return d.MaxResponseHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

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

func (l *headerLimitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, l.tooLarge()
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
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

// DefaultDialer is a Dialer that uses the proxy from the environment
// (http.ProxyFromEnvironment) and a 45 second handshake timeout.
var DefaultDialer = &Dialer{
	Proxy:            http.ProxyFromEnvironment,
	HandshakeTimeout: 45 * time.Second,
}

// nilDialer is used when the receiver is a nil *Dialer: gorilla/websocket
// treats that as its default dialer, settings taken at package start.
var nilDialer = *DefaultDialer

// Dial creates a new client connection by calling DialContext with a
// background context.
func (d *Dialer) Dial(urlStr string, requestHeader http.Header) (*Conn, *http.Response, error) {
	return d.DialContext(context.Background(), urlStr, requestHeader)
}

// DialContext creates a new client connection to the ws or wss URL urlStr.
// requestHeader adds fields to the handshake request, such as Origin,
// Cookie, Authorization or Sec-WebSocket-Protocol; a Host field there sets
// the request's Host. Fields the handshake sets itself (Upgrade, Connection,
// Sec-WebSocket-Key, Sec-WebSocket-Version, Sec-WebSocket-Extensions, and
// Sec-WebSocket-Protocol when d.Subprotocols is set) are refused with an
// error. User information in the URL is sent as HTTP basic credentials
// unless requestHeader has an Authorization field.
//
// ctx bounds the whole handshake, together with d.HandshakeTimeout; it has
// no effect on the connection once DialContext has returned. If ctx is
// canceled during the handshake, the returned error wraps ctx.Err(). When a
// deadline expires the error is a net.Error whose Timeout method reports
// true.
//
// If the server does not accept the upgrade, the error is ErrBadHandshake
// itself (not wrapped) and the server's *http.Response is returned too, so
// that callers can handle redirects, authentication and so on; its Body
// holds at most the first 1024 bytes of the response body and need not be
// closed. On success the response is returned as well, with an empty Body.
func (d *Dialer) DialContext(ctx context.Context, urlStr string, requestHeader http.Header) (*Conn, *http.Response, error) {
	if d == nil {
		d = &nilDialer
	}

	challengeKey, err := generateChallengeKey()
	if err != nil {
		return nil, nil, err
	}
	u, err := parseWebSocketURL(urlStr)
	if err != nil {
		return nil, nil, err
	}
	req, offered, err := d.handshakeRequest(ctx, u, challengeKey, requestHeader)
	if err != nil {
		return nil, nil, err
	}

	if d.HandshakeTimeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.HandshakeTimeout)
		defer cancel()
	}

	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	switch {
	case u.Scheme == "https" && d.NetDialTLSContext != nil:
		dial = d.NetDialTLSContext
	case d.NetDialContext != nil:
		dial = d.NetDialContext
	case d.NetDial != nil:
		netDial := d.NetDial
		dial = func(_ context.Context, network, addr string) (net.Conn, error) {
			return netDial(network, addr)
		}
	default:
		var nd net.Dialer
		dial = nd.DialContext
	}

	// Every byte of the handshake travels over the one connection dialed
	// here (to the server or to the proxy), so a deadline and a
	// cancellation watch on it cover the proxy exchange, TLS and HTTP alike.
	var watch *cancelWatch
	defer func() { watch.stop() }()
	dialRaw := func(network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, errNoConn
		}
		if deadline, ok := ctx.Deadline(); ok {
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
		}
		watch = watchCancel(ctx, c)
		return c, nil
	}

	var proxyURL *url.URL
	if d.Proxy != nil {
		if proxyURL, err = d.Proxy(req); err != nil {
			return nil, nil, err
		}
	}

	hostPort, hostName := targetAddr(u)
	trace := httptrace.ContextClientTrace(ctx)
	if trace != nil && trace.GetConn != nil {
		trace.GetConn(hostPort)
	}
	var netConn net.Conn
	if proxyURL != nil {
		netConn, err = dialViaProxy(ctx, proxyURL, hostPort, dialRaw, d.TLSClientConfig, d.maxResponseHeaderBytes())
	} else {
		netConn, err = dialRaw("tcp", hostPort)
	}
	if err != nil {
		return nil, nil, abortError(ctx, err)
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: netConn})
	}
	defer func() {
		if netConn != nil {
			netConn.Close()
		}
	}()

	if u.Scheme == "https" && d.NetDialTLSContext == nil {
		cfg := cloneTLSConfig(d.TLSClientConfig)
		if cfg.ServerName == "" {
			cfg.ServerName = hostName
		}
		tlsConn := tls.Client(netConn, cfg)
		netConn = tlsConn
		if trace != nil && trace.TLSHandshakeStart != nil {
			trace.TLSHandshakeStart()
		}
		err := tlsConn.HandshakeContext(ctx)
		if trace != nil && trace.TLSHandshakeDone != nil {
			trace.TLSHandshakeDone(tlsConn.ConnectionState(), err)
		}
		if err != nil {
			return nil, nil, abortError(ctx, err)
		}
	}

	if err := req.Write(netConn); err != nil {
		return nil, nil, abortError(ctx, err)
	}

	bufSize := d.ReadBufferSize
	if bufSize <= 0 {
		bufSize = defaultReadBufferSize
	}
	lr := newHeaderLimitReader(netConn, d.maxResponseHeaderBytes())
	br := bufio.NewReaderSize(lr, bufSize)
	if trace != nil && trace.GotFirstResponseByte != nil {
		if _, err := br.Peek(1); err == nil {
			trace.GotFirstResponseByte()
		}
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
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

	// Like a browser (and gorilla/websocket), keep the cookies of any
	// response, including one that refuses the upgrade.
	if d.Jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			d.Jar.SetCookies(u, rc)
		}
	}

	subprotocol, ok := checkHandshakeResponse(resp, challengeKey, offered, d.EnableCompression)
	var (
		pmd   pmdParams
		pmdOK bool
	)
	if ok && d.EnableCompression {
		// Like gorilla, a failed negotiation returns the response
		// with the error.
		// One element is all a valid response has: two are enough to
		// tell it is not.
		response, valid := parseExtensions(resp.Header, 2)
		if !valid {
			return nil, resp, fmt.Errorf("%w: malformed Sec-WebSocket-Extensions header", errInvalidCompression)
		}
		if pmd, pmdOK, err = acceptServerResponse(response, d.Compression.pmdOptions()); err != nil {
			return nil, resp, err
		}
	}
	if !ok {
		// The connection is closed on return, so keep a little of the body
		// for the caller to show or log.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodySize))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil, resp, ErrBadHandshake
	}
	resp.Body = http.NoBody

	// The server may have sent frames right behind its 101; br may hold
	// some of them, and they belong to the Conn.
	pending, _ := br.Peek(br.Buffered())

	// Stop the watch before clearing the deadline, so that a cancellation
	// racing with success cannot leave a past deadline on the Conn.
	watch.stop()
	if err := netConn.SetDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	conn := newConn(netConn, false, d.ReadBufferSize, d.WriteBufferSize, d.WriteBufferPool, pending)
	conn.subprotocol = subprotocol
	if pmdOK {
		// As received; acceptServerResponse found one element in it.
		conn.extensions = strings.Join(resp.Header.Values("Sec-Websocket-Extensions"), ", ")
		conn.enableCompression(pmd, &d.Compression)
	}
	netConn = nil // the Conn owns it now
	return conn, resp, nil
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
