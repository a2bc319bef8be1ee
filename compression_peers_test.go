package websocket

// What the permessage-deflate tests run on: message corpora, a loopback
// server, raw peers that dial or accept an upgrade by hand, and a tap on a
// client's traffic.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// ---- messages ----------------------------------------------------------------

type chatMsg struct {
	typ  int
	data []byte
}

var chatWords = []string{"hello", "world", "message", "room", "general", "status", "online", "typing", "naïve", "café", "日本語", "ünïcödé", "🚀", "lorem", "ipsum", "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "ack", "ping", "update", "delta"}

// chatText returns about n bytes (at most n) of valid UTF-8 JSON-like text.
func chatText(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+200)
	for len(b) < n {
		var text strings.Builder
		for w := rng.IntN(12) + 1; w > 0; w-- {
			text.WriteString(chatWords[rng.IntN(len(chatWords))])
			text.WriteByte(' ')
		}
		b = fmt.Appendf(b, `{"id":%d,"type":%q,"user":"user%d","room":%q,"text":%q,"score":%d.%02d,"tags":[%q,%q]},`,
			rng.IntN(100000), chatWords[rng.IntN(4)], rng.IntN(50), chatWords[rng.IntN(6)], text.String(),
			rng.IntN(1000), rng.IntN(100), chatWords[rng.IntN(len(chatWords))], chatWords[rng.IntN(len(chatWords))])
	}
	b = b[:n]
	for !utf8.Valid(b) {
		b = b[:len(b)-1]
	}
	return b
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// chatCorpus returns n messages like those of a chatty application: mostly
// JSON of up to about 300 bytes, a few of up to 8 KiB, some below the default
// compression threshold (empty ones included), repeats of earlier messages
// (whole or with a changed head), and incompressible binary.
func chatCorpus(seed uint64, n int) []chatMsg {
	rng := rand.New(rand.NewPCG(seed, 0xc0ffee))
	msgs := make([]chatMsg, 0, n)
	for len(msgs) < n {
		r := rng.IntN(100)
		switch {
		case r < 15:
			msgs = append(msgs, chatMsg{TextMessage, chatText(rng, rng.IntN(defaultCompressionThreshold))})
		case r < 27 && len(msgs) > 0:
			m := msgs[len(msgs)-1-rng.IntN(min(len(msgs), 300))]
			msgs = append(msgs, chatMsg{m.typ, m.data})
		case r < 32 && len(msgs) > 0:
			m := msgs[len(msgs)-1-rng.IntN(min(len(msgs), 50))]
			if m.typ == TextMessage {
				head := chatText(rng, 12)
				d := append(head, m.data[min(len(m.data), len(head)):]...)
				for !utf8.Valid(d) {
					d = d[:len(d)-1]
				}
				m.data = d
			}
			msgs = append(msgs, m)
		case r < 40:
			msgs = append(msgs, chatMsg{BinaryMessage, randomBytes(rng, 64+rng.IntN(200))})
		case r < 99:
			msgs = append(msgs, chatMsg{TextMessage, chatText(rng, 64+rng.IntN(250))})
		default:
			msgs = append(msgs, chatMsg{TextMessage, chatText(rng, 1500+rng.IntN(6700))})
		}
	}
	return msgs
}

// ---- servers and peers -----------------------------------------------------

// echoOnUpgrade adapts an echo loop to upgradeServer's handler: it runs once the
// upgrade has worked.
func echoOnUpgrade(echo func(*Conn) error) func(*Conn, error) {
	return func(c *Conn, err error) {
		if err == nil {
			echo(c)
		}
	}
}

// upgradeServer serves upgrades with u on a loopback server and gives each
// upgraded Conn, or Upgrade's error, to handle in the handler's goroutine.
// When the test ends the server and the Conns are closed and every handler
// has returned.
func upgradeServer(t *testing.T, u *Upgrader, handle func(c *Conn, err error)) *httptest.Server {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []*Conn
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := u.Upgrade(w, r, nil)
		if c != nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			defer c.Close()
		}
		handle(c, err)
	}))
	t.Cleanup(func() {
		// Close returns once no handler is left before its hijack, so
		// every handler has been counted.
		srv.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return srv
}

func upgradeURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

// dialRawUpgrade opens a raw TCP connection to srv and sends an upgrade request
// with the given Sec-WebSocket-Extensions lines. It returns the connection
// (with a deadline), a reader positioned after the response, and the
// response.
func dialRawUpgrade(t *testing.T, srv *httptest.Server, ext ...string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(testWait)))
	var b strings.Builder
	b.WriteString("GET /ws HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
	for _, e := range ext {
		b.WriteString("Sec-WebSocket-Extensions: " + e + "\r\n")
	}
	b.WriteString("\r\n")
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// RFC 6455 section 1.3's example key and its answer.
		require.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", resp.Header.Get("Sec-Websocket-Accept"))
	}
	return conn, br, resp
}

