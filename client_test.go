package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errCliTestStop = errors.New("cliTest: dial stopped by the test")

// rawServer is a raw TCP (optionally TLS) server on 127.0.0.1 whose
// connections are handled by a test script. Cleanup closes the listener and
// every connection and waits for all handler goroutines.
type rawServer struct {
	ln    net.Listener
	addr  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startRawServer(t *testing.T, tlsCfg *tls.Config, handle func(c net.Conn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &rawServer{ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// handshakeHandler returns a connection handler that reads the upgrade
// request, reports it on reqs (if not nil), writes what respond returns in a
// single write, and then discards input until the client closes.
func handshakeHandler(reqs chan<- *http.Request, respond func(req *http.Request) []byte) func(c net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if reqs != nil {
			reqs <- req
		}
		if _, err := c.Write(respond(req)); err != nil {
			return
		}
		io.Copy(io.Discard, br)
	}
}

// acceptResponse returns a valid 101 response to req, with extra header
// lines (each ending in CRLF) and then tail, the bytes that follow the
// response in the same write.
func acceptResponse(req *http.Request, extra string, tail []byte) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + computeAcceptKey(req.Header.Get("Sec-Websocket-Key")) + "\r\n")
	b.WriteString(extra)
	b.WriteString("\r\n")
	b.Write(tail)
	return b.Bytes()
}

// unmaskedFrame encodes an unmasked (server to client) frame with FIN
// set.
func unmaskedFrame(opcode byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readClientFrame reads one frame that must be masked, as RFC 6455
// requires of clients, and returns its first byte and unmasked payload.
func readClientFrame(r io.Reader) (byte0 byte, payload []byte, err error) {
	var h [14]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 == 0 {
		return 0, nil, errors.New("client frame is not masked")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(r, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(h[2:10]))
	}
	var key [4]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, err
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return h[0], payload, nil
}

func recvRequest(t *testing.T, reqs <-chan *http.Request) *http.Request {
	t.Helper()
	select {
	case r := <-reqs:
		return r
	case <-time.After(testWait):
		t.Fatal("server did not receive a request")
		return nil
	}
}

// testCert returns httptest's certificate (valid for 127.0.0.1, ::1 and
// example.com) and a pool that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	s := httptest.NewTLSServer(http.NotFoundHandler())
	defer s.Close()
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return s.TLS.Certificates[0], pool
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// pipeConns copies both ways between a and b until either side ends,
// then closes both.
func pipeConns(a, b net.Conn, aReader io.Reader) {
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(b, aReader)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(a, b)
		done <- struct{}{}
	}()
	<-done
	a.Close()
	b.Close()
	<-done
}

// startConnectProxy starts an HTTP CONNECT proxy that requires the
// Proxy-Authorization value wantAuth (none if empty), reports the CONNECT
// target on targets and tunnels every accepted CONNECT to backend,
// whatever host was asked for.
func startConnectProxy(t *testing.T, backend, wantAuth string, targets chan<- string) *rawServer {
	return startRawServer(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if wantAuth != "" && req.Header.Get("Proxy-Authorization") != wantAuth {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if targets != nil {
			targets <- req.Host
		}
		bc, err := net.Dial("tcp", backend)
		if err != nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			bc.Close()
			return
		}
		pipeConns(c, bc, br)
	})
}

// startEchoServer upgrades every connection and echoes one text message
// back, so that a dial through a proxy or TLS can be checked end to end.
func startEchoServer(t *testing.T, tlsCfg *tls.Config, reqs chan<- *http.Request) *rawServer {
	return startRawServer(t, tlsCfg, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if reqs != nil {
			reqs <- req
		}
		if _, err := c.Write(acceptResponse(req, "", nil)); err != nil {
			return
		}
		b0, p, err := readClientFrame(br)
		if err != nil || b0 != 0x81 {
			return
		}
		if _, err := c.Write(unmaskedFrame(TextMessage, p)); err != nil {
			return
		}
		io.Copy(io.Discard, br)
	})
}

func checkEcho(t *testing.T, ws *Conn) {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(testWait)))
	require.NoError(t, ws.WriteMessage(TextMessage, []byte("ping through")))
	mt, p, err := ws.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, TextMessage, mt)
	assert.Equal(t, "ping through", string(p))
}

func TestDialURLAddress(t *testing.T) {
	tests := []struct {
		url      string
		wantAddr string // empty: the dial must not happen
		wantErr  error
	}{
		{url: "ws://example.com", wantAddr: "example.com:80"},
		{url: "ws://example.com/chat?x=1", wantAddr: "example.com:80"},
		{url: "ws://example.com:8080/", wantAddr: "example.com:8080"},
		{url: "wss://example.com", wantAddr: "example.com:443"},
		{url: "wss://example.com:9443/a", wantAddr: "example.com:9443"},
		{url: "ws://[::1]/", wantAddr: "[::1]:80"},
		{url: "ws://[::1]:1234/", wantAddr: "[::1]:1234"},
		{url: "wss://[fe80::1]/", wantAddr: "[fe80::1]:443"},
		{url: "ws://user:pw@example.com/", wantAddr: "example.com:80"},
		{url: "http://example.com/", wantErr: errMalformedURL},
		{url: "https://example.com/", wantErr: errMalformedURL},
		{url: "ftp://example.com/", wantErr: errMalformedURL},
		{url: "example.com", wantErr: errMalformedURL},
		{url: "ws:///path", wantErr: errMalformedURL},
		{url: "ws://%zz/"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			var gotAddr string
			d := &Dialer{NetDialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				assert.Equal(t, "tcp", network)
				gotAddr = addr
				return nil, errCliTestStop
			}}
			ws, resp, err := d.Dial(tt.url, nil)
			require.Error(t, err)
			assert.Nil(t, ws)
			assert.Nil(t, resp)
			assert.Equal(t, tt.wantAddr, gotAddr)
			switch {
			case tt.wantAddr != "":
				assert.ErrorIs(t, err, errCliTestStop)
			case tt.wantErr != nil:
				assert.ErrorIs(t, err, tt.wantErr)
				assert.True(t, strings.HasPrefix(err.Error(), "websocket: "), err.Error())
			}
		})
	}
}

