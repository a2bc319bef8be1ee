package websocket

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The handshake tests speak raw HTTP over loopback TCP, so that they
// depend on nothing but the server side.

type upgradeResult struct {
	c   *Conn
	err error
}

// startUpgradeServer serves upgrade on a loopback httptest server and returns its
// address and a channel carrying each upgrade's result. Conns nobody took
// off the channel are closed at the end of the test.
func startUpgradeServer(t *testing.T, upgrade func(w http.ResponseWriter, r *http.Request) (*Conn, error)) (string, <-chan upgradeResult) {
	t.Helper()
	results := make(chan upgradeResult, 8)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrade(w, r)
		results <- upgradeResult{c, err}
	}))
	t.Cleanup(func() {
		ts.Close()
		for {
			select {
			case res := <-results:
				if res.c != nil {
					res.c.Close()
				}
			default:
				return
			}
		}
	})
	return ts.Listener.Addr().String(), results
}

// upgradeWith returns an upgrade function for startUpgradeServer.
func upgradeWith(u *Upgrader, responseHeader http.Header) func(http.ResponseWriter, *http.Request) (*Conn, error) {
	return func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
		return u.Upgrade(w, r, responseHeader)
	}
}

func nextUpgrade(t *testing.T, results <-chan upgradeResult) upgradeResult {
	t.Helper()
	select {
	case res := <-results:
		if res.c != nil {
			t.Cleanup(func() { res.c.Close() })
		}
		return res
	case <-time.After(testWait):
		t.Fatal("handler did not finish")
		return upgradeResult{}
	}
}

// handshakeReq describes a handshake request as a valid one plus changes.
type handshakeReq struct {
	method string            // default GET
	proto  string            // default HTTP/1.1
	set    map[string]string // header fields to set; "" removes the field
	add    [][2]string       // header fields added after the others, repeats allowed
}

// text renders the request. Host defaults to host.
func (q handshakeReq) text(host string) string {
	fields := [][2]string{
		{"Host", host},
		{"Connection", "Upgrade"},
		{"Upgrade", "websocket"},
		{"Sec-WebSocket-Version", "13"},
		{"Sec-WebSocket-Key", sampleKey},
	}
	var extra []string
	for name := range q.set {
		found := false
		for i := range fields {
			if strings.EqualFold(fields[i][0], name) {
				fields[i][1] = q.set[name]
				found = true
			}
		}
		if !found {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		fields = append(fields, [2]string{name, q.set[name]})
	}
	method, proto := q.method, q.proto
	if method == "" {
		method = http.MethodGet
	}
	if proto == "" {
		proto = "HTTP/1.1"
	}
	var b strings.Builder
	b.WriteString(method + " /ws " + proto + "\r\n")
	for _, f := range append(fields, q.add...) {
		if f[1] != "" {
			b.WriteString(f[0] + ": " + f[1] + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// dialAndSend opens a raw TCP connection to addr and sends data in one
// write.
func dialAndSend(t *testing.T, addr string, data []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(testWait)))
	_, err = nc.Write(data)
	require.NoError(t, err)
	return nc, bufio.NewReader(nc)
}

// readResponseHead reads a response head and returns it raw and parsed.
func readResponseHead(t *testing.T, br *bufio.Reader) (string, *http.Response) {
	t.Helper()
	var raw strings.Builder
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err, "reading response head")
		raw.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw.String())), nil)
	require.NoError(t, err)
	return raw.String(), resp
}

// sendHandshake sends q to addr and returns the response head.
func sendHandshake(t *testing.T, addr string, q handshakeReq) (string, *http.Response) {
	t.Helper()
	_, br := dialAndSend(t, addr, []byte(q.text(addr)))
	return readResponseHead(t, br)
}

// maskedFrame returns a final, masked (client to server) frame.
func maskedFrame(opcode byte, payload []byte) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func keyOf(n int) string {
	return base64.StdEncoding.EncodeToString(make([]byte, n))
}

func TestComputeAcceptKey(t *testing.T) {
	assert.Equal(t, sampleAccept, computeAcceptKey(sampleKey))
}

