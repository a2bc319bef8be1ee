//go:build go1.24 && unix

package websocket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// net/http accepts extended CONNECT (RFC 8441) only in a process started
// with GODEBUG=http2xconnect=1: it reads the variable once, at start-up.
// The test binary therefore starts itself again with it set, the same
// arguments and the rest of the environment unchanged.
func TestMain(m *testing.M) {
	if !h2Enabled() {
		if err := reexecWithH2(); err != nil {
			fmt.Fprintln(os.Stderr, "websocket tests: cannot restart with GODEBUG=http2xconnect=1, the HTTP/2 tests will fail:", err)
		}
	}
	code := m.Run()
	h2Shutdown()
	os.Exit(code)
}

func h2Enabled() bool {
	return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1")
}

// reexecWithH2 replaces the process with itself, GODEBUG extended with
// http2xconnect=1; it returns only on failure.
func reexecWithH2() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	godebug := "http2xconnect=1"
	if old := os.Getenv("GODEBUG"); old != "" {
		godebug = old + "," + godebug
	}
	env := []string{"GODEBUG=" + godebug}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	return syscall.Exec(exe, os.Args, env)
}

// h2Modes are the two ways a test server speaks HTTP/2: over TLS (ALPN
// "h2", as browsers do) and in clear text with prior knowledge (h2c).
var h2Modes = []string{"h2", "h2c"}

// The HTTP/2 client of these tests is Node's (interop/testdata/h2bridge.js),
// as Go's http.Transport refuses to send the :protocol pseudo-header. The
// bridge turns TCP connections into extended CONNECT streams on one
// HTTP/2 session, so the raw peer, the scripted Autobahn peer and a client
// Conn run over HTTP/2 unchanged. One server and one bridge per mode serve
// the whole test binary; each test registers its handler under a path of
// its own.
type h2Harness struct {
	srv    *httptest.Server
	bridge string // the bridge's address
	cmd    *exec.Cmd

	mu       sync.Mutex
	handlers map[string]http.Handler
	next     int
}

var h2Harnesses = struct {
	sync.Mutex
	m map[string]*h2Harness
}{m: map[string]*h2Harness{}}

// h2Shutdown stops the bridges and servers; TestMain calls it.
func h2Shutdown() {
	h2Harnesses.Lock()
	defer h2Harnesses.Unlock()
	for _, h := range h2Harnesses.m {
		h.cmd.Process.Kill()
		h.cmd.Wait()
		h.srv.Close()
	}
}

// h2Serve serves h in mode under a path of its own until the test ends,
// and returns the bridge's address and the path.
func h2Serve(t *testing.T, mode string, h http.Handler) (bridge, path string) {
	t.Helper()
	hs := h2HarnessFor(t, mode)
	hs.mu.Lock()
	hs.next++
	path = fmt.Sprintf("/ws/%d", hs.next)
	hs.handlers[path] = h
	hs.mu.Unlock()
	t.Cleanup(func() {
		hs.mu.Lock()
		delete(hs.handlers, path)
		hs.mu.Unlock()
	})
	return hs.bridge, path
}

// h2HarnessFor returns mode's harness, starting it the first time. Without
// Node the test skips, or fails when the interop peers are required.
func h2HarnessFor(t *testing.T, mode string) *h2Harness {
	t.Helper()
	require.True(t, h2Enabled(), "GODEBUG lacks http2xconnect=1")
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("WSFORGE_INTEROP_REQUIRE_PEERS") != "" {
			t.Fatalf("node, the HTTP/2 tests' client, not found: %v", err)
		}
		t.Skipf("node, the HTTP/2 tests' client, not found (%v): install Node.js", err)
	}
	h2Harnesses.Lock()
	defer h2Harnesses.Unlock()
	if hs := h2Harnesses.m[mode]; hs != nil {
		return hs
	}
	hs := &h2Harness{handlers: map[string]http.Handler{}}
	hs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		h := hs.handlers[r.URL.Path]
		hs.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	switch mode {
	case "h2":
		hs.srv.EnableHTTP2 = true
		hs.srv.StartTLS()
	case "h2c":
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		hs.srv.Config.Protocols = &p
		hs.srv.Start()
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	hs.cmd = exec.Command(node, "interop/testdata/h2bridge.js", hs.srv.URL)
	hs.cmd.Stderr = os.Stderr
	out, err := hs.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, hs.cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		hs.cmd.Process.Kill()
		hs.cmd.Wait()
		hs.srv.Close()
		t.Fatalf("h2bridge did not start: %v", err)
	}
	hs.bridge = "127.0.0.1:" + strings.TrimSpace(strings.TrimPrefix(line, "port "))
	h2Harnesses.m[mode] = hs
	return hs
}