func TestDialURLRequestLine(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	s := startRawServer(t, nil, handshakeHandler(reqs, func(req *http.Request) []byte {
		return acceptResponse(req, "", nil)
	}))
	tests := []struct {
		name     string
		url      string
		header   http.Header
		wantURI  string
		wantHost string
		wantAuth string
	}{
		{name: "no path", url: "ws://" + s.addr, wantURI: "/", wantHost: s.addr},
		{name: "path and query", url: "ws://" + s.addr + "/chat/room?id=7&x=a%20b#frag", wantURI: "/chat/room?id=7&x=a%20b", wantHost: s.addr},
		{name: "escaped path", url: "ws://" + s.addr + "/a%2Fb", wantURI: "/a%2Fb", wantHost: s.addr},
		{name: "userinfo", url: "ws://alice:s%40cret@" + s.addr + "/", wantURI: "/", wantHost: s.addr, wantAuth: basicAuth("alice", "s@cret")},
		{name: "user only", url: "ws://bob@" + s.addr + "/", wantURI: "/", wantHost: s.addr, wantAuth: basicAuth("bob", "")},
		{
			name: "explicit Authorization wins over userinfo", url: "ws://alice:pw@" + s.addr + "/",
			header:  http.Header{"Authorization": {"Bearer tok"}},
			wantURI: "/", wantHost: s.addr, wantAuth: "Bearer tok",
		},
		{
			name: "Host header", url: "ws://" + s.addr + "/x", header: http.Header{"Host": {"example.org"}},
			wantURI: "/x", wantHost: "example.org",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := (&Dialer{}).Dial(tt.url, tt.header)
			require.NoError(t, err)
			defer ws.Close()
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			req := recvRequest(t, reqs)
			assert.Equal(t, http.MethodGet, req.Method)
			assert.Equal(t, "HTTP/1.1", req.Proto)
			assert.Equal(t, tt.wantURI, req.RequestURI)
			assert.Equal(t, tt.wantHost, req.Host)
			assert.Equal(t, tt.wantAuth, req.Header.Get("Authorization"))
		})
	}
}

func TestDialRequestHeaders(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	s := startRawServer(t, nil, handshakeHandler(reqs, func(req *http.Request) []byte {
		return acceptResponse(req, "", nil)
	}))
	wsURL := "ws://" + s.addr + "/"

	t.Run("handshake fields", func(t *testing.T) {
		ws, _, err := (&Dialer{}).Dial(wsURL, nil)
		require.NoError(t, err)
		defer ws.Close()
		req := recvRequest(t, reqs)
		assert.Equal(t, []string{"websocket"}, req.Header["Upgrade"])
		assert.Equal(t, []string{"Upgrade"}, req.Header["Connection"])
		assert.Equal(t, []string{"13"}, req.Header["Sec-Websocket-Version"])
		assert.True(t, isValidChallengeKey(req.Header.Get("Sec-Websocket-Key")))
		assert.Empty(t, req.Header["Sec-Websocket-Protocol"])
		assert.Empty(t, req.Header["Sec-Websocket-Extensions"])
	})

	t.Run("fresh key per dial", func(t *testing.T) {
		keys := map[string]bool{}
		for i := 0; i < 3; i++ {
			ws, _, err := (&Dialer{}).Dial(wsURL, nil)
			require.NoError(t, err)
			ws.Close()
			keys[recvRequest(t, reqs).Header.Get("Sec-Websocket-Key")] = true
		}
		assert.Len(t, keys, 3)
	})

	t.Run("caller fields passed through", func(t *testing.T) {
		h := http.Header{
			"Origin":                 {"https://example.com"},
			"Cookie":                 {"a=1; b=2"},
			"Authorization":          {"Bearer xyz"},
			"Sec-Websocket-Protocol": {"chat, superchat"},
			"X-Custom":               {"one", "two"},
		}
		ws, _, err := (&Dialer{}).Dial(wsURL, h)
		require.NoError(t, err)
		defer ws.Close()
		req := recvRequest(t, reqs)
		assert.Equal(t, "https://example.com", req.Header.Get("Origin"))
		assert.Equal(t, "a=1; b=2", req.Header.Get("Cookie"))
		assert.Equal(t, "Bearer xyz", req.Header.Get("Authorization"))
		assert.Equal(t, []string{"chat", "superchat"}, Subprotocols(req))
		assert.Equal(t, []string{"one", "two"}, req.Header["X-Custom"])
	})

	t.Run("Dialer.Subprotocols", func(t *testing.T) {
		ws, _, err := (&Dialer{Subprotocols: []string{"v2.proto", "v1.proto"}}).Dial(wsURL, nil)
		require.NoError(t, err)
		defer ws.Close()
		assert.Equal(t, []string{"v2.proto", "v1.proto"}, Subprotocols(recvRequest(t, reqs)))
	})
}