func TestUpgradeRejects(t *testing.T) {
	tests := []struct {
		name     string
		req      handshakeReq
		respHdr  http.Header
		status   int
		inReason string
	}{
		{"method POST", handshakeReq{method: http.MethodPost}, nil, http.StatusMethodNotAllowed, "GET"},
		{"method PUT", handshakeReq{method: http.MethodPut}, nil, http.StatusMethodNotAllowed, "GET"},
		{"HTTP/1.0", handshakeReq{proto: "HTTP/1.0"}, nil, http.StatusBadRequest, "HTTP/1.1"},
		{"no Connection", handshakeReq{set: map[string]string{"Connection": ""}}, nil, http.StatusBadRequest, "Connection"},
		{"Connection keep-alive", handshakeReq{set: map[string]string{"Connection": "keep-alive"}}, nil, http.StatusBadRequest, "Connection"},
		{"Connection garbled", handshakeReq{set: map[string]string{"Connection": "upgradex, keep-alive"}}, nil, http.StatusBadRequest, "Connection"},
		{"no Upgrade", handshakeReq{set: map[string]string{"Upgrade": ""}}, nil, http.StatusBadRequest, "Upgrade"},
		{"Upgrade garbled", handshakeReq{set: map[string]string{"Upgrade": "websockets"}}, nil, http.StatusBadRequest, "Upgrade"},
		{"Upgrade h2c", handshakeReq{set: map[string]string{"Upgrade": "h2c"}}, nil, http.StatusBadRequest, "Upgrade"},
		{"version 8", handshakeReq{set: map[string]string{"Sec-WebSocket-Version": "8"}}, nil, http.StatusUpgradeRequired, "version"},
		{"no version", handshakeReq{set: map[string]string{"Sec-WebSocket-Version": ""}}, nil, http.StatusUpgradeRequired, "version"},
		{"no key", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": ""}}, nil, http.StatusBadRequest, "Sec-WebSocket-Key"},
		// RFC 6455 section 11.3.1 and 11.3.5: each at most once.
		{"key twice", handshakeReq{add: [][2]string{{"Sec-WebSocket-Key", sampleKey}}}, nil, http.StatusBadRequest, "'Sec-WebSocket-Key' header appears more than once"},
		{"key twice, other value", handshakeReq{add: [][2]string{{"Sec-WebSocket-Key", keyOf(16)}}}, nil, http.StatusBadRequest, "'Sec-WebSocket-Key' header appears more than once"},
		{"version twice", handshakeReq{add: [][2]string{{"Sec-WebSocket-Version", "13"}}}, nil, http.StatusBadRequest, "'Sec-WebSocket-Version' header appears more than once"},
		{"version list", handshakeReq{set: map[string]string{"Sec-WebSocket-Version": "13, 8"}}, nil, http.StatusBadRequest, "'Sec-WebSocket-Version' header appears more than once"},
		{"key not base64", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}}, nil, http.StatusBadRequest, "Sec-WebSocket-Key"},
		{"key 15 bytes", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": keyOf(15)}}, nil, http.StatusBadRequest, "Sec-WebSocket-Key"},
		{"key 17 bytes", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": keyOf(17)}}, nil, http.StatusBadRequest, "Sec-WebSocket-Key"},
		{"key unpadded", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": base64.RawStdEncoding.EncodeToString(make([]byte, 16))}}, nil, http.StatusBadRequest, "Sec-WebSocket-Key"},
		{"cross origin", handshakeReq{set: map[string]string{"Origin": "http://evil.example"}}, nil, http.StatusForbidden, "origin"},
		{"null origin", handshakeReq{set: map[string]string{"Origin": "null"}}, nil, http.StatusForbidden, "origin"},
		{"origin same host other case but other port", handshakeReq{set: map[string]string{"Host": "ws.example.com", "Origin": "https://WS.example.com:8443"}}, nil, http.StatusForbidden, "origin"},
		{"extensions in responseHeader", handshakeReq{}, http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}, http.StatusInternalServerError, "Extensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := startUpgradeServer(t, upgradeWith(&Upgrader{}, tt.respHdr))
			_, resp := sendHandshake(t, addr, tt.req)
			assert.Equal(t, tt.status, resp.StatusCode)
			// The default error response names the supported version.
			assert.Equal(t, "13", resp.Header.Get("Sec-WebSocket-Version"))

			res := nextUpgrade(t, results)
			assert.Nil(t, res.c)
			var he HandshakeError
			require.ErrorAs(t, res.err, &he)
			assert.True(t, strings.HasPrefix(he.Error(), "websocket: "), he.Error())
			assert.Contains(t, he.Error(), tt.inReason)
		})
	}
}

