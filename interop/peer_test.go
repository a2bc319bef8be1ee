package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wsforge/websocket"
)

const (
	// peerLifetime bounds a peer process, so that a hung peer cannot
	// outlive its test by much whatever goes wrong.
	peerLifetime = 2 * time.Minute
	// eventTimeout bounds each wait for a line from a peer.
	eventTimeout = 20 * time.Second
	// connTimeout is the read and write deadline of every connection under
	// test: a peer that stops answering fails the test instead of hanging.
	connTimeout = 45 * time.Second

	// requireEnv turns a missing peer into a failure, for CI, which
	// installs them: there a skip would hide a broken install step.
	requireEnv = "WSFORGE_INTEROP_REQUIRE_PEERS"
)

// peer is another implementation of RFC 6455 that the tests talk to, run
// as a child process from a script in testdata (see peer.py for the
// protocol the scripts speak on their stdout and over WebSocket).
type peer struct {
	name    string
	install string
	find    func() (argv []string, version string, err error)

	once    sync.Once
	argv    []string
	version string
	err     error
}

var peers = []*peer{
	{
		name:    "python-websockets",
		install: "apt-get install python3-websockets",
		find:    findPython,
	},
	{
		name:    "node-ws",
		install: "npm ci --prefix interop/testdata",
		find:    findNode,
	},
}

// debianPython is Debian's interpreter: the one python3-websockets installs
// into. The python3 on PATH may be another (a pyenv shim, say) without it.
const debianPython = "/usr/bin/python3"

func findPython() ([]string, string, error) {
	out, err := exec.Command(debianPython, "-c", "import websockets; print(websockets.__version__)").CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	return []string{debianPython, "testdata/peer.py"}, string(bytes.TrimSpace(out)), nil
}

func findNode() ([]string, string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(node, "-e", "process.stdout.write(require('ws/package.json').version)")
	cmd.Dir = "testdata"
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Node prints a stack trace; its Error line says enough.
		msg := string(bytes.TrimSpace(out))
		for _, l := range strings.Split(msg, "\n") {
			if strings.HasPrefix(l, "Error") {
				msg = l
				break
			}
		}
		return nil, "", fmt.Errorf("%v: %s", err, msg)
	}
	return []string{node, "testdata/peer.js"}, string(out), nil
}

// locate looks for the peer once, and reports the error that says it is
// not installed, or nil.
func (p *peer) locate() error {
	p.once.Do(func() { p.argv, p.version, p.err = p.find() })
	return p.err
}

// command returns the peer's command line, skipping the test when the
// peer is not installed.
func (p *peer) command(t *testing.T) []string {
	t.Helper()
	if p.locate() != nil {
		msg := fmt.Sprintf("%s peer not installed (%s): %v", p.name, p.install, p.err)
		if os.Getenv(requireEnv) != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p.argv
}

// peerConfig is the CONFIG argument of the peer scripts. Deflate is nil
// (no permessage-deflate), "default" (the peer library's defaults), or a
// map of RFC 7692 parameters.
type peerConfig struct {
	Deflate any `json:"deflate"`
}

// pmd builds a peerConfig from RFC 7692 parameters given as name, value
// pairs.
func pmd(kv ...any) peerConfig {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return peerConfig{Deflate: m}
}

// event is one line of a peer's stdout.
type event struct {
	Event    string           `json:"event"`
	Port     int              `json:"port"`
	Version  string           `json:"version"`
	Offer    string           `json:"offer"`
	Response string           `json:"response"`
	Params   []map[string]any `json:"params"`
	Code     int              `json:"code"`
	Reason   string           `json:"reason"`
	Error    string           `json:"error"`

	line string
}

// lockedBuffer collects a child's stderr, which is read while the child
// may still write to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// peerProc is a running peer script.
type peerProc struct {
	name   string
	stderr lockedBuffer

	// Events are queued without bound, so that the stdout reader never
	// blocks on a test that is not listening; notify has room for one
	// wake-up.
	mu     sync.Mutex
	queue  []event
	seen   []string
	kinds  map[string]bool
	notify chan struct{}

	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited is closed
}

// startPeer runs p's script in mode ("server" or "client", with url) and
// registers its end with t.Cleanup.
func startPeer(t *testing.T, p *peer, mode string, cfg peerConfig, url string) *peerProc {
	t.Helper()
	argv := p.command(t)
	cfgJSON, err := json.Marshal(cfg)
	require.NoError(t, err)
	args := append(append([]string(nil), argv[1:]...), mode, string(cfgJSON))
	if url != "" {
		args = append(args, url)
	}

	ctx, cancel := context.WithTimeout(context.Background(), peerLifetime)
	cmd := exec.CommandContext(ctx, argv[0], args...)
	pp := &peerProc{
		name:   p.name + " " + mode,
		kinds:  map[string]bool{},
		notify: make(chan struct{}, 1),
		exited: make(chan struct{}),
	}
	cmd.Stderr = &pp.stderr
	// The scripts exit when stdin closes; holding the pipe open keeps
	// them alive, and if this process dies the kernel closes it.
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", pp.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = event{Event: "error", Error: "unparsable line"}
			}
			ev.line = sc.Text()
			pp.push(ev)
		}
		pp.waitErr = cmd.Wait()
		close(pp.exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		cancel()
		<-pp.exited
		if t.Failed() {
			t.Logf("%s: events: %s", pp.name, strings.Join(pp.allSeen(), "\n\t"))
			t.Logf("%s: stderr:\n%s", pp.name, pp.stderr.String())
		}
	})
	return pp
}