func TestDialDuplicateHeaderRefused(t *testing.T) {
	tests := []struct {
		key          string
		subprotocols []string
	}{
		{key: "Upgrade"},
		{key: "Connection"},
		{key: "Sec-Websocket-Key"},
		{key: "Sec-WebSocket-Key"}, // non-canonical spelling, set directly in the map
		{key: "Sec-Websocket-Version"},
		{key: "Sec-Websocket-Extensions"},
		{key: "Sec-Websocket-Protocol", subprotocols: []string{"chat"}},
		{key: "Sec-WebSocket-Protocol", subprotocols: []string{"chat"}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			dialed := false
			d := &Dialer{
				Subprotocols: tt.subprotocols,
				NetDialContext: func(context.Context, string, string) (net.Conn, error) {
					dialed = true
					return nil, errCliTestStop
				},
			}
			ws, resp, err := d.Dial("ws://example.com/", http.Header{tt.key: {"x"}})
			require.Error(t, err)
			assert.Nil(t, ws)
			assert.Nil(t, resp)
			assert.False(t, dialed, "must fail before dialing")
			assert.ErrorIs(t, err, errDuplicateHeader)
			assert.Equal(t, "websocket: duplicate header not allowed: "+tt.key, err.Error())
		})
	}
}

func TestDialBadHandshake(t *testing.T) {
	longBody := strings.Repeat("0123456789abcdef", 200) // 3200 bytes
	tests := []struct {
		name         string
		subprotocols []string
		respond      func(req *http.Request) []byte
		wantStatus   int
		wantBody     string
	}{
		{
			name: "403 with body",
			respond: func(*http.Request) []byte {
				return []byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\ngo away")
			},
			wantStatus: 403, wantBody: "go away",
		},
		{
			name: "body bounded to 1024 bytes",
			respond: func(*http.Request) []byte {
				return []byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: " + strconv.Itoa(len(longBody)) + "\r\n\r\n" + longBody)
			},
			wantStatus: 401, wantBody: longBody[:1024],
		},
		{
			name: "200 with body until close",
			respond: func(*http.Request) []byte {
				return []byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + longBody)
			},
			wantStatus: 200, wantBody: longBody[:1024],
		},
		{
			name: "101 without Upgrade",
			respond: func(req *http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					computeAcceptKey(req.Header.Get("Sec-Websocket-Key")) + "\r\n\r\n")
			},
			wantStatus: 101,
		},
		{
			name: "101 upgrading to something else",
			respond: func(req *http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					computeAcceptKey(req.Header.Get("Sec-Websocket-Key")) + "\r\n\r\n")
			},
			wantStatus: 101,
		},
		{
			name: "101 without Connection",
			respond: func(req *http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " +
					computeAcceptKey(req.Header.Get("Sec-Websocket-Key")) + "\r\n\r\n")
			},
			wantStatus: 101,
		},
		{
			name: "101 with wrong Accept",
			respond: func(req *http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
					computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ==") + "\r\n\r\n")
			},
			wantStatus: 101,
		},
		{
			// RFC 6455 section 11.3.3: at most once.
			name: "101 with Accept twice",
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Accept: "+computeAcceptKey(req.Header.Get("Sec-Websocket-Key"))+"\r\n", nil)
			},
			wantStatus: 101,
		},
		{
			name: "101 without Accept",
			respond: func(*http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			},
			wantStatus: 101,
		},
		{
			name:         "subprotocol not offered",
			subprotocols: []string{"chat"},
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Protocol: superchat\r\n", nil)
			},
			wantStatus: 101,
		},
		{
			name: "subprotocol when none offered",
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Protocol: chat\r\n", nil)
			},
			wantStatus: 101,
		},
		{
			name:         "two subprotocols chosen",
			subprotocols: []string{"chat", "superchat"},
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n", nil)
			},
			wantStatus: 101,
		},
		{
			name: "extension not offered",
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Extensions: x-custom; level=2\r\n", nil)
			},
			wantStatus: 101,
		},
		{
			name: "permessage-deflate not offered",
			respond: func(req *http.Request) []byte {
				return acceptResponse(req, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n", nil)
			},
			wantStatus: 101,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closed := make(chan struct{})
			s := startRawServer(t, nil, func(c net.Conn) {
				defer close(closed)
				handshakeHandler(nil, tt.respond)(c)
			})
			d := &Dialer{Subprotocols: tt.subprotocols}
			ws, resp, err := d.Dial("ws://"+s.addr+"/", nil)
			require.Error(t, err)
			require.True(t, err == ErrBadHandshake, "want ErrBadHandshake itself, got %v", err)
			assert.Nil(t, ws)
			require.NotNil(t, resp)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.wantBody, string(body))
			assert.NoError(t, resp.Body.Close())

			// The client must have closed the connection: the server's
			// discard loop ends.
			select {
			case <-closed:
			case <-time.After(testWait):
				t.Fatal("client did not close the connection")
			}
		})
	}
}

