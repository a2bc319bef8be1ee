package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// errUnsupportedProxy is wrapped by the error Dial returns for a proxy URL
// whose scheme it cannot speak.
var errUnsupportedProxy = errors.New("websocket: unsupported proxy scheme")

// errProxyRefused is wrapped by the error Dial returns when the proxy does
// not open the tunnel.
var errProxyRefused = errors.New("websocket: proxy refused the connection")

// dialViaProxy opens a tunnel to addr (host:port) through the proxy at
// proxyURL. forward dials the proxy itself; tlsConfig, if not nil, is the
// base configuration for an https proxy; headerLimit bounds an HTTP proxy's
// CONNECT response. The returned connection carries the raw byte stream to
// addr.
func dialViaProxy(ctx context.Context, proxyURL *url.URL, addr string,
	forward func(network, addr string) (net.Conn, error), tlsConfig *tls.Config, headerLimit int64) (net.Conn, error) {
	var defaultPort string
	switch proxyURL.Scheme {
	case "http":
		defaultPort = "80"
	case "https":
		defaultPort = "443"
	case "socks5", "socks5h":
		defaultPort = "1080"
	default:
		return nil, fmt.Errorf("%w: %q", errUnsupportedProxy, proxyURL.Scheme)
	}
	host := proxyURL.Hostname()
	if host == "" {
		return nil, fmt.Errorf("websocket: proxy URL %q has no host", proxyURL.Redacted())
	}
	port := proxyURL.Port()
	if port == "" {
		port = defaultPort
	}

	conn, err := forward("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}

	if proxyURL.Scheme == "https" {
		cfg := cloneTLSConfig(tlsConfig)
		cfg.ServerName = host
		// The proxy is spoken to in HTTP/1.1 only.
		cfg.NextProtos = nil
		tlsConn := tls.Client(conn, cfg)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tlsConn
	}

	var tunnel net.Conn
	if proxyURL.Scheme == "socks5" || proxyURL.Scheme == "socks5h" {
		tunnel, err = socks5Connect(conn, proxyURL.User, addr)
	} else {
		tunnel, err = httpConnect(conn, proxyURL.User, addr, headerLimit)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tunnel, nil
}

// httpConnect asks the HTTP proxy at the other end of conn to open a
// tunnel to addr, reading at most headerLimit bytes of its response.
func httpConnect(conn net.Conn, user *url.Userinfo, addr string, headerLimit int64) (net.Conn, error) {
	req := &http.Request{
		Method:     http.MethodConnect,
		URL:        &url.URL{Opaque: addr},
		Host:       addr,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header),
	}
	if user != nil {
		password, _ := user.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(user.Username() + ":" + password))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		return nil, err
	}

	lr := newHeaderLimitReader(conn, headerLimit)
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, lr.checkRead(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s", errProxyRefused, resp.Status)
	}

	// Whatever br read past the response already came through the tunnel.
	if n := br.Buffered(); n > 0 {
		pending, _ := br.Peek(n)
		return &prefixConn{Conn: conn, pending: append([]byte(nil), pending...)}, nil
	}
	return conn, nil
}

// prefixConn is a net.Conn whose reads return pending before the bytes
// still to come from Conn.
type prefixConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// SOCKS version 5 constants (RFC 1928, RFC 1929).
const (
	socks5Version        = 5
	socks5AuthNone       = 0
	socks5AuthPassword   = 2
	socks5NoAcceptable   = 0xff
	socks5CmdConnect     = 1
	socks5AddrIPv4       = 1
	socks5AddrDomain     = 3
	socks5AddrIPv6       = 4
	socks5PasswordVer    = 1
	socks5PasswordOK     = 0
	socks5ReplySucceeded = 0
)

var socks5ReplyText = map[byte]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

// socks5Connect asks the SOCKS5 proxy at the other end of conn to connect
// to addr. A host name is passed to the proxy to resolve. SOCKS servers
// speak only when spoken to, so nothing is read beyond their replies.
func socks5Connect(conn net.Conn, user *url.Userinfo, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("websocket: bad port in %q", addr)
	}
	if err := socks5Authenticate(conn, user); err != nil {
		return nil, err
	}
	if err := socks5Request(conn, host, uint16(port)); err != nil {
		return nil, err
	}
	return conn, nil
}