// listenLoopback returns a loopback listener closed when the test ends.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptRawUpgrade accepts one connection on ln and reads its upgrade request.
// The connection gets a deadline.
func acceptRawUpgrade(ln net.Listener) (net.Conn, *bufio.Reader, *http.Request, error) {
	conn, err := ln.Accept()
	if err != nil {
		return nil, nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(testWait))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, br, req, nil
}

// respond101 accepts req with the given Sec-WebSocket-Extensions lines.
func respond101(conn net.Conn, req *http.Request, ext ...string) error {
	sum := sha1.Sum([]byte(req.Header.Get("Sec-Websocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
	for _, e := range ext {
		b.WriteString("Sec-WebSocket-Extensions: " + e + "\r\n")
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(conn, b.String())
	return err
}

// trafficTap records the traffic of a client's connection.
type trafficTap struct {
	net.Conn
	mu      sync.Mutex
	read    []byte
	written []byte
}

func (c *trafficTap) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read = append(c.read, p[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *trafficTap) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.mu.Lock()
	c.written = append(c.written, p[:n]...)
	c.mu.Unlock()
	return n, err
}

// messages returns the data messages that crossed the tapped connection,
// from the server (fromServer) or from the client: every whole frame after
// the handshake, control frames left out.
func (c *trafficTap) messages(t *testing.T, fromServer bool) []wireMessage {
	t.Helper()
	c.mu.Lock()
	stream := c.written
	if fromServer {
		stream = c.read
	}
	stream = bytes.Clone(stream)
	c.mu.Unlock()
	end := bytes.Index(stream, []byte("\r\n\r\n"))
	require.GreaterOrEqual(t, end, 0, "no handshake in the tapped stream")
	r := bytes.NewReader(stream[end+4:])
	var msgs []wireMessage
	for {
		m, err := readWireMessage(r)
		if err != nil {
			return msgs
		}
		checkFraming(t, m, !fromServer)
		msgs = append(msgs, m)
	}
}

// dialTapped dials srv with d, recording the client's traffic.
func dialTapped(t *testing.T, srv *httptest.Server, d *Dialer) (*Conn, *trafficTap, *http.Response) {
	t.Helper()
	var tap *trafficTap
	dd := *d
	dd.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tap = &trafficTap{Conn: c}
		return tap, nil
	}
	c, resp, err := dd.Dial(upgradeURL(srv), nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, tap, resp
}

// libraryGoroutines counts the goroutines running code of the library's
// own (non-test) files.
func libraryGoroutines() int {
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Dir(self) + string(os.PathSeparator)
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, ").idleTick(") {
			// The idle timer of a compressing connection that some
			// other test left open runs briefly on a goroutine of its
			// own: not one a failed dial left behind.
			continue
		}
		for _, line := range strings.Split(g, "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, dir) && !strings.Contains(line, "_test.go:") {
				n++
				break
			}
		}
	}
	return n
}

// negotiatedParams parses a permessage-deflate response as the test expects it:
// what each side then uses.
type negotiatedParams struct {
	serverTakeover, clientTakeover bool
	serverBits, clientBits         int
}

func parseNegotiated(t *testing.T, response string) negotiatedParams {
	t.Helper()
	p := negotiatedParams{serverTakeover: true, clientTakeover: true, serverBits: 15, clientBits: 15}
	parts := strings.Split(response, ";")
	require.Equal(t, permessageDeflate, strings.TrimSpace(parts[0]))
	for _, part := range parts[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		var bits int
		if value != "" {
			_, err := fmt.Sscan(value, &bits)
			require.NoError(t, err)
		}
		switch name {
		case "server_no_context_takeover":
			p.serverTakeover = false
		case "client_no_context_takeover":
			p.clientTakeover = false
		case "server_max_window_bits":
			p.serverBits = bits
		case "client_max_window_bits":
			p.clientBits = bits
		default:
			t.Fatalf("unexpected parameter %q in %q", name, response)
		}
	}
	return p
}