func TestDialSuccess(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes, more than a read buffer
	tests := []struct {
		name         string
		readBufSize  int
		subprotocols []string
		header       http.Header
		extra        string
		tail         []byte
		respond      func(req *http.Request) []byte // overrides extra and tail
		wantProto    string
		wantMessages []string
	}{
		{
			name:         "subprotocol chosen and frame behind the 101",
			subprotocols: []string{"chat", "superchat"},
			extra:        "Sec-WebSocket-Protocol: superchat\r\n",
			tail:         unmaskedFrame(TextMessage, []byte("hello")),
			wantProto:    "superchat",
			wantMessages: []string{"hello"},
		},
		{
			name:         "subprotocol offered in the request header",
			header:       http.Header{"Sec-Websocket-Protocol": {"a, b"}},
			extra:        "Sec-WebSocket-Protocol: b\r\n",
			wantProto:    "b",
			wantMessages: nil,
		},
		{
			name: "mixed case tokens and lists",
			respond: func(req *http.Request) []byte {
				return []byte("HTTP/1.1 101 Switching Protocols\r\nupgrade: foo, WebSocket\r\nconnection: keep-alive, UPGRADE\r\n" +
					"sec-websocket-accept: " + computeAcceptKey(req.Header.Get("Sec-Websocket-Key")) + "\r\n\r\n")
			},
		},
		{
			name:         "two frames behind the 101",
			tail:         append(unmaskedFrame(TextMessage, []byte("one")), unmaskedFrame(BinaryMessage, []byte("two"))...),
			wantMessages: []string{"one", "two"},
		},
		{
			name:         "message larger than the read buffer behind the 101",
			readBufSize:  512,
			tail:         unmaskedFrame(BinaryMessage, big),
			wantMessages: []string{string(big)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			s := startRawServer(t, nil, func(c net.Conn) {
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				resp := acceptResponse(req, tt.extra, tt.tail)
				if tt.respond != nil {
					resp = tt.respond(req)
				}
				if _, err := c.Write(resp); err != nil {
					return
				}
				b0, p, err := readClientFrame(br)
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- fmt.Sprintf("%#x %s", b0, p)
				io.Copy(io.Discard, br)
			})

			d := &Dialer{Subprotocols: tt.subprotocols, ReadBufferSize: tt.readBufSize}
			ws, resp, err := d.Dial("ws://"+s.addr+"/", tt.header)
			require.NoError(t, err)
			defer ws.Close()
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Empty(t, body)
			assert.Equal(t, tt.wantProto, ws.Subprotocol())
			assert.Equal(t, s.addr, ws.RemoteAddr().String())

			require.NoError(t, ws.SetReadDeadline(time.Now().Add(testWait)))
			for _, want := range tt.wantMessages {
				_, p, err := ws.ReadMessage()
				require.NoError(t, err)
				assert.Equal(t, want, string(p))
			}

			require.NoError(t, ws.WriteMessage(TextMessage, []byte("from client")))
			select {
			case g := <-got:
				assert.Equal(t, "0x81 from client", g)
			case <-time.After(testWait):
				t.Fatal("server did not receive the client frame")
			}
		})
	}
}

func TestDialNilDialerAndNewClient(t *testing.T) {
	s := startEchoServer(t, nil, nil)

	t.Run("nil Dialer", func(t *testing.T) {
		var d *Dialer
		ws, _, err := d.Dial("ws://"+s.addr+"/", nil)
		require.NoError(t, err)
		defer ws.Close()
		checkEcho(t, ws)
	})

	t.Run("DefaultDialer", func(t *testing.T) {
		assert.Equal(t, 45*time.Second, DefaultDialer.HandshakeTimeout)
		assert.NotNil(t, DefaultDialer.Proxy)
		ws, _, err := DefaultDialer.Dial("ws://"+s.addr+"/", nil)
		require.NoError(t, err)
		defer ws.Close()
		checkEcho(t, ws)
	})

	t.Run("NewClient", func(t *testing.T) {
		nc, err := net.Dial("tcp", s.addr)
		require.NoError(t, err)
		u, err := url.Parse("ws://" + s.addr + "/path")
		require.NoError(t, err)
		ws, resp, err := NewClient(nc, u, nil, 1024, 1024)
		require.NoError(t, err)
		defer ws.Close()
		assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
		assert.Same(t, nc, ws.NetConn())
		checkEcho(t, ws)
	})
}