// socks5Authenticate runs the method negotiation and, when the proxy asks
// for it, the user name and password exchange (RFC 1929).
func socks5Authenticate(conn net.Conn, user *url.Userinfo) error {
	var username, password string
	if user != nil {
		username = user.Username()
		password, _ = user.Password()
		if len(username) == 0 || len(username) > 255 || len(password) > 255 {
			return errors.New("websocket: SOCKS5 user name or password is empty or too long")
		}
	}
	buf := make([]byte, 0, 3+255+255)
	buf = append(buf, socks5Version, 1, socks5AuthNone)
	if user != nil {
		buf = append(buf[:1], 2, socks5AuthNone, socks5AuthPassword)
	}
	var reply [2]byte
	if err := socks5Exchange(conn, buf, reply[:]); err != nil {
		return err
	}
	switch reply[1] {
	case socks5AuthNone:
		return nil
	case socks5AuthPassword:
		if user == nil {
			return fmt.Errorf("%w: SOCKS5 proxy asked for a password that the proxy URL does not have", errProxyRefused)
		}
		buf = append(buf[:0], socks5PasswordVer, byte(len(username)))
		buf = append(buf, username...)
		buf = append(buf, byte(len(password)))
		buf = append(buf, password...)
		if _, err := conn.Write(buf); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, reply[:]); err != nil {
			return err
		}
		if reply[1] != socks5PasswordOK {
			return fmt.Errorf("%w: SOCKS5 user name and password rejected", errProxyRefused)
		}
		return nil
	}
	return fmt.Errorf("%w: no SOCKS5 authentication method acceptable", errProxyRefused)
}

// socks5Exchange sends req and reads the fixed-size part of the reply into
// reply, whose first byte must be the SOCKS version.
func socks5Exchange(conn net.Conn, req, reply []byte) error {
	if _, err := conn.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadFull(conn, reply); err != nil {
		return err
	}
	if reply[0] != socks5Version {
		return fmt.Errorf("%w: SOCKS version %d in reply", errProxyRefused, reply[0])
	}
	return nil
}

// socks5Request sends the CONNECT request for host:port and reads the
// reply, skipping the bound address it carries.
func socks5Request(conn net.Conn, host string, port uint16) error {
	buf := make([]byte, 0, 6+255)
	buf = append(buf, socks5Version, socks5CmdConnect, 0)
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			buf = append(buf, socks5AddrIPv4)
			buf = append(buf, ip4...)
		} else {
			buf = append(buf, socks5AddrIPv6)
			buf = append(buf, ip.To16()...)
		}
	} else {
		if len(host) > 255 {
			return fmt.Errorf("websocket: host name too long for SOCKS5: %q", host)
		}
		buf = append(buf, socks5AddrDomain, byte(len(host)))
		buf = append(buf, host...)
	}
	buf = binary.BigEndian.AppendUint16(buf, port)
	var reply [4]byte
	if err := socks5Exchange(conn, buf, reply[:]); err != nil {
		return err
	}
	if reply[1] != socks5ReplySucceeded {
		text := socks5ReplyText[reply[1]]
		if text == "" {
			text = "reply code " + strconv.Itoa(int(reply[1]))
		}
		return fmt.Errorf("%w: SOCKS5: %s", errProxyRefused, text)
	}
	// Skip the bound address, which a client has no use for.
	var skip int
	switch reply[3] {
	case socks5AddrIPv4:
		skip = net.IPv4len + 2
	case socks5AddrIPv6:
		skip = net.IPv6len + 2
	case socks5AddrDomain:
		if _, err := io.ReadFull(conn, reply[:1]); err != nil {
			return err
		}
		skip = int(reply[0]) + 2
	default:
		return fmt.Errorf("%w: SOCKS5 reply has address type %d", errProxyRefused, reply[3])
	}
	_, err := io.CopyN(io.Discard, conn, int64(skip))
	return err
}