// h2Dial opens a stream through the bridge: an extended CONNECT to path
// with Sec-WebSocket-Version 13 and header's fields (a field there
// replaces the default). It returns the response and the connection, with
// the reader to go on with.
func h2Dial(t *testing.T, bridge, path string, header http.Header) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", bridge)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(testWait)))
	h := http.Header{"Sec-Websocket-Version": {"13"}}
	for k, vs := range header {
		h[k] = vs
	}
	var b strings.Builder
	b.WriteString("CONNECT " + path + " HTTP/1.1\r\n")
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	_, err = io.WriteString(nc, b.String())
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Time{}))
	return resp, nc, br
}

// serveRawH2 serves app on a server Conn upgraded over HTTP/2 in mode
// and opens the stream from a raw client: the rawPeer writes and reads
// frames on the stream as it does on TCP. The handler returns, ending the
// stream, as soon as app has returned and the Conn is closed, as a
// handler must over HTTP/2.
func serveRawH2(t *testing.T, mode string, app func(c *Conn) error, o rawOptions) *rawPeer {
	t.Helper()
	results := make(chan appResult, 2)
	bridge, path := h2Serve(t, mode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := Upgrader{EnableCompression: o.compress}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			results <- appResult{err: err}
			return
		}
		runRawApp(c, app, results, nil, true)
	}))
	var h http.Header
	if o.compress {
		h = http.Header{"Sec-Websocket-Extensions": {rawPMD}}
	}
	resp, nc, br := h2Dial(t, bridge, path, h)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Sec-WebSocket-Accept"), "no accept key over HTTP/2")
	return &rawPeer{t: t, conn: nc, br: br, client: true, results: results}
}

func init() {
	for _, mode := range h2Modes {
		echoSides = append(echoSides, echoSide{"server/" + mode, func(t *testing.T, setup func(c *Conn)) *rawPeer {
			return serveRawH2(t, mode, echoWholeWith(setup), rawOptions{})
		}})
	}
}

// TestH2Handshake checks the answers to extended CONNECT requests: 200
// without Sec-WebSocket-Accept, the subprotocol and compression
// negotiated as over HTTP/1.1, the application's response fields, and the
// refusals.
func TestH2Handshake(t *testing.T) {
	t.Parallel()
	type result struct {
		isUpgrade bool
		proto     string
		err       error
	}
	cases := []struct {
		name    string
		up      Upgrader
		header  http.Header
		status  int
		proto   string // the response's Sec-WebSocket-Protocol
		ext     string // ... and Sec-WebSocket-Extensions, a prefix
		errText string // in Upgrade's error
	}{
		{name: "plain", status: 200},
		{name: "subprotocol", up: Upgrader{Subprotocols: []string{"chat", "superchat"}},
			header: http.Header{"Sec-Websocket-Protocol": {"superchat, chat"}}, status: 200, proto: "chat"},
		{name: "compression", up: Upgrader{EnableCompression: true},
			header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}}, status: 200, ext: "permessage-deflate"},
		{name: "compression not enabled", header: http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}, status: 200},
		{name: "wrong version", header: http.Header{"Sec-Websocket-Version": {"8"}}, status: 426, errText: "unsupported version"},
		{name: "cross origin", header: http.Header{"Origin": {"https://elsewhere.example"}}, status: 403, errText: "origin"},
		{name: "disabled", up: Upgrader{DisableHTTP2: true}, status: 405, errText: "not GET"},
	}
	for _, mode := range h2Modes {
		for _, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				results := make(chan result, 1)
				bridge, path := h2Serve(t, mode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					up := tc.up
					c, err := up.Upgrade(w, r, http.Header{"X-Served-By": {"wsforge"}})
					res := result{isUpgrade: IsWebSocketUpgrade(r), err: err}
					if err == nil {
						res.proto = c.Subprotocol()
						c.Close()
					}
					results <- res
				}))
				resp, _, _ := h2Dial(t, bridge, path, tc.header)
				require.Equal(t, tc.status, resp.StatusCode)
				res := <-results
				require.True(t, res.isUpgrade, "IsWebSocketUpgrade")
				if tc.status != 200 {
					var he HandshakeError
					require.ErrorAs(t, res.err, &he)
					require.Contains(t, res.err.Error(), tc.errText)
					return
				}
				require.NoError(t, res.err)
				require.Empty(t, resp.Header.Get("Sec-WebSocket-Accept"))
				require.Equal(t, tc.proto, resp.Header.Get("Sec-WebSocket-Protocol"))
				require.Equal(t, tc.proto, res.proto)
				require.True(t, strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), tc.ext), "extensions %q", resp.Header.Get("Sec-WebSocket-Extensions"))
				if tc.ext == "" {
					require.Empty(t, resp.Header.Get("Sec-WebSocket-Extensions"))
				}
				require.Equal(t, "wsforge", resp.Header.Get("X-Served-By"))
			})
		}
	}
}