func TestDialNetDialSelection(t *testing.T) {
	cert, pool := testCert(t)
	plain := startEchoServer(t, nil, nil)
	secure := startEchoServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, nil)

	var called []string
	netDial := func(network, addr string) (net.Conn, error) {
		called = append(called, "NetDial")
		return net.Dial(network, addr)
	}
	netDialContext := func(ctx context.Context, network, addr string) (net.Conn, error) {
		called = append(called, "NetDialContext")
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	netDialTLSContext := func(ctx context.Context, network, addr string) (net.Conn, error) {
		called = append(called, "NetDialTLSContext")
		var d tls.Dialer
		d.Config = &tls.Config{RootCAs: pool}
		return d.DialContext(ctx, network, addr)
	}
	tests := []struct {
		name   string
		url    string
		dialer Dialer
		want   []string
	}{
		{name: "ws, all set", url: "ws://" + plain.addr, dialer: Dialer{NetDial: netDial, NetDialContext: netDialContext, NetDialTLSContext: netDialTLSContext}, want: []string{"NetDialContext"}},
		{name: "ws, NetDial only", url: "ws://" + plain.addr, dialer: Dialer{NetDial: netDial, NetDialTLSContext: netDialTLSContext}, want: []string{"NetDial"}},
		{name: "ws, none", url: "ws://" + plain.addr, dialer: Dialer{NetDialTLSContext: netDialTLSContext}},
		{
			name: "wss, all set: NetDialTLSContext, TLSClientConfig ignored", url: "wss://" + secure.addr,
			dialer: Dialer{NetDial: netDial, NetDialContext: netDialContext, NetDialTLSContext: netDialTLSContext, TLSClientConfig: &tls.Config{ServerName: "bad.invalid"}},
			want:   []string{"NetDialTLSContext"},
		},
		{name: "wss, NetDialContext", url: "wss://" + secure.addr, dialer: Dialer{NetDial: netDial, NetDialContext: netDialContext, TLSClientConfig: &tls.Config{RootCAs: pool}}, want: []string{"NetDialContext"}},
		{name: "wss, NetDial", url: "wss://" + secure.addr, dialer: Dialer{NetDial: netDial, TLSClientConfig: &tls.Config{RootCAs: pool}}, want: []string{"NetDial"}},
		{name: "wss, none", url: "wss://" + secure.addr, dialer: Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called = nil
			ws, _, err := tt.dialer.Dial(tt.url, nil)
			require.NoError(t, err)
			defer ws.Close()
			assert.Equal(t, tt.want, called)
			checkEcho(t, ws)
		})
	}
}

func TestDialTLS(t *testing.T) {
	cert, pool := testCert(t)
	sni := make(chan string, 1)
	reqs := make(chan *http.Request, 1)
	s := startEchoServer(t, &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			sni <- hello.ServerName
			return nil, nil
		},
	}, reqs)
	_, port, err := net.SplitHostPort(s.addr)
	require.NoError(t, err)
	// Any host name resolves to the test server, so that SNI and
	// verification can be exercised with the names in the certificate.
	toServer := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.addr)
	}

	tests := []struct {
		name     string
		url      string
		cfg      *tls.Config
		wantSNI  string
		wantHost string
		wantErr  bool
	}{
		{name: "IP literal: no SNI", url: "wss://" + s.addr + "/", cfg: &tls.Config{RootCAs: pool}, wantSNI: "", wantHost: s.addr},
		{name: "host name used for SNI", url: "wss://example.com:" + port + "/", cfg: &tls.Config{RootCAs: pool}, wantSNI: "example.com", wantHost: "example.com:" + port},
		{name: "default port", url: "wss://example.com/", cfg: &tls.Config{RootCAs: pool}, wantSNI: "example.com", wantHost: "example.com"},
		{name: "configured ServerName wins", url: "wss://" + s.addr + "/", cfg: &tls.Config{RootCAs: pool, ServerName: "example.com"}, wantSNI: "example.com", wantHost: s.addr},
		{name: "nil config: unknown authority", url: "wss://example.com:" + port + "/", wantSNI: "example.com", wantErr: true},
		{name: "name not in certificate", url: "wss://other.test:" + port + "/", cfg: &tls.Config{RootCAs: pool}, wantSNI: "other.test", wantErr: true},
		{name: "InsecureSkipVerify", url: "wss://other.test:" + port + "/", cfg: &tls.Config{InsecureSkipVerify: true}, wantSNI: "other.test", wantHost: "other.test:" + port},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before tls.Config
			if tt.cfg != nil {
				before.ServerName = tt.cfg.ServerName
			}
			d := &Dialer{TLSClientConfig: tt.cfg, NetDialContext: toServer}
			ws, _, err := d.Dial(tt.url, nil)
			select {
			case got := <-sni:
				assert.Equal(t, tt.wantSNI, got)
			case <-time.After(testWait):
				t.Fatal("server saw no ClientHello")
			}
			if tt.cfg != nil {
				assert.Equal(t, before.ServerName, tt.cfg.ServerName, "TLSClientConfig must not be modified")
			}
			if tt.wantErr {
				require.Error(t, err)
				assert.False(t, err == ErrBadHandshake)
				return
			}
			require.NoError(t, err)
			defer ws.Close()
			_, isTLS := ws.NetConn().(*tls.Conn)
			assert.True(t, isTLS)
			assert.Equal(t, tt.wantHost, recvRequest(t, reqs).Host)
			checkEcho(t, ws)
		})
	}
}