func (pp *peerProc) push(ev event) {
	pp.mu.Lock()
	pp.queue = append(pp.queue, ev)
	pp.seen = append(pp.seen, ev.line)
	pp.kinds[ev.Event] = true
	pp.mu.Unlock()
	select {
	case pp.notify <- struct{}{}:
	default:
	}
}

func (pp *peerProc) pop() (event, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if len(pp.queue) == 0 {
		return event{}, false
	}
	ev := pp.queue[0]
	pp.queue = pp.queue[1:]
	return ev, true
}

// saw reports whether the peer has reported an event of the kind.
func (pp *peerProc) saw(kind string) bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.kinds[kind]
}

func (pp *peerProc) allSeen() []string {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return append([]string(nil), pp.seen...)
}

// next waits for the peer's next event, which must be of kind want.
func (pp *peerProc) next(t *testing.T, want string) event {
	t.Helper()
	timer := time.NewTimer(eventTimeout)
	defer timer.Stop()
	for {
		if ev, ok := pp.pop(); ok {
			if ev.Event == "error" && want != "error" {
				t.Fatalf("%s reports an error while the test waits for %q: %s", pp.name, want, ev.Error)
			}
			require.Equalf(t, want, ev.Event, "%s: %s", pp.name, ev.line)
			return ev
		}
		select {
		case <-pp.notify:
		case <-pp.exited:
			// Every line was queued before exited closed.
			pp.mu.Lock()
			pending := len(pp.queue)
			pp.mu.Unlock()
			if pending > 0 {
				continue
			}
			t.Fatalf("%s exited (%v) while the test waits for %q; stderr:\n%s", pp.name, pp.waitErr, want, pp.stderr.String())
		case <-timer.C:
			t.Fatalf("%s: no %q event within %v", pp.name, want, eventTimeout)
		}
	}
}

// waitExit waits for a client peer to end, which it must do cleanly.
func (pp *peerProc) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-pp.exited:
		require.NoErrorf(t, pp.waitErr, "%s exit; stderr:\n%s", pp.name, pp.stderr.String())
	case <-time.After(eventTimeout):
		t.Fatalf("%s did not exit within %v of the connection's end", pp.name, eventTimeout)
	}
}

// countingConn counts the bytes that cross a connection, so that a test
// can tell compressed traffic from uncompressed.
type countingConn struct {
	net.Conn
	read, written atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// countingListener hands out countingConns, which is what Upgrade then
// hijacks.
type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c}, nil
}

// ours is how our side of a connection is set up.
type ours struct {
	enable bool
	opts   websocket.CompressionOptions
}

// endpoint is our side of a connection to a peer.
type endpoint struct {
	conn *websocket.Conn
	nc   *countingConn
	peer *peerProc
	// ext is the Sec-WebSocket-Extensions response header, as it went over
	// the wire; open is the peer's report of the handshake.
	ext  string
	open event
}

// serveToPeer runs our Upgrader on a loopback port and has a peer client
// connect to it.
func serveToPeer(t *testing.T, p *peer, o ours, cfg peerConfig) *endpoint {
	t.Helper()
	p.command(t) // skip before listening
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	type accepted struct {
		conn *websocket.Conn
		err  error
	}
	acc := make(chan accepted, 1)
	up := &websocket.Upgrader{EnableCompression: o.enable, Compression: o.opts}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		select {
		case acc <- accepted{c, err}:
		default:
			// Only one connection is expected; a second is refused.
			if c != nil {
				c.Close()
			}
		}
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(countingListener{ln})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})

	pp := startPeer(t, p, "client", cfg, "ws://"+ln.Addr().String()+"/")
	var a accepted
	select {
	case a = <-acc:
	case <-pp.exited:
		t.Fatalf("%s exited (%v) before connecting; events: %v; stderr:\n%s", pp.name, pp.waitErr, pp.allSeen(), pp.stderr.String())
	case <-time.After(eventTimeout):
		t.Fatalf("%s did not connect within %v", pp.name, eventTimeout)
	}
	require.NoError(t, a.err, "Upgrade")
	t.Cleanup(func() { a.conn.Close() })
	e := &endpoint{conn: a.conn, nc: a.conn.NetConn().(*countingConn), peer: pp}
	e.open = pp.next(t, "open")
	e.ext = e.open.Response
	e.setDeadlines(t)
	return e
}

// dialPeer starts a peer server and connects our Dialer to it.
func dialPeer(t *testing.T, p *peer, o ours, cfg peerConfig) *endpoint {
	t.Helper()
	pp := startPeer(t, p, "server", cfg, "")
	l := pp.next(t, "listening")
	var nc *countingConn
	d := &websocket.Dialer{
		HandshakeTimeout:  eventTimeout,
		EnableCompression: o.enable,
		Compression:       o.opts,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			nc = &countingConn{Conn: c}
			return nc, nil
		},
	}
	c, resp, err := d.Dial(fmt.Sprintf("ws://127.0.0.1:%d/", l.Port), nil)
	if err != nil {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		// The peer says why it refused, if it knows.
		t.Fatalf("dial %s: %v %s; events: %v; stderr:\n%s", pp.name, err, status, pp.allSeen(), pp.stderr.String())
	}
	t.Cleanup(func() { c.Close() })
	e := &endpoint{conn: c, nc: nc, peer: pp, ext: resp.Header.Get("Sec-WebSocket-Extensions")}
	e.open = pp.next(t, "open")
	require.Equal(t, e.ext, e.open.Response, "the response header as we read it and as %s wrote it", pp.name)
	e.setDeadlines(t)
	return e
}

func (e *endpoint) setDeadlines(t *testing.T) {
	deadline := time.Now().Add(connTimeout)
	require.NoError(t, e.conn.SetReadDeadline(deadline))
	require.NoError(t, e.conn.SetWriteDeadline(deadline))
}