// TestH2NotWebSocket checks that an extended CONNECT for another protocol
// is not taken for a WebSocket.
func TestH2NotWebSocket(t *testing.T) {
	t.Parallel()
	type result struct {
		isUpgrade bool
		err       error
	}
	results := make(chan result, 1)
	bridge, path := h2Serve(t, "h2c", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := (&Upgrader{}).Upgrade(w, r, nil)
		results <- result{IsWebSocketUpgrade(r), err}
	}))
	resp, _, _ := h2Dial(t, bridge, path, http.Header{":protocol": {"webtransport"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	res := <-results
	require.False(t, res.isUpgrade)
	require.ErrorContains(t, res.err, "':protocol' pseudo-header is not websocket")
}

// dialH2Conn opens a client Conn over a stream through the bridge.
func dialH2Conn(t *testing.T, bridge, path string) *Conn {
	t.Helper()
	resp, nc, br := h2Dial(t, bridge, path, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var pending []byte
	if n := br.Buffered(); n > 0 {
		pending, _ = br.Peek(n)
	}
	return newConn(nc, false, 0, 0, nil, pending)
}

// TestH2Multiplexed opens several WebSockets on one HTTP/2 connection,
// closes one and checks that the others go on, and that the server saw a
// single TCP connection.
func TestH2Multiplexed(t *testing.T) {
	t.Parallel()
	for _, mode := range h2Modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			peers := map[string]bool{}
			ended := make(chan error, 8)
			bridge, path := h2Serve(t, mode, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				peers[r.RemoteAddr] = true
				mu.Unlock()
				c, err := (&Upgrader{}).Upgrade(w, r, nil)
				if err != nil {
					ended <- err
					return
				}
				defer c.Close()
				ended <- echoWhole(c)
			}))
			const n = 5
			conns := make([]*Conn, n)
			for i := range conns {
				conns[i] = dialH2Conn(t, bridge, path)
			}
			roundTrip := func(c *Conn, msg string) {
				t.Helper()
				require.NoError(t, c.SetReadDeadline(time.Now().Add(testWait)))
				require.NoError(t, c.WriteMessage(TextMessage, []byte(msg)))
				mt, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, TextMessage, mt)
				require.Equal(t, msg, string(p))
			}
			for i, c := range conns {
				roundTrip(c, fmt.Sprintf("hello %d", i))
			}
			// The first closes with the closing handshake; the server
			// answers, and its handler returns, ending that stream only.
			require.NoError(t, conns[0].WriteMessage(CloseMessage, FormatCloseMessage(CloseNormalClosure, "bye")))
			_, _, err := conns[0].ReadMessage()
			require.True(t, IsCloseError(err, CloseNormalClosure), "%v", err)
			require.True(t, IsCloseError(<-ended, CloseNormalClosure))
			_, err = conns[0].NetConn().Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF, "the stream ends")
			for i, c := range conns[1:] {
				roundTrip(c, fmt.Sprintf("still here %d", i+1))
			}
			mu.Lock()
			require.Len(t, peers, 1, "streams on more than one connection: %v", peers)
			mu.Unlock()
		})
	}
}

// TestH2CloseEndsStream checks that the server Conn's Close wakes a
// handler blocked in a read, whose return ends the stream (the client
// reads EOF), and wakes a write blocked on a peer that does not read.
func TestH2CloseEndsStream(t *testing.T) {
	t.Parallel()
	readErr := make(chan error, 1)
	writeErr := make(chan error, 1)
	conns := make(chan *Conn, 1)
	bridge, path := h2Serve(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
		_, _, err = c.ReadMessage()
		readErr <- err
	}))
	_, nc, _ := h2Dial(t, bridge, path, nil)
	c := <-conns
	require.NoError(t, c.Close())
	require.ErrorIs(t, <-readErr, net.ErrClosed)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(testWait)))
	_, err := io.Copy(io.Discard, nc)
	require.NoError(t, err, "the stream must end with END_STREAM, not a reset")

	// A writer stuck on flow control: the peer never reads.
	bridge, path = h2Serve(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- c
		writeErr <- c.WriteMessage(BinaryMessage, make([]byte, 64<<20))
	}))
	h2Dial(t, bridge, path, nil)
	c = <-conns
	// Once the first frame's bytes are out, the write is blocked in the
	// stream; Close must end it.
	require.Eventually(t, func() bool { return c.NetConn().(*h2Stream).isWriting() }, testWait, time.Millisecond)
	require.NoError(t, c.Close())
	select {
	case err := <-writeErr:
		require.Error(t, err)
	case <-time.After(testWait):
		t.Fatal("Close did not end the blocked write")
	}
}