func TestDialHTTPProxy(t *testing.T) {
	cert, pool := testCert(t)
	reqs := make(chan *http.Request, 1)
	backend := startEchoServer(t, nil, reqs)
	tlsBackend := startEchoServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, reqs)

	tests := []struct {
		name       string
		backend    string
		wantAuth   string
		proxyUser  *url.Userinfo
		url        string
		cfg        *tls.Config
		wantTarget string
		wantErr    error
		wantErrStr string
	}{
		{name: "no auth", backend: backend.addr, url: "ws://" + backend.addr + "/", wantTarget: backend.addr},
		{
			name: "basic auth", backend: backend.addr, wantAuth: basicAuth("user", "p:ss"),
			proxyUser: url.UserPassword("user", "p:ss"), url: "ws://" + backend.addr + "/", wantTarget: backend.addr,
		},
		{
			name: "host name target with default port", backend: backend.addr,
			url: "ws://ws.example.com/", wantTarget: "ws.example.com:80",
		},
		{
			name: "wss through the tunnel: CONNECT before TLS", backend: tlsBackend.addr,
			url: "wss://example.com/", cfg: &tls.Config{RootCAs: pool}, wantTarget: "example.com:443",
		},
		{
			name: "wrong credentials", backend: backend.addr, wantAuth: basicAuth("user", "right"),
			proxyUser: url.UserPassword("user", "wrong"), url: "ws://" + backend.addr + "/",
			wantErr: errProxyRefused, wantErrStr: "407 Proxy Authentication Required",
		},
		{
			name: "missing credentials", backend: backend.addr, wantAuth: basicAuth("user", "right"),
			url: "ws://" + backend.addr + "/", wantErr: errProxyRefused, wantErrStr: "407",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := make(chan string, 1)
			p := startConnectProxy(t, tt.backend, tt.wantAuth, targets)
			proxyURL := &url.URL{Scheme: "http", Host: p.addr, User: tt.proxyUser}
			d := &Dialer{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: tt.cfg}
			ws, resp, err := d.Dial(tt.url, nil)
			if tt.wantErr != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Contains(t, err.Error(), tt.wantErrStr)
				assert.Nil(t, resp)
				return
			}
			require.NoError(t, err)
			defer ws.Close()
			assert.Equal(t, tt.wantTarget, <-targets)
			recvRequest(t, reqs)
			checkEcho(t, ws)
		})
	}

	t.Run("Proxy func error", func(t *testing.T) {
		errProxyFunc := errors.New("no proxy for you")
		d := &Dialer{Proxy: func(*http.Request) (*url.URL, error) { return nil, errProxyFunc }}
		_, _, err := d.Dial("ws://"+backend.addr+"/", nil)
		assert.ErrorIs(t, err, errProxyFunc)
	})

	t.Run("Proxy func sees http and https URLs", func(t *testing.T) {
		var seen []string
		d := &Dialer{
			Proxy: func(r *http.Request) (*url.URL, error) {
				seen = append(seen, r.URL.String())
				return nil, errCliTestStop
			},
		}
		d.Dial("ws://u:p@example.com/a?b", nil)
		d.Dial("wss://example.com:8443/", nil)
		assert.Equal(t, []string{"http://example.com/a?b", "https://example.com:8443/"}, seen)
	})

	t.Run("unsupported scheme", func(t *testing.T) {
		d := &Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "ftp", Host: "127.0.0.1:1"})}
		_, _, err := d.Dial("ws://"+backend.addr+"/", nil)
		assert.ErrorIs(t, err, errUnsupportedProxy)
		assert.Contains(t, err.Error(), `"ftp"`)
	})

	t.Run("nil proxy URL means direct", func(t *testing.T) {
		d := &Dialer{Proxy: func(*http.Request) (*url.URL, error) { return nil, nil }}
		ws, _, err := d.Dial("ws://"+backend.addr+"/", nil)
		require.NoError(t, err)
		defer ws.Close()
		recvRequest(t, reqs)
		checkEcho(t, ws)
	})
}

func TestProxyConnectKeepsBufferedBytes(t *testing.T) {
	client, proxy := net.Pipe()
	defer client.Close()
	defer proxy.Close()
	go func() {
		br := bufio.NewReader(proxy)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		// The tunnel's first bytes share a write with the CONNECT answer.
		io.WriteString(proxy, "HTTP/1.1 200 OK\r\n\r\nearly bytes|")
		io.WriteString(proxy, "later bytes")
		proxy.Close()
	}()
	require.NoError(t, client.SetDeadline(time.Now().Add(testWait)))
	tunnel, err := httpConnect(client, nil, "example.com:80", http.DefaultMaxHeaderBytes)
	require.NoError(t, err)
	all, err := io.ReadAll(tunnel)
	require.NoError(t, err)
	assert.Equal(t, "early bytes|later bytes", string(all))
}