func TestUpgradeAccepts(t *testing.T) {
	tests := []struct {
		name string
		req  handshakeReq
	}{
		{"plain", handshakeReq{}},
		{"token lists and case", handshakeReq{set: map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket"}}},
		{"upper case tokens", handshakeReq{set: map[string]string{"Connection": "UPGRADE", "Upgrade": "WEBSOCKET"}}},
		{"same origin", handshakeReq{set: map[string]string{"Host": "ws.example.com", "Origin": "https://ws.example.com"}}},
		{"same origin ignoring case", handshakeReq{set: map[string]string{"Host": "ws.example.com", "Origin": "https://WS.Example.COM"}}},
		{"same origin with port", handshakeReq{set: map[string]string{"Host": "ws.example.com:8080", "Origin": "http://ws.example.com:8080"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := startUpgradeServer(t, upgradeWith(&Upgrader{}, nil))
			raw, resp := sendHandshake(t, addr, tt.req)
			assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			assert.True(t, strings.HasPrefix(raw, "HTTP/1.1 101 Switching Protocols\r\n"), raw)
			assert.Contains(t, raw, "\r\nSec-WebSocket-Accept: "+sampleAccept+"\r\n")
			assert.Equal(t, "websocket", resp.Header.Get("Upgrade"))
			assert.Equal(t, "Upgrade", resp.Header.Get("Connection"))
			assert.Empty(t, resp.Header.Values("Sec-WebSocket-Protocol"))
			assert.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"))

			res := nextUpgrade(t, results)
			require.NoError(t, res.err)
			require.NotNil(t, res.c)
			assert.Equal(t, "", res.c.Subprotocol())
		})
	}
}

func TestUpgradeCheckOrigin(t *testing.T) {
	var calls int // written by the handler before it sends its result
	u := &Upgrader{CheckOrigin: func(r *http.Request) bool {
		calls++
		return r.Header.Get("Origin") == "https://trusted.example"
	}}
	tests := []struct {
		name   string
		origin string
		status int
	}{
		{"trusted cross origin", "https://trusted.example", http.StatusSwitchingProtocols},
		{"same host not trusted", "http://ws.example.com", http.StatusForbidden},
		{"no origin not trusted", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls = 0
			addr, results := startUpgradeServer(t, upgradeWith(u, nil))
			_, resp := sendHandshake(t, addr, handshakeReq{set: map[string]string{"Host": "ws.example.com", "Origin": tt.origin}})
			assert.Equal(t, tt.status, resp.StatusCode)
			res := nextUpgrade(t, results)
			assert.Equal(t, 1, calls)
			if tt.status == http.StatusSwitchingProtocols {
				assert.NoError(t, res.err)
			} else {
				assert.ErrorAs(t, res.err, new(HandshakeError))
			}
		})
	}
}

func TestUpgradeCustomError(t *testing.T) {
	tests := []struct {
		name   string
		req    handshakeReq
		status int
	}{
		{"method", handshakeReq{method: http.MethodPost}, http.StatusMethodNotAllowed},
		{"connection", handshakeReq{set: map[string]string{"Connection": "close"}}, http.StatusBadRequest},
		{"version", handshakeReq{set: map[string]string{"Sec-WebSocket-Version": "8"}}, http.StatusUpgradeRequired},
		{"origin", handshakeReq{set: map[string]string{"Origin": "http://evil.example"}}, http.StatusForbidden},
		{"key", handshakeReq{set: map[string]string{"Sec-WebSocket-Key": "short"}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				gotStatus int
				gotReason error
			)
			u := &Upgrader{Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
				gotStatus, gotReason = status, reason
				w.Header().Set("X-Custom", "yes")
				w.WriteHeader(http.StatusTeapot)
			}}
			addr, results := startUpgradeServer(t, upgradeWith(u, nil))
			_, resp := sendHandshake(t, addr, tt.req)
			assert.Equal(t, http.StatusTeapot, resp.StatusCode)
			assert.Equal(t, "yes", resp.Header.Get("X-Custom"))
			assert.Empty(t, resp.Header.Get("Sec-WebSocket-Version"), "only the default error function sets it")

			res := nextUpgrade(t, results)
			assert.Equal(t, tt.status, gotStatus)
			assert.Equal(t, res.err, gotReason)
			assert.ErrorAs(t, res.err, new(HandshakeError))
		})
	}
}