// TestH2ReadDeadlineResumable checks what HTTP/2's own deadlines cannot
// give: a read canceled through its context while waiting for a message
// leaves the stream usable.
func TestH2ReadDeadlineResumable(t *testing.T) {
	t.Parallel()
	srvErr := make(chan error, 1)
	bridge, path := h2Serve(t, "h2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		srvErr <- func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			_, _, err := c.ReadMessageContext(ctx)
			var ce *ContextError
			if !errors.As(err, &ce) || ce.Failed {
				return fmt.Errorf("want a ContextError that did not fail the connection, got %v", err)
			}
			if err := c.WriteMessage(TextMessage, []byte("ready")); err != nil {
				return err
			}
			mt, p, err := c.ReadMessage()
			if err != nil {
				return err
			}
			return c.WriteMessage(mt, p)
		}()
	}))
	c := dialH2Conn(t, bridge, path)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(testWait)))
	_, p, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "ready", string(p))
	require.NoError(t, c.WriteMessage(BinaryMessage, []byte("after the timeout")))
	_, p, err = c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "after the timeout", string(p))
	require.NoError(t, <-srvErr)
}

// TestAutobahnServerH2 replays the Autobahn|Testsuite cases against our
// server over HTTP/2 streams, as over TCP in TestAutobahnServer.
func TestAutobahnServerH2(t *testing.T) {
	for _, mode := range h2Modes {
		t.Run(mode, func(t *testing.T) {
			runConformanceCases(t, func(t *testing.T, c conformanceCase) {
				errc := make(chan error, 1)
				bridge, path := h2Serve(t, mode, echoStreamedHandler(Upgrader{}, errc))
				resp, nc, br := h2Dial(t, bridge, path, nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				newScriptedPeer(t, nc, br, true).run(c)
				checkCaseEnd(t, c.end, nc, errc)
			})
		})
	}
}

// TestAutobahnServerDeflateH2 replays the permessage-deflate cases (12.*
// and 13.*) against our server over HTTP/2 streams, for every server
// variant of TestAutobahnServerDeflate.
func TestAutobahnServerDeflateH2(t *testing.T) {
	t.Parallel()
	for _, mode := range h2Modes {
		t.Run(mode, func(t *testing.T) {
			runDeflateCases(t, serverDeflateVariants, func(v serverDeflateVariant) (string, bool) { return v.name, v.brief },
				func(t *testing.T, v serverDeflateVariant, c deflateCase) {
					runServerDeflateCaseOn(t, func(t *testing.T, up Upgrader, offer string) (net.Conn, *bufio.Reader, *http.Response, <-chan error) {
						errc := make(chan error, 1)
						bridge, path := h2Serve(t, mode, echoStreamedHandler(up, errc))
						resp, nc, br := h2Dial(t, bridge, path, http.Header{"Sec-Websocket-Extensions": {offer}})
						require.Equal(t, http.StatusOK, resp.StatusCode)
						return nc, br, resp, errc
					}, v, c)
				})
		})
	}
}

// TestH2EngineRefuses checks that an Engine answers a WebSocket over
// HTTP/2 with 501: the stream has no socket of its own for its loops.
func TestH2EngineRefuses(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(EngineOptions{Loops: 1})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	errs := make(chan error, 1)
	bridge, path := h2Serve(t, "h2c", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := e.Upgrade(&Upgrader{}, w, r, nil, engineEcho{results: make(chan appResult, 1)})
		errs <- err
	}))
	resp, _, _ := h2Dial(t, bridge, path, nil)
	require.Equal(t, http.StatusNotImplemented, resp.StatusCode)
	var he HandshakeError
	require.ErrorAs(t, <-errs, &he)
	require.ErrorContains(t, he, "HTTP/1.1 only")
}