// startSocks5Proxy is a SOCKS5 server that optionally requires a user
// name and password, reports the requested address and connects every
// request to backend.
func startSocks5Proxy(t *testing.T, backend, user, pass string, targets chan<- string) *rawServer {
	return startRawServer(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil || h[0] != 5 {
			return
		}
		methods := make([]byte, h[1])
		if _, err := io.ReadFull(br, methods); err != nil {
			return
		}
		want := byte(0)
		if user != "" {
			want = 2
		}
		if !bytes.Contains(methods, []byte{want}) {
			c.Write([]byte{5, 0xff})
			return
		}
		c.Write([]byte{5, want})
		if user != "" {
			var v [2]byte
			if _, err := io.ReadFull(br, v[:]); err != nil {
				return
			}
			u := make([]byte, v[1])
			io.ReadFull(br, u)
			var pl [1]byte
			io.ReadFull(br, pl[:])
			p := make([]byte, pl[0])
			if _, err := io.ReadFull(br, p); err != nil {
				return
			}
			if string(u) != user || string(p) != pass {
				c.Write([]byte{1, 1})
				return
			}
			c.Write([]byte{1, 0})
		}
		var req [4]byte
		if _, err := io.ReadFull(br, req[:]); err != nil || req[1] != 1 {
			return
		}
		var host string
		switch req[3] {
		case 1:
			ip := make([]byte, 4)
			io.ReadFull(br, ip)
			host = net.IP(ip).String()
		case 4:
			ip := make([]byte, 16)
			io.ReadFull(br, ip)
			host = net.IP(ip).String()
		case 3:
			n, _ := br.ReadByte()
			name := make([]byte, n)
			io.ReadFull(br, name)
			host = string(name)
		}
		var port [2]byte
		if _, err := io.ReadFull(br, port[:]); err != nil {
			return
		}
		targets <- net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
		bc, err := net.Dial("tcp", backend)
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
			return
		}
		// Bound address as a domain name, to exercise that reply form.
		c.Write([]byte{5, 0, 0, 3, 4, 'p', 'r', 'x', 'y', 0x1f, 0x90})
		pipeConns(c, bc, br)
	})
}

func TestDialSOCKS5Proxy(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	backend := startEchoServer(t, nil, reqs)
	tests := []struct {
		name       string
		user, pass string // required by the proxy
		proxyUser  *url.Userinfo
		url        string
		wantTarget string
		wantErr    bool
	}{
		{name: "no auth, IPv4 target", url: "ws://" + backend.addr + "/", wantTarget: backend.addr},
		{name: "domain target", url: "ws://example.com:81/", wantTarget: "example.com:81"},
		{name: "IPv6 target", url: "ws://[2001:db8::1]/", wantTarget: "[2001:db8::1]:80"},
		{name: "password", user: "u", pass: "pw", proxyUser: url.UserPassword("u", "pw"), url: "ws://" + backend.addr + "/", wantTarget: backend.addr},
		{name: "wrong password", user: "u", pass: "pw", proxyUser: url.UserPassword("u", "bad"), url: "ws://" + backend.addr + "/", wantErr: true},
		{name: "password required", user: "u", pass: "pw", url: "ws://" + backend.addr + "/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := make(chan string, 1)
			p := startSocks5Proxy(t, backend.addr, tt.user, tt.pass, targets)
			d := &Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", Host: p.addr, User: tt.proxyUser})}
			ws, _, err := d.Dial(tt.url, nil)
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorIs(t, err, errProxyRefused)
				return
			}
			require.NoError(t, err)
			defer ws.Close()
			assert.Equal(t, tt.wantTarget, <-targets)
			recvRequest(t, reqs)
			checkEcho(t, ws)
		})
	}
}

// startSilentServer accepts connections, reports when the first bytes
// of one arrive, and never answers.
func startSilentServer(t *testing.T) (*rawServer, <-chan struct{}) {
	got := make(chan struct{}, 4)
	s := startRawServer(t, nil, func(c net.Conn) {
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return
		}
		select {
		case got <- struct{}{}:
		default:
		}
		io.Copy(io.Discard, c)
	})
	return s, got
}

// hangCases are the handshake stages a silent peer can stall.
func hangCases(silent string) []struct {
	name string
	url  string
	d    Dialer
} {
	return []struct {
		name string
		url  string
		d    Dialer
	}{
		{name: "waiting for the response", url: "ws://" + silent + "/"},
		{name: "TLS handshake", url: "wss://" + silent + "/", d: Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		{name: "proxy CONNECT", url: "ws://example.com/", d: Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: silent})}},
		{name: "SOCKS5 greeting", url: "ws://example.com/", d: Dialer{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", Host: silent})}},
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	s, _ := startSilentServer(t)
	for _, tt := range hangCases(s.addr) {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.d
			d.HandshakeTimeout = 100 * time.Millisecond
			ws, resp, err := d.Dial(tt.url, nil)
			require.Error(t, err)
			assert.Nil(t, ws)
			assert.Nil(t, resp)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout(), "want a timeout, got %v", err)
		})
	}

	t.Run("negative timeout fails at once", func(t *testing.T) {
		_, _, err := (&Dialer{HandshakeTimeout: -1}).Dial("ws://"+s.addr+"/", nil)
		require.Error(t, err)
	})
}