func TestUpgradeSubprotocol(t *testing.T) {
	tests := []struct {
		name    string
		client  string // Sec-WebSocket-Protocol request value
		server  []string
		respHdr http.Header
		want    string
	}{
		{"server preference wins", "b, a", []string{"a", "b"}, nil, "a"},
		{"only common one", "x, b", []string{"a", "b"}, nil, "b"},
		{"no spaces", "c,b", []string{"b", "c"}, nil, "b"},
		{"no match", "x, y", []string{"a"}, nil, ""},
		{"client offers none", "", []string{"a"}, nil, ""},
		{"case sensitive", "Chat", []string{"chat"}, nil, ""},
		{"responseHeader used when Subprotocols nil", "chat, superchat", nil, http.Header{"Sec-Websocket-Protocol": {"superchat"}}, "superchat"},
		{"responseHeader ignored when Subprotocols set", "chat", []string{}, http.Header{"Sec-Websocket-Protocol": {"chat"}}, ""},
		{"nothing anywhere", "chat", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &Upgrader{Subprotocols: tt.server}
			addr, results := startUpgradeServer(t, upgradeWith(u, tt.respHdr))
			_, resp := sendHandshake(t, addr, handshakeReq{set: map[string]string{"Sec-WebSocket-Protocol": tt.client}})
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			if tt.want == "" {
				assert.Empty(t, resp.Header.Values("Sec-WebSocket-Protocol"))
			} else {
				assert.Equal(t, []string{tt.want}, resp.Header.Values("Sec-WebSocket-Protocol"))
			}
			res := nextUpgrade(t, results)
			require.NoError(t, res.err)
			assert.Equal(t, tt.want, res.c.Subprotocol())
		})
	}
}

func TestUpgradeResponseHeader(t *testing.T) {
	respHdr := http.Header{
		"Set-Cookie":  {"a=1", "b=2"},
		"X-Inject":    {"v\r\nInjected: yes"},
		"Bad Name":    {"dropped"},
		"X-Lf\nSplit": {"dropped"},
		"X-Tab":       {"a\tb"},
	}
	addr, results := startUpgradeServer(t, upgradeWith(&Upgrader{}, respHdr))
	raw, resp := sendHandshake(t, addr, handshakeReq{})
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	assert.Contains(t, raw, "\r\nSet-Cookie: a=1\r\n")
	assert.Contains(t, raw, "\r\nSet-Cookie: b=2\r\n")
	assert.Equal(t, []string{"a=1", "b=2"}, resp.Header.Values("Set-Cookie"))
	assert.Contains(t, raw, "\r\nX-Inject: v  Injected: yes\r\n")
	assert.Empty(t, resp.Header.Get("Injected"))
	assert.NotContains(t, raw, "dropped")
	assert.Contains(t, raw, "\r\nX-Tab: a\tb\r\n")
	require.NoError(t, nextUpgrade(t, results).err)
}

// TestUpgradePipelinedFrame sends the request and a frame in one write: the
// frame must not be lost in the HTTP server's buffer.
func TestUpgradePipelinedFrame(t *testing.T) {
	addr, results := startUpgradeServer(t, upgradeWith(&Upgrader{}, nil))
	req := handshakeReq{}.text(addr)
	data := append([]byte(req), maskedFrame(opText, []byte("hello, pipelined"))...)
	_, br := dialAndSend(t, addr, data)
	_, resp := readResponseHead(t, br)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	res := nextUpgrade(t, results)
	require.NoError(t, res.err)
	require.NoError(t, res.c.SetReadDeadline(time.Now().Add(testWait)))
	mt, p, err := res.c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, TextMessage, mt)
	assert.Equal(t, "hello, pipelined", string(p))
}

// fakeHijacker is a ResponseWriter whose Hijack returns a given conn
// and reader, for cases an http.Server cannot set up deterministically.
type fakeHijacker struct {
	*httptest.ResponseRecorder
	conn net.Conn
	br   *bufio.Reader
}

func (h *fakeHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(h.br, bufio.NewWriter(h.conn)), nil
}

// TestUpgradePipelinedBuffered makes sure the pipelined frames are in the
// hijacked reader's buffer, which over an http.Server depends on timing.
func TestUpgradePipelinedBuffered(t *testing.T) {
	client, server := tcpPair(t)
	req := handshakeReq{}.text("example.com")
	frames := append(maskedFrame(opText, []byte("one")), maskedFrame(opBinary, []byte{2, 2})...)
	_, err := client.Write(append([]byte(req), frames...))
	require.NoError(t, err)

	br := bufio.NewReader(server)
	_, err = br.Peek(len(req) + len(frames)) // everything is buffered now
	require.NoError(t, err)
	r, err := http.ReadRequest(br)
	require.NoError(t, err)
	require.Equal(t, len(frames), br.Buffered())

	w := &fakeHijacker{ResponseRecorder: httptest.NewRecorder(), conn: server, br: br}
	c, err := (&Upgrader{}).Upgrade(w, r, nil)
	require.NoError(t, err)
	defer c.Close()

	_, resp := readResponseHead(t, bufio.NewReader(client))
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	for _, want := range []struct {
		mt int
		p  string
	}{{TextMessage, "one"}, {BinaryMessage, "\x02\x02"}} {
		mt, p, err := c.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, want.mt, mt)
		assert.Equal(t, want.p, string(p))
	}
}

