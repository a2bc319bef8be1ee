package websocket

import (
	"context"
	"crypto/tls"
	"errors"
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
	// while a message is being written, as Upgrader.WriteBufferPool does
	// for a server connection (see there: without it the library's own
	// pools serve, and nothing is kept between messages either way).
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

	// KeepAlive, if its Interval is set, starts the keepalive of the
	// connection Dial returns, as Conn.SetKeepAlive(KeepAlive.Interval,
	// KeepAlive.Timeout) would; the zero value leaves it off. KeepAlive
	// is an addition to gorilla's API.
	KeepAlive KeepAlive
}

// maxResponseHeaderBytes returns the limit on the handshake response.
func (d *Dialer) maxResponseHeaderBytes() int64 {
	if d.MaxResponseHeaderBytes > 0 {
		return d.MaxResponseHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
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

	netConn, watch, err := d.connect(ctx, u, req)
	defer func() { watch.stop() }()
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if netConn != nil {
			netConn.Close()
		}
	}()

	resp, br, err := d.roundTrip(ctx, netConn, req)
	if err != nil {
		return nil, nil, err
	}
	subprotocol, pmd, pmdOK, err := d.checkResponse(u, resp, challengeKey, offered)
	if err != nil {
		return nil, resp, err
	}

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
	conn.defaultKeepAlive(d.KeepAlive)
	netConn = nil // the Conn owns it now
	return conn, resp, nil
}

// netDial returns the function that dials the server or the proxy for u.
func (d *Dialer) netDial(u *url.URL) func(ctx context.Context, network, addr string) (net.Conn, error) {
	switch {
	case u.Scheme == "https" && d.NetDialTLSContext != nil:
		return d.NetDialTLSContext
	case d.NetDialContext != nil:
		return d.NetDialContext
	case d.NetDial != nil:
		netDial := d.NetDial
		return func(_ context.Context, network, addr string) (net.Conn, error) {
			return netDial(network, addr)
		}
	}
	var nd net.Dialer
	return nd.DialContext
}

// connect opens the connection the handshake for u travels over: dialed
// directly or through d.Proxy, then TLS for wss URLs unless
// NetDialTLSContext did it. Every byte of the handshake travels over the
// one connection dialed here (to the server or to the proxy), so a
// deadline and a cancellation watch on it cover the proxy exchange, TLS
// and HTTP alike; the caller stops the watch, which may be nil, and which
// is returned with an error too.
func (d *Dialer) connect(ctx context.Context, u *url.URL, req *http.Request) (netConn net.Conn, watch *cancelWatch, err error) {
	dial := d.netDial(u)
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
	if proxyURL != nil {
		netConn, err = dialViaProxy(ctx, proxyURL, hostPort, dialRaw, d.TLSClientConfig, d.maxResponseHeaderBytes())
	} else {
		netConn, err = dialRaw("tcp", hostPort)
	}
	if err != nil {
		return nil, watch, abortError(ctx, err)
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: netConn})
	}
	if u.Scheme != "https" || d.NetDialTLSContext != nil {
		return netConn, watch, nil
	}

	cfg := cloneTLSConfig(d.TLSClientConfig)
	if cfg.ServerName == "" {
		cfg.ServerName = hostName
	}
	tlsConn := tls.Client(netConn, cfg)
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	err = tlsConn.HandshakeContext(ctx)
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(tlsConn.ConnectionState(), err)
	}
	if err != nil {
		tlsConn.Close()
		return nil, watch, abortError(ctx, err)
	}
	return tlsConn, watch, nil
}