func TestDialContextCancel(t *testing.T) {
	s, got := startSilentServer(t)
	for _, tt := range hangCases(s.addr) {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				ws  *Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				ws, _, err := tt.d.DialContext(ctx, tt.url, nil)
				done <- result{ws, err}
			}()
			select {
			case <-got:
			case <-time.After(testWait):
				t.Fatal("server received nothing")
			}
			cancel()
			var r result
			select {
			case r = <-done:
			case <-time.After(testWait):
				t.Fatal("DialContext did not return after cancel")
			}
			require.Error(t, r.err)
			assert.Nil(t, r.ws)
			assert.ErrorIs(t, r.err, context.Canceled)

			// Nothing the dial started may outlive it; the server side of
			// the connection ends once the client has closed it.
			deadline := time.Now().Add(testWait)
			n := runtime.NumGoroutine()
			for n > before && time.Now().Before(deadline) {
				runtime.Gosched()
				n = runtime.NumGoroutine()
			}
			assert.LessOrEqual(t, n, before, "goroutines leaked")
		})
	}

	t.Run("already canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err := (&Dialer{}).DialContext(ctx, "ws://"+s.addr+"/", nil)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestDialDeadlines(t *testing.T) {
	release := make(chan struct{})
	s := startRawServer(t, nil, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := c.Write(acceptResponse(req, "", nil)); err != nil {
			return
		}
		select {
		case <-release:
		case <-time.After(testWait):
			return
		}
		c.Write(unmaskedFrame(TextMessage, []byte("after cancel")))
		io.Copy(io.Discard, br)
	})

	var rec *deadlineConn
	d := &Dialer{
		HandshakeTimeout: time.Minute,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			rec = &deadlineConn{Conn: c}
			return rec, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	ws, _, err := d.DialContext(ctx, "ws://"+s.addr+"/", nil)
	require.NoError(t, err)
	defer ws.Close()

	rec.mu.Lock()
	deadlines := append([]time.Time(nil), rec.deadlines...)
	rec.mu.Unlock()
	require.GreaterOrEqual(t, len(deadlines), 2)
	assert.False(t, deadlines[0].IsZero(), "the handshake must run under a deadline")
	assert.True(t, deadlines[0].After(start) && !deadlines[0].After(start.Add(time.Minute+time.Second)))
	assert.True(t, deadlines[len(deadlines)-1].IsZero(), "a successful dial must clear the deadline")

	// The context only governs the handshake.
	cancel()
	close(release)
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(testWait)))
	_, p, err := ws.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "after cancel", string(p))
}

func TestDialCookieJar(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	var refuse atomic.Bool
	s := startRawServer(t, nil, handshakeHandler(reqs, func(req *http.Request) []byte {
		if refuse.Load() {
			return []byte("HTTP/1.1 403 Forbidden\r\nSet-Cookie: denied=yes\r\nContent-Length: 0\r\n\r\n")
		}
		return acceptResponse(req, "Set-Cookie: session=abc; Path=/\r\n", nil)
	}))
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	u, err := url.Parse("http://" + s.addr + "/")
	require.NoError(t, err)
	jar.SetCookies(u, []*http.Cookie{{Name: "pre", Value: "1"}})

	d := &Dialer{Jar: jar}
	ws, resp, err := d.Dial("ws://"+s.addr+"/", nil)
	require.NoError(t, err)
	ws.Close()
	assert.Equal(t, "1", mustCookie(t, recvRequest(t, reqs), "pre"))
	require.Len(t, resp.Cookies(), 1)

	cookies := map[string]string{}
	for _, c := range jar.Cookies(u) {
		cookies[c.Name] = c.Value
	}
	assert.Equal(t, map[string]string{"pre": "1", "session": "abc"}, cookies)

	// The stored cookie goes out with the next dial; cookies of a refused
	// handshake are stored too, as gorilla does.
	refuse.Store(true)
	_, _, err = d.Dial("ws://"+s.addr+"/", nil)
	require.True(t, err == ErrBadHandshake)
	req := recvRequest(t, reqs)
	assert.Equal(t, "abc", mustCookie(t, req, "session"))
	assert.Equal(t, "1", mustCookie(t, req, "pre"))
	names := map[string]bool{}
	for _, c := range jar.Cookies(u) {
		names[c.Name] = true
	}
	assert.True(t, names["denied"])
}

func mustCookie(t *testing.T, req *http.Request, name string) string {
	t.Helper()
	c, err := req.Cookie(name)
	require.NoError(t, err, "cookie %s", name)
	return c.Value
}

func TestDialTrace(t *testing.T) {
	cert, pool := testCert(t)
	s := startEchoServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, nil)
	var events []string
	var mu sync.Mutex
	add := func(e string) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	var tlsErr atomic.Value
	trace := &httptrace.ClientTrace{
		GetConn:           func(string) { add("GetConn") },
		ConnectDone:       func(string, string, error) { add("ConnectDone") },
		GotConn:           func(httptrace.GotConnInfo) { add("GotConn") },
		TLSHandshakeStart: func() { add("TLSHandshakeStart") },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			add("TLSHandshakeDone")
			if err != nil {
				tlsErr.Store(err)
			}
		},
		WroteHeaders:         func() { add("WroteHeaders") },
		WroteRequest:         func(httptrace.WroteRequestInfo) { add("WroteRequest") },
		GotFirstResponseByte: func() { add("GotFirstResponseByte") },
	}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	d := &Dialer{TLSClientConfig: &tls.Config{RootCAs: pool}}
	ws, _, err := d.DialContext(ctx, "wss://"+s.addr+"/", nil)
	require.NoError(t, err)
	defer ws.Close()
	assert.Nil(t, tlsErr.Load())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"GetConn", "ConnectDone", "GotConn", "TLSHandshakeStart", "TLSHandshakeDone",
		"WroteHeaders", "WroteRequest", "GotFirstResponseByte"}, events)
}