func TestUpgradeNoHijacker(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", sampleKey)
	w := httptest.NewRecorder()
	c, err := (&Upgrader{}).Upgrade(w, r, nil)
	assert.Nil(t, c)
	var he HandshakeError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, "websocket: response does not implement http.Hijacker", he.Error())
	assert.Equal(t, http.StatusInternalServerError, w.Code)
}

// TestUpgradeHandshakeTimeout has the client never read the 101 response.
// Over TCP the kernel buffers would absorb it, so this uses net.Pipe,
// whose writes block until the other end reads: the write deadline is
// then the only thing that can end the write.
func TestUpgradeHandshakeTimeout(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", sampleKey)
	w := &fakeHijacker{ResponseRecorder: httptest.NewRecorder(), conn: server, br: bufio.NewReader(server)}

	c, err := (&Upgrader{HandshakeTimeout: 20 * time.Millisecond}).Upgrade(w, r, nil)
	assert.Nil(t, c)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "websocket: "), err.Error())
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	// The failed connection was closed (Upgrade has returned, so a read
	// cannot block).
	_, err = client.Read(make([]byte, 1))
	assert.ErrorIs(t, err, io.EOF)
}

// serverDeadlineListener hands out its connections wrapped in a deadlineConn.
type serverDeadlineListener struct{ net.Listener }

func (l serverDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c}, nil
}

// TestUpgradeServerDeadlines checks that the 101 response goes out in one
// write under the HandshakeTimeout deadline, and that the connection is
// left without the deadlines the http.Server had set.
func TestUpgradeServerDeadlines(t *testing.T) {
	results := make(chan upgradeResult, 1)
	u := &Upgrader{HandshakeTimeout: time.Minute}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		results <- upgradeResult{c, err}
	}))
	ts.Listener = serverDeadlineListener{ts.Listener}
	ts.Config.ReadTimeout = time.Hour
	ts.Config.WriteTimeout = time.Hour
	ts.Start()
	defer ts.Close()

	addr := ts.Listener.Addr().String()
	start := time.Now()
	_, resp := sendHandshake(t, addr, handshakeReq{})
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	res := nextUpgrade(t, results)
	require.NoError(t, res.err)

	dc, ok := res.c.NetConn().(*deadlineConn)
	require.True(t, ok, "NetConn is the hijacked conn")
	dc.mu.Lock()
	defer dc.mu.Unlock()
	require.Len(t, dc.writeDeadline, 1, "the 101 response is one write")
	assert.True(t, dc.writeDeadline[0].After(start), "HandshakeTimeout deadline set")
	assert.True(t, dc.writeDeadline[0].Before(start.Add(time.Hour)), "not the server's WriteTimeout")
	assert.True(t, dc.read.IsZero(), "read deadline cleared")
	assert.True(t, dc.write.IsZero(), "write deadline cleared")
}

func TestUpgradeDeprecatedFunc(t *testing.T) {
	tests := []struct {
		name    string
		req     handshakeReq
		status  int
		wantErr bool
	}{
		// Nothing is written on failure, so the server's default 200 goes out.
		{"invalid request gets no response from Upgrade", handshakeReq{set: map[string]string{"Sec-WebSocket-Version": "8"}}, http.StatusOK, true},
		{"no origin check", handshakeReq{set: map[string]string{"Origin": "http://evil.example"}}, http.StatusSwitchingProtocols, false},
		{"subprotocol from responseHeader", handshakeReq{set: map[string]string{"Sec-WebSocket-Protocol": "chat"}}, http.StatusSwitchingProtocols, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := startUpgradeServer(t, func(w http.ResponseWriter, r *http.Request) (*Conn, error) {
				var h http.Header
				if p := Subprotocols(r); len(p) > 0 {
					h = http.Header{"Sec-Websocket-Protocol": {p[0]}}
				}
				return Upgrade(w, r, h, 1024, 1024)
			})
			_, resp := sendHandshake(t, addr, tt.req)
			assert.Equal(t, tt.status, resp.StatusCode)
			res := nextUpgrade(t, results)
			if tt.wantErr {
				assert.ErrorAs(t, res.err, new(HandshakeError))
				return
			}
			require.NoError(t, res.err)
			assert.Equal(t, tt.req.set["Sec-WebSocket-Protocol"], res.c.Subprotocol())
		})
	}
}
