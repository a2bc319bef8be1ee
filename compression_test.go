package websocket

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// End-to-end tests of permessage-deflate (RFC 7692) over loopback TCP. The
// raw peers here frame, mask, deflate and inflate with their own code and
// compress/flate, never with the library's, so that the library is checked
// against an independent reading of the RFCs.

const permessageDeflate = "permessage-deflate"

// ---- an independent frame codec --------------------------------------------

// wireFrame is one frame as it crossed the wire, payload unmasked.
type wireFrame struct {
	fin     bool
	rsv     byte // RSV1..RSV3 where they sit in the first byte
	op      byte
	masked  bool
	payload []byte
}

const (
	wireRSV1 = 0x40
	wireRSV2 = 0x20
)

func readWireFrame(r io.Reader) (wireFrame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// encodeFrame encodes a frame; mask is set for a client's frames.
func encodeFrame(fin bool, rsv, op byte, payload []byte, mask bool) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if mask {
		m = 0x80
	}
	b := make([]byte, 0, 14+len(payload))
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, m|byte(n))
	case n <= 0xffff:
		b = append(b, b0, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := [4]byte{0x9b, 0x17, 0x3c, 0xe2}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// closedByFrame is the close frame that ended a stream.
type closedByFrame struct{ code int }

func (e *closedByFrame) Error() string { return fmt.Sprintf("close frame %d", e.code) }

// wireMessage is one data message as it crossed the wire.
type wireMessage struct {
	op         byte
	compressed bool // RSV1 on the first frame
	frames     []wireFrame
	payload    []byte // the frames' payloads, joined
}

// readWireMessage reads the next data message, skipping pings and pongs. A
// close frame gives a *closedByFrame error.
func readWireMessage(r io.Reader) (wireMessage, error) {
	var m wireMessage
	for {
		f, err := readWireFrame(r)
		if err != nil {
			return m, err
		}
		if f.op >= 8 {
			if f.op == opClose {
				code := CloseNoStatusReceived
				if len(f.payload) >= 2 {
					code = int(binary.BigEndian.Uint16(f.payload))
				}
				return m, &closedByFrame{code}
			}
			continue
		}
		if len(m.frames) == 0 {
			m.op = f.op
			m.compressed = f.rsv&wireRSV1 != 0
		}
		m.frames = append(m.frames, f)
		m.payload = append(m.payload, f.payload...)
		if f.fin {
			return m, nil
		}
	}
}

// readCloseCode reads frames until a close frame and returns its code.
func readCloseCode(r io.Reader) (int, error) {
	for {
		_, err := readWireMessage(r)
		var ce *closedByFrame
		if errors.As(err, &ce) {
			return ce.code, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// checkFraming checks the RFC 6455 and RFC 7692 rules our writer must
// follow for m: continuation frames after the first, RSV1 on the first frame
// only, masking on the client's frames only, and a compressed message's
// non-final fragments each ending with a complete sync flush.
func checkFraming(t *testing.T, m wireMessage, masked bool) {
	t.Helper()
	require.NotEmpty(t, m.frames)
	require.Contains(t, []byte{opText, opBinary}, m.op)
	for i, f := range m.frames {
		assert.Equal(t, masked, f.masked, "frame %d masking", i)
		if i == 0 {
			assert.Zero(t, f.rsv&^wireRSV1, "RSV2/RSV3 on the first frame")
			continue
		}
		assert.Equal(t, byte(opContinuation), f.op, "frame %d opcode", i)
		assert.Zero(t, f.rsv, "RSV bits on continuation frame %d", i)
	}
	if m.compressed {
		for i, f := range m.frames[:len(m.frames)-1] {
			assert.True(t, bytes.HasSuffix(f.payload, []byte{0, 0, 0xff, 0xff}), "non-final compressed fragment %d does not end with a sync flush", i)
		}
	}
}

// ---- a reference receiver ----------------------------------------------------

// referenceInflater inflates the compressed messages of one direction as RFC 7692 asks
// of a receiver, twice: with compress/flate (one stream across messages
// with context takeover, else a fresh one each), and with flatetest's
// Inflater,
// which also fails on any back-reference farther than the window, within a
// message or across messages, that compress/flate would follow, and on
// anything but the sync flush our writer ends every message with.
type referenceInflater struct {
	takeover bool
	ref      flatetest.Inflater
	src      bytes.Buffer // with takeover, the input of the one stream
	fr       io.ReadCloser
}

func newReferenceInflater(takeover bool, windowBits int) *referenceInflater {
	return &referenceInflater{takeover: takeover, ref: flatetest.Inflater{Window: 1 << windowBits, Takeover: takeover}}
}

// emptyFinalBlock is an empty final stored block: after a message's data and
// the restored sync flush it lets compress/flate end with io.EOF.
var emptyFinalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// syncFlushTail is the end of the sync flush that RFC 7692 removes from each
// message.
var syncFlushTail = []byte{0x00, 0x00, 0xff, 0xff}

func (z *referenceInflater) inflate(payload []byte) ([]byte, flatetest.Stats, error) {
	want, err := z.ref.Inflate(payload)
	st := z.ref.Stats
	if err != nil {
		return nil, st, fmt.Errorf("reference: %w", err)
	}

	in := make([]byte, 0, len(payload)+len(syncFlushTail)+len(emptyFinalBlock))
	in = append(append(in, payload...), syncFlushTail...)
	var got []byte
	if z.takeover {
		z.src.Write(in)
		if z.fr == nil {
			z.fr = stdflate.NewReader(&z.src)
		}
		// The stream goes on: read exactly this message's output.
		got = make([]byte, len(want))
		_, err = io.ReadFull(z.fr, got)
	} else {
		in = append(in, emptyFinalBlock...)
		if z.fr == nil {
			z.fr = stdflate.NewReader(bytes.NewReader(in))
		} else if err = z.fr.(stdflate.Resetter).Reset(bytes.NewReader(in), nil); err != nil {
			return nil, st, err
		}
		got, err = io.ReadAll(z.fr)
	}
	if err != nil {
		return nil, st, fmt.Errorf("compress/flate: %w", err)
	}
	if !bytes.Equal(got, want) {
		return nil, st, errors.New("compress/flate and the reference disagree")
	}
	return bytes.Clone(want), st, nil
}

// peerDeflater compresses messages as a peer does: a sync flush ends each
// message and its 00 00 ff ff is removed. With a 32 KiB window the
// compressor is compress/flate, one stdflate.Writer kept across messages with
// takeover. compress/flate cannot be held to a smaller window (and a
// dictionary of the last 2^bits bytes does not do it: a reference from
// the middle of a message may reach farther back into it than the window),
// so below 15 bits the compressor is the library's encoder, whose every
// message is audited against the window before it is sent.
type peerDeflater struct {
	takeover bool
	bits     int
	level    int
	buf      bytes.Buffer
	fw       *stdflate.Writer
	own      *flate.Encoder
	ref      *flatetest.Inflater // below 15 bits: the receiver's view
}

func newPeerDeflater(takeover bool, windowBits, level int) *peerDeflater {
	return &peerDeflater{takeover: takeover, bits: windowBits, level: level}
}

func (d *peerDeflater) compress(msg []byte) []byte {
	if d.bits < 15 {
		return d.compressOwn(msg)
	}
	d.buf.Reset()
	switch {
	case d.fw == nil:
		d.fw, _ = stdflate.NewWriter(&d.buf, d.level)
	case !d.takeover:
		d.fw.Reset(&d.buf)
	}
	d.fw.Write(msg)
	d.fw.Flush()
	out := d.buf.Bytes()
	if !bytes.HasSuffix(out, syncFlushTail) {
		panic("compress/flate: no sync flush")
	}
	return bytes.Clone(out[:len(out)-len(syncFlushTail)])
}

func (d *peerDeflater) compressOwn(msg []byte) []byte {
	if d.own == nil {
		d.own = flate.NewEncoder(d.bits, d.level, d.takeover)
		d.ref = &flatetest.Inflater{Window: 1 << d.bits, Takeover: d.takeover}
	}
	z := d.own.Compress(nil, msg)
	out, err := d.ref.Inflate(z)
	if err != nil {
		panic(fmt.Sprintf("the peer's own compressor oversteps the window: %v", err))
	}
	if !bytes.Equal(out, msg) {
		panic("the peer's own compressor is wrong")
	}
	return z
}

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

// ---- 1. the server's handshake ------------------------------------------------

func TestCompressHandshakeServer(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		disabled bool // EnableCompression false
		opts     CompressionOptions
		offer    []string // Sec-WebSocket-Extensions lines
		want     string   // the exact response value; "" for none
	}{
		{name: "no offer"},
		{name: "bare", offer: []string{pmd}, want: pmd},
		{name: "browser offer", offer: []string{pmd + "; client_max_window_bits"}, want: pmd},
		{name: "server_no_context_takeover", offer: []string{pmd + "; server_no_context_takeover"}, want: pmd + "; server_no_context_takeover"},
		{name: "client_no_context_takeover", offer: []string{pmd + "; client_no_context_takeover"}, want: pmd + "; client_no_context_takeover"},
		{name: "server_max_window_bits=10", offer: []string{pmd + "; server_max_window_bits=10"}, want: pmd + "; server_max_window_bits=10"},
		{name: "server_max_window_bits=8", offer: []string{pmd + "; server_max_window_bits=8"}, want: pmd + "; server_max_window_bits=8"},
		{name: "server_max_window_bits=15", offer: []string{pmd + "; server_max_window_bits=15"}, want: pmd + "; server_max_window_bits=15"},
		{name: "client_max_window_bits=8 hint", offer: []string{pmd + "; client_max_window_bits=8"}, want: pmd},
		{name: "client_max_window_bits=12 hint", offer: []string{pmd + "; client_max_window_bits=12"}, want: pmd},
		{name: "quoted value", offer: []string{pmd + `; server_max_window_bits="12"`}, want: pmd + "; server_max_window_bits=12"},
		{name: "every parameter", offer: []string{pmd + "; client_max_window_bits=12; server_max_window_bits=9; client_no_context_takeover; server_no_context_takeover"},
			want: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"},
		{name: "no spaces", offer: []string{pmd + ";server_no_context_takeover;server_max_window_bits=11"}, want: pmd + "; server_no_context_takeover; server_max_window_bits=11"},

		// The first acceptable offer wins; the others do not fail the
		// handshake.
		{name: "unknown parameter first", offer: []string{pmd + "; foo, " + pmd + "; server_max_window_bits=11"}, want: pmd + "; server_max_window_bits=11"},
		{name: "bad value first", offer: []string{pmd + "; server_max_window_bits=7, " + pmd + "; client_no_context_takeover"}, want: pmd + "; client_no_context_takeover"},
		{name: "first of two acceptable", offer: []string{pmd + "; server_no_context_takeover, " + pmd}, want: pmd + "; server_no_context_takeover"},
		{name: "other extension first", offer: []string{"x-webkit-deflate-frame, " + pmd + "; client_max_window_bits"}, want: pmd},
		{name: "second header line", offer: []string{pmd + "; server_max_window_bits=16", pmd + "; server_max_window_bits=10"}, want: pmd + "; server_max_window_bits=10"},
		{name: "malformed after a good offer", offer: []string{pmd + "; server_no_context_takeover, ;=;"}, want: pmd + "; server_no_context_takeover"},

		// Offers that are declined: the connection runs uncompressed.
		{name: "unknown parameter", offer: []string{pmd + "; foo"}},
		{name: "unknown parameter with value", offer: []string{pmd + "; foo=bar"}},
		{name: "duplicate flag", offer: []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}},
		{name: "duplicate window", offer: []string{pmd + "; server_max_window_bits=10; server_max_window_bits=10"}},
		{name: "duplicate client window", offer: []string{pmd + "; client_max_window_bits; client_max_window_bits=10"}},
		{name: "server_max_window_bits=7", offer: []string{pmd + "; server_max_window_bits=7"}},
		{name: "server_max_window_bits=16", offer: []string{pmd + "; server_max_window_bits=16"}},
		{name: "server_max_window_bits=abc", offer: []string{pmd + "; server_max_window_bits=abc"}},
		{name: "server_max_window_bits=08", offer: []string{pmd + "; server_max_window_bits=08"}},
		{name: "server_max_window_bits without value", offer: []string{pmd + "; server_max_window_bits"}},
		{name: "client_max_window_bits=7", offer: []string{pmd + "; client_max_window_bits=7"}},
		{name: "client_max_window_bits=16", offer: []string{pmd + "; client_max_window_bits=16"}},
		{name: "client_max_window_bits=abc", offer: []string{pmd + "; client_max_window_bits=abc"}},
		{name: "flag with value", offer: []string{pmd + "; client_no_context_takeover=1"}},
		{name: "names are case-sensitive", offer: []string{"Permessage-Deflate"}},
		{name: "other extension only", offer: []string{"x-webkit-deflate-frame"}},
		{name: "malformed", offer: []string{pmd + "; ="}},

		// The server's options.
		{name: "opts server_no_context_takeover", opts: CompressionOptions{ServerNoContextTakeover: true}, offer: []string{pmd}, want: pmd + "; server_no_context_takeover"},
		{name: "opts client_no_context_takeover", opts: CompressionOptions{ClientNoContextTakeover: true}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_no_context_takeover"},
		{name: "opts server window", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd}, want: pmd + "; server_max_window_bits=10"},
		{name: "opts server window, larger asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd + "; server_max_window_bits=12"}, want: pmd + "; server_max_window_bits=10"},
		{name: "opts server window, smaller asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd + "; server_max_window_bits=9"}, want: pmd + "; server_max_window_bits=9"},
		{name: "opts server window 8", opts: CompressionOptions{ServerMaxWindowBits: 8}, offer: []string{pmd}, want: pmd + "; server_max_window_bits=8"},
		{name: "opts client window", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_max_window_bits=10"},
		{name: "opts client window, not allowed by the offer", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd}, want: pmd},
		{name: "opts client window, offer already smaller", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits=9"}, want: pmd},
		{name: "opts client window, offer larger", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits=12"}, want: pmd + "; client_max_window_bits=10"},
		{name: "opts client window 8 asks for 9", opts: CompressionOptions{ClientMaxWindowBits: 8}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_max_window_bits=9"},
		{name: "opts everything", opts: CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 11, ClientMaxWindowBits: 12},
			offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12"},
		{name: "opts level and threshold", opts: CompressionOptions{Level: 9, Threshold: -1}, offer: []string{pmd}, want: pmd},
		{name: "opts declined offer", opts: CompressionOptions{ServerNoContextTakeover: true}, offer: []string{pmd + "; bogus"}},

		{name: "compression disabled", disabled: true, offer: []string{pmd + "; client_max_window_bits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upgraded := make(chan error, 1)
			extensions := make(chan string, 1)
			u := &Upgrader{EnableCompression: !tc.disabled, Compression: tc.opts}
			srv := upgradeServer(t, u, func(c *Conn, err error) {
				if c != nil {
					extensions <- c.Extensions()
				}
				upgraded <- err
				if err == nil {
					echoWhole(c)
				}
			})
			conn, br, resp := dialRawUpgrade(t, srv, tc.offer...)
			require.NoError(t, <-upgraded, "an offer never fails the upgrade")
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			got := resp.Header.Values("Sec-Websocket-Extensions")
			if tc.want == "" {
				require.Empty(t, got)
			} else {
				require.Equal(t, []string{tc.want}, got)
			}
			assert.Equal(t, tc.want, <-extensions, "the server Conn's Extensions")

			// Both ends must now agree on the parameters: two copies of a
			// message go each way, compressed as negotiated.
			msg := chatText(rand.New(rand.NewPCG(7, 7)), 600)
			var p negotiatedParams
			if tc.want != "" {
				p = parseNegotiated(t, tc.want)
			}
			// The raw client keeps its history only where the window it
			// may use holds the whole earlier message: a window it
			// promised in its offer binds it too.
			hinted := strings.Contains(strings.Join(tc.offer, ","), "client_max_window_bits=")
			out := newPeerDeflater(p.clientTakeover && p.clientBits == 15 && !hinted, 15, stdflate.BestCompression)
			in := newReferenceInflater(p.serverTakeover, p.serverBits)
			for i := 0; i < 2; i++ {
				if tc.want == "" {
					_, err := conn.Write(encodeFrame(true, 0, opText, msg, true))
					require.NoError(t, err)
				} else {
					_, err := conn.Write(encodeFrame(true, wireRSV1, opText, out.compress(msg), true))
					require.NoError(t, err)
				}
				m, err := readWireMessage(br)
				require.NoError(t, err)
				checkFraming(t, m, false)
				require.Equal(t, tc.want != "", m.compressed, "RSV1 on the echo")
				got := m.payload
				if m.compressed {
					got, _, err = in.inflate(m.payload)
					require.NoError(t, err, "echo %d", i)
				}
				require.Equal(t, string(msg), string(got))
			}
		})
	}
}

func TestCompressHandshakeServerBadOptions(t *testing.T) {
	for _, opts := range []CompressionOptions{
		{ServerMaxWindowBits: 16},
		{ServerMaxWindowBits: 7},
		{ServerMaxWindowBits: -1},
		{ClientMaxWindowBits: 16},
		{ClientMaxWindowBits: 1},
		{Level: 10},
		{Level: -3},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			upgraded := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, func(c *Conn, err error) {
				upgraded <- err
			})
			_, _, resp := dialRawUpgrade(t, srv, permessageDeflate)
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			err := <-upgraded
			var he HandshakeError
			require.ErrorAs(t, err, &he)
			require.ErrorContains(t, err, "CompressionOptions")

			// The options are checked whether or not the client offers
			// compression.
			_, _, resp = dialRawUpgrade(t, srv)
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			require.Error(t, <-upgraded)
		})
	}
}

// ---- 2. the client's handshake ------------------------------------------------

// rawServerResult is what a raw server saw of one client.
type rawServerResult struct {
	offer []string
	err   error
	// Valid responses: the client's messages, inflated, and whether each
	// was compressed.
	got        [][]byte
	compressed []bool
	// Invalid responses: what reading after the response met.
	afterErr error
}

// serveRawClient answers one client on ln with a 101 carrying ext. For a
// valid response it then reads the client's n messages (inflating them as
// p says) and sends back replies, compressed when compress is set; for an
// invalid one it reads until the client closes.
func serveRawClient(ln net.Listener, ext []string, valid bool, p negotiatedParams, n int, replies [][]byte, compress bool) <-chan rawServerResult {
	done := make(chan rawServerResult, 1)
	go func() {
		var res rawServerResult
		defer func() { done <- res }()
		conn, br, req, err := acceptRawUpgrade(ln)
		if err != nil {
			res.err = err
			return
		}
		defer conn.Close()
		res.offer = req.Header.Values("Sec-Websocket-Extensions")
		if res.err = respond101(conn, req, ext...); res.err != nil {
			return
		}
		if !valid {
			_, res.afterErr = br.ReadByte()
			return
		}
		ref := newReferenceInflater(p.clientTakeover, p.clientBits)
		for i := 0; i < n; i++ {
			m, err := readWireMessage(br)
			if err != nil {
				res.err = err
				return
			}
			if !m.frames[0].masked || m.frames[0].rsv&^wireRSV1 != 0 {
				res.err = fmt.Errorf("message %d: bad first frame %+v", i, m.frames[0])
				return
			}
			data := m.payload
			if m.compressed {
				if data, _, err = ref.inflate(m.payload); err != nil {
					res.err = fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
			res.got = append(res.got, data)
			res.compressed = append(res.compressed, m.compressed)
		}
		out := newPeerDeflater(p.serverTakeover && p.serverBits == 15, 15, stdflate.BestCompression)
		for _, r := range replies {
			frame := encodeFrame(true, 0, opBinary, r, false)
			if compress {
				frame = encodeFrame(true, wireRSV1, opBinary, out.compress(r), false)
			}
			if _, res.err = conn.Write(frame); res.err != nil {
				return
			}
		}
		// Wait for the client to close.
		_, err = readCloseCode(br)
		if err != nil && !errors.Is(err, io.EOF) {
			res.err = err
		}
	}()
	return done
}

func TestCompressDialOffer(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		disabled bool
		opts     CompressionOptions
		offer    string // "" for none
		response string
	}{
		{name: "default", offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "server_no_context_takeover", opts: CompressionOptions{ServerNoContextTakeover: true},
			offer: pmd + "; server_no_context_takeover; client_max_window_bits", response: pmd + "; server_no_context_takeover"},
		{name: "client_no_context_takeover", opts: CompressionOptions{ClientNoContextTakeover: true},
			offer: pmd + "; client_no_context_takeover; client_max_window_bits", response: pmd},
		{name: "server window", opts: CompressionOptions{ServerMaxWindowBits: 10},
			offer: pmd + "; server_max_window_bits=10; client_max_window_bits", response: pmd + "; server_max_window_bits=10"},
		{name: "server window 15 is the default", opts: CompressionOptions{ServerMaxWindowBits: 15},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "client window", opts: CompressionOptions{ClientMaxWindowBits: 9},
			offer: pmd + "; client_max_window_bits=9", response: pmd},
		{name: "client window 15 is the default", opts: CompressionOptions{ClientMaxWindowBits: 15},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "level and threshold are not offered", opts: CompressionOptions{Level: 9, Threshold: -1},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "everything", opts: CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 12, ClientMaxWindowBits: 11},
			offer:    pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"},
		{name: "disabled", disabled: true, opts: CompressionOptions{ServerNoContextTakeover: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			var ext []string
			if tc.response != "" {
				ext = []string{tc.response}
			}
			done := serveRawClient(ln, ext, true, negotiatedParams{}, 0, nil, false)
			d := &Dialer{EnableCompression: !tc.disabled, Compression: tc.opts}
			c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
			require.NoError(t, err)
			require.NoError(t, c.Close())
			res := <-done
			require.NoError(t, res.err)
			if tc.offer == "" {
				require.Empty(t, res.offer)
			} else {
				require.Equal(t, []string{tc.offer}, res.offer)
			}
		})
	}
}

func TestCompressDialBadOptions(t *testing.T) {
	for _, opts := range []CompressionOptions{
		{ServerMaxWindowBits: 16},
		{ServerMaxWindowBits: 7},
		{ClientMaxWindowBits: 16},
		{ClientMaxWindowBits: -1},
		{Level: 10},
		{Level: -3},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			// Nothing listens there: the options fail the dial before
			// it connects.
			ln := listenLoopback(t)
			addr := ln.Addr().String()
			ln.Close()
			d := &Dialer{EnableCompression: true, Compression: opts}
			c, resp, err := d.Dial("ws://"+addr+"/", nil)
			require.Nil(t, c)
			require.Nil(t, resp)
			require.ErrorContains(t, err, "CompressionOptions")
		})
	}
}

func TestCompressDialResponse(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		opts     CompressionOptions
		response []string // Sec-WebSocket-Extensions lines of the 101
		valid    bool
		p        negotiatedParams // valid responses: what each side must use
	}{
		{name: "declined", response: nil, valid: true},
		{name: "bare", response: []string{pmd}, valid: true, p: negotiatedParams{true, true, 15, 15}},
		{name: "server_no_context_takeover unasked", response: []string{pmd + "; server_no_context_takeover"}, valid: true, p: negotiatedParams{false, true, 15, 15}},
		{name: "client_no_context_takeover demanded", response: []string{pmd + "; client_no_context_takeover"}, valid: true, p: negotiatedParams{true, false, 15, 15}},
		{name: "client window demanded", response: []string{pmd + "; client_max_window_bits=9"}, valid: true, p: negotiatedParams{true, true, 15, 9}},
		{name: "client window 8 demanded", response: []string{pmd + "; client_max_window_bits=8"}, valid: true, p: negotiatedParams{true, true, 15, 8}},
		{name: "server window unasked", response: []string{pmd + "; server_max_window_bits=10"}, valid: true, p: negotiatedParams{true, true, 10, 15}},
		{name: "client promise kept without echo", opts: CompressionOptions{ClientNoContextTakeover: true}, response: []string{pmd}, valid: true, p: negotiatedParams{true, false, 15, 15}},
		{name: "client window offered", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd}, valid: true, p: negotiatedParams{true, true, 15, 10}},
		{name: "client window lowered", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd + "; client_max_window_bits=9"}, valid: true, p: negotiatedParams{true, true, 15, 9}},
		{name: "requests granted", opts: CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 10},
			response: []string{pmd + "; server_no_context_takeover; server_max_window_bits=9"}, valid: true, p: negotiatedParams{false, true, 9, 15}},
		{name: "quoted value", response: []string{pmd + `; client_max_window_bits="11"`}, valid: true, p: negotiatedParams{true, true, 15, 11}},

		{name: "unknown parameter", response: []string{pmd + "; foo"}},
		{name: "unknown parameter with value", response: []string{pmd + "; foo=1"}},
		{name: "duplicate parameter", response: []string{pmd + "; client_no_context_takeover; client_no_context_takeover"}},
		{name: "flag with value", response: []string{pmd + "; server_no_context_takeover=1"}},
		{name: "client window without value", response: []string{pmd + "; client_max_window_bits"}},
		{name: "client window 16", response: []string{pmd + "; client_max_window_bits=16"}},
		{name: "client window above the offer", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd + "; client_max_window_bits=11"}},
		{name: "server window 7", response: []string{pmd + "; server_max_window_bits=7"}},
		{name: "server window abc", response: []string{pmd + "; server_max_window_bits=abc"}},
		{name: "server window larger than asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, response: []string{pmd + "; server_max_window_bits=11"}},
		{name: "server window request ignored", opts: CompressionOptions{ServerMaxWindowBits: 10}, response: []string{pmd}},
		{name: "server_no_context_takeover not granted", opts: CompressionOptions{ServerNoContextTakeover: true}, response: []string{pmd + "; client_no_context_takeover"}},
		{name: "two elements", response: []string{pmd + ", " + pmd}},
		{name: "two header lines", response: []string{pmd, pmd + "; server_no_context_takeover"}},
		{name: "another extension", response: []string{"x-webkit-deflate-frame"}},
		{name: "another extension too", response: []string{pmd + ", x-foo"}},
		{name: "names are case-sensitive", response: []string{"Permessage-Deflate"}},
		{name: "malformed", response: []string{pmd + "; ="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			msgs := [][]byte{chatText(rand.New(rand.NewPCG(3, 3)), 700), nil, []byte("short")}
			msgs[1] = msgs[0]
			replies := [][]byte{bytes.Repeat([]byte("reply "), 100), bytes.Repeat([]byte("reply "), 100)}
			done := serveRawClient(ln, tc.response, tc.valid, tc.p, len(msgs), replies, tc.response != nil)
			before := libraryGoroutines()
			d := &Dialer{EnableCompression: true, Compression: tc.opts}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, resp, err := d.DialContext(ctx, "ws://"+ln.Addr().String()+"/", nil)
			if !tc.valid {
				require.ErrorIs(t, err, errInvalidCompression)
				require.Nil(t, c)
				require.NotNil(t, resp, "the response comes with the error")
				require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
				require.Equal(t, tc.response, resp.Header.Values("Sec-Websocket-Extensions"))
				res := <-done
				require.NoError(t, res.err)
				require.ErrorIs(t, res.afterErr, io.EOF, "the client must close the connection")
				require.LessOrEqual(t, libraryGoroutines(), before, "a goroutine outlived DialContext")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, strings.Join(tc.response, ", "), c.Extensions(), "the client Conn's Extensions")
			for _, m := range msgs {
				require.NoError(t, c.WriteMessage(BinaryMessage, m))
			}
			for _, r := range replies {
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, r, p)
			}
			require.NoError(t, c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait)))
			res := <-done
			require.NoError(t, res.err)
			require.Equal(t, msgs, res.got)
			negotiated := tc.response != nil
			require.Equal(t, []bool{negotiated, negotiated, false}, res.compressed, "RSV1 where compressed")
		})
	}
}

// ---- 3. long runs against the reference ---------------------------------------

// chatCorpusSize is the number of messages of the long runs.
const chatCorpusSize = 10000

// TestCompressClientAgainstReference has our client send a long corpus with
// context takeover to a raw server that checks every message against the
// reference receiver: RSV1 exactly on the messages at or above the
// threshold, and every back-reference within the negotiated window.
func TestCompressClientAgainstReference(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     CompressionOptions
		wbuf     int // the write buffer: NextWriter messages above it are fragmented
		response string
		bits     int
		n        int
	}{
		{"window 15", CompressionOptions{}, 0, permessageDeflate, 15, chatCorpusSize},
		// Fewer messages: under the race detector the encoder's fixed cost
		// per message dominates.
		{"window 9 offered", CompressionOptions{ClientMaxWindowBits: 9}, 1024, permessageDeflate, 9, chatCorpusSize / 4},
		{"window 8 demanded", CompressionOptions{Level: 6}, 512, permessageDeflate + "; client_max_window_bits=8", 8, chatCorpusSize / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := chatCorpus(1, tc.n)
			ln := listenLoopback(t)
			stop := make(chan struct{})
			written := make(chan error, 1)
			go func() {
				written <- func() error {
					d := &Dialer{EnableCompression: true, Compression: tc.opts, WriteBufferSize: tc.wbuf}
					c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
					if err != nil {
						return err
					}
					defer c.Close()
					for i, m := range msgs {
						if i%5 == 4 || len(m.data) > 1000 {
							// In three writes: below the write buffer a
							// NextWriter message is one frame, above it
							// compressed fragments.
							// err is the loop's: w.Close's error below
							// must reach the check after the if.
							var w io.WriteCloser
							if w, err = c.NextWriter(m.typ); err != nil {
								return err
							}
							third := len(m.data) / 3
							for _, part := range [][]byte{m.data[:third], m.data[third : 2*third], m.data[2*third:]} {
								if _, err := w.Write(part); err != nil {
									return err
								}
							}
							err = w.Close()
						} else {
							err = c.WriteMessage(m.typ, m.data)
						}
						if err != nil {
							return fmt.Errorf("message %d: %w", i, err)
						}
					}
					<-stop
					return nil
				}()
			}()
			t.Cleanup(func() {
				close(stop)
				assert.NoError(t, <-written)
			})

			conn, br, req, err := acceptRawUpgrade(ln)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(4*testWait)))
			require.NoError(t, respond101(conn, req, tc.response))
			ref := newReferenceInflater(true, tc.bits)
			var fragmented, compressed int
			var maxDist int
			for i, want := range msgs {
				m, err := readWireMessage(br)
				require.NoError(t, err, "message %d", i)
				checkFraming(t, m, true)
				require.Equal(t, want.typ, int(m.op), "message %d", i)
				require.Equal(t, len(want.data) >= defaultCompressionThreshold, m.compressed, "RSV1 on message %d of %d bytes", i, len(want.data))
				got := m.payload
				if m.compressed {
					compressed++
					var st flatetest.Stats
					got, st, err = ref.inflate(m.payload)
					require.NoError(t, err, "message %d", i)
					maxDist = max(maxDist, st.MaxDist)
				}
				if len(m.frames) > 1 {
					fragmented++
				}
				require.True(t, bytes.Equal(want.data, got), "message %d differs", i)
			}
			// The corpus must have exercised what it is meant to.
			require.Greater(t, fragmented, tc.n/200)
			require.Greater(t, compressed, tc.n/2)
			require.Greater(t, maxDist, 1<<tc.bits/2, "the window was hardly used")
		})
	}
}

// TestCompressServerAgainstReference has a raw client compress a long
// corpus with context takeover (with compress/flate where the window is
// 32 KiB), some messages fragmented with pings between the fragments, some
// left uncompressed, and our server read every one of them back, in all
// the ways a message can be read.
func TestCompressServerAgainstReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  CompressionOptions
		offer string
		bits  int // the window the raw client compresses with
		n     int
	}{
		// One stdflate.Writer over the whole run.
		{"window 15", CompressionOptions{}, permessageDeflate + "; client_max_window_bits", 15, chatCorpusSize},
		// compress/flate cannot keep to a smaller window: the library's
		// encoder, audited message by message (see peerDeflater), with
		// fewer messages, as under the race detector its fixed cost per
		// message dominates.
		{"window 9 asked by the server", CompressionOptions{ClientMaxWindowBits: 9}, permessageDeflate + "; client_max_window_bits", 9, chatCorpusSize / 5},
		{"window 10 offered by the client", CompressionOptions{}, permessageDeflate + "; client_max_window_bits=10", 10, chatCorpusSize / 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := chatCorpus(2, tc.n)
			results := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: tc.opts}, func(c *Conn, err error) {
				results <- func() error {
					if err != nil {
						return err
					}
					buf := make([]byte, 100)
					for i, want := range msgs {
						var typ int
						var got []byte
						switch i % 4 {
						case 0, 1:
							typ, got, err = c.ReadMessage()
						case 2:
							var r io.Reader
							if typ, r, err = c.NextReader(); err == nil {
								got, err = io.ReadAll(r)
							}
						case 3:
							// Abandoned after a read: the rest must
							// still be inflated into the window.
							var r io.Reader
							if typ, r, err = c.NextReader(); err == nil {
								var n int
								n, err = io.ReadFull(r, buf[:min(len(want.data), len(buf))])
								got = buf[:n]
							}
						}
						switch {
						case err != nil:
							return fmt.Errorf("message %d: %w", i, err)
						case typ != want.typ:
							return fmt.Errorf("message %d: type %d", i, typ)
						case i%4 == 3 && !bytes.HasPrefix(want.data, got):
							return fmt.Errorf("message %d: read % x", i, got)
						case i%4 != 3 && !bytes.Equal(want.data, got):
							return fmt.Errorf("message %d differs", i)
						}
					}
					return nil
				}()
			})
			conn, br, resp := dialRawUpgrade(t, srv, tc.offer)
			require.NoError(t, conn.SetDeadline(time.Now().Add(4*testWait)))
			p := parseNegotiated(t, resp.Header.Get("Sec-Websocket-Extensions"))
			require.True(t, p.clientTakeover)
			require.GreaterOrEqual(t, p.clientBits, tc.bits)
			// The server answers pings; drain its pongs so that it never
			// blocks on them.
			go io.Copy(io.Discard, br)

			out := newPeerDeflater(true, tc.bits, stdflate.DefaultCompression)
			var stream []byte
			for i, m := range msgs {
				if i%11 == 5 {
					stream = append(stream, encodeFrame(true, 0, byte(m.typ), m.data, true)...)
				} else {
					z := out.compress(m.data)
					if i%7 == 3 {
						// Fragmented, with a ping inside.
						h := len(z) / 2
						stream = append(stream, encodeFrame(false, wireRSV1, byte(m.typ), z[:h], true)...)
						stream = append(stream, encodeFrame(true, 0, opPing, []byte("p"), true)...)
						stream = append(stream, encodeFrame(false, 0, opContinuation, z[h:], true)...)
						stream = append(stream, encodeFrame(true, 0, opContinuation, nil, true)...)
					} else {
						stream = append(stream, encodeFrame(true, wireRSV1, byte(m.typ), z, true)...)
					}
				}
				if len(stream) > 64<<10 || i == len(msgs)-1 {
					if _, err := conn.Write(stream); err != nil {
						require.NoError(t, <-results, "the server failed")
						require.NoError(t, err)
					}
					stream = stream[:0]
				}
			}
			require.NoError(t, <-results)
		})
	}
}

// ---- 4. our server and our client ---------------------------------------------

// checkTappedDirection decodes the messages one direction of a tapped
// connection carried and compares them with want: RSV1 exactly on the
// messages of at least threshold bytes (all of them for a negative one),
// every back-reference within the window, no history used without
// takeover. It returns the wire messages and their statistics.
func checkTappedDirection(t *testing.T, tap *trafficTap, fromServer, takeover bool, bits, threshold int, want []chatMsg) ([]wireMessage, []flatetest.Stats) {
	t.Helper()
	wire := tap.messages(t, fromServer)
	require.Len(t, wire, len(want), "messages from the server: %v", fromServer)
	ref := newReferenceInflater(takeover, bits)
	stats := make([]flatetest.Stats, len(want))
	for i, m := range wire {
		require.Equal(t, want[i].typ, int(m.op), "message %d", i)
		require.Equal(t, threshold < 0 || len(want[i].data) >= threshold, m.compressed, "RSV1 on message %d of %d bytes (from the server: %v)", i, len(want[i].data), fromServer)
		got := m.payload
		if m.compressed {
			var err error
			got, stats[i], err = ref.inflate(m.payload)
			require.NoError(t, err, "message %d (from the server: %v)", i, fromServer)
		}
		require.True(t, bytes.Equal(want[i].data, got), "message %d differs (from the server: %v)", i, fromServer)
	}
	return wire, stats
}

// sendAndEcho writes msgs on c (the i-th through NextWriter in pieces
// when streamed(i)), and reads each echo back.
func sendAndEcho(t *testing.T, c *Conn, msgs []chatMsg, streamed func(i int) bool) {
	t.Helper()
	for i, m := range msgs {
		if streamed != nil && streamed(i) {
			w, err := c.NextWriter(m.typ)
			require.NoError(t, err)
			for p := m.data; len(p) > 0; {
				k := min(len(p), 1000)
				_, err := w.Write(p[:k])
				require.NoError(t, err)
				p = p[k:]
			}
			require.NoError(t, w.Close())
		} else {
			require.NoError(t, c.WriteMessage(m.typ, m.data))
		}
		typ, p, err := c.ReadMessage()
		require.NoError(t, err, "echo %d", i)
		require.Equal(t, m.typ, typ)
		require.True(t, bytes.Equal(m.data, p), "echo %d differs", i)
	}
}

// echoTestMessages: a compressible message twice (with takeover the second
// refers to the first), incompressible binary, one below the threshold,
// one larger than the write buffer, an empty one, the large one again.
func echoTestMessages() []chatMsg {
	rng := rand.New(rand.NewPCG(11, 11))
	text := chatText(rng, 700)
	large := chatText(rng, 6000)
	return []chatMsg{
		{TextMessage, text},
		{TextMessage, text},
		{BinaryMessage, randomBytes(rng, 300)},
		{TextMessage, []byte("below threshold")},
		{TextMessage, large},
		{BinaryMessage, []byte{}},
		{TextMessage, large},
	}
}

func TestCompressEchoMatrix(t *testing.T) {
	msgs := echoTestMessages()
	for _, takeover := range []bool{true, false} {
		for _, bits := range []int{8, 9, 12, 15} {
			for _, level := range []int{-2, 0, 1, 6, 9} {
				t.Run(fmt.Sprintf("takeover=%v/bits=%d/level=%d", takeover, bits, level), func(t *testing.T) {
					opts := CompressionOptions{
						ServerNoContextTakeover: !takeover,
						ClientNoContextTakeover: !takeover,
						ServerMaxWindowBits:     bits,
						ClientMaxWindowBits:     bits,
						Level:                   level, // 0: the default, then set below
					}
					levelSet := make(chan struct{})
					srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, func(c *Conn, err error) {
						if err == nil && level == 0 {
							err = c.SetCompressionLevel(0)
						}
						close(levelSet)
						if err == nil {
							echoStreamed(c)
						}
					})
					c, tap, resp := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts})
					<-levelSet
					if level == 0 {
						require.NoError(t, c.SetCompressionLevel(0))
					}
					p := parseNegotiated(t, resp.Header.Get("Sec-Websocket-Extensions"))
					require.Equal(t, takeover, p.serverTakeover)
					require.Equal(t, takeover, p.clientTakeover)
					if bits < 15 {
						require.Equal(t, bits, p.serverBits)
					}
					sendAndEcho(t, c, msgs, func(i int) bool { return i == 4 })
					require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))

					for _, fromServer := range []bool{false, true} {
						wire, stats := checkTappedDirection(t, tap, fromServer, takeover, bits, defaultCompressionThreshold, msgs)
						for i, st := range stats {
							if !wire[i].compressed {
								continue
							}
							switch level {
							case -2:
								assert.Zero(t, st.Matches, "message %d: a match at HuffmanOnly", i)
							case 0:
								assert.Zero(t, st.Blocks[1]+st.Blocks[2], "message %d: a Huffman block at level 0", i)
							}
						}
						if takeover && bits >= 12 && level > 0 {
							// The repeat refers back to the first copy.
							assert.Less(t, len(wire[1].payload), len(wire[0].payload)/4, "takeover unused")
							if bits == 15 {
								assert.Less(t, len(wire[6].payload), len(wire[4].payload)/4, "takeover unused")
							}
						}
						if !fromServer {
							assert.Greater(t, len(wire[4].frames), 1, "the streamed message is fragmented")
						}
					}
				})
			}
		}
	}
}

func TestCompressStreamLarge(t *testing.T) {
	// Messages far larger than the write buffers, streamed both ways: the
	// client writes in pieces through NextWriter, the server relays with
	// io.Copy from NextReader to NextWriter. The second message repeats
	// the first, within the window, so with takeover it refers back
	// across fragments.
	rng := rand.New(rand.NewPCG(5, 5))
	text := chatText(rng, 20<<10)
	msgs := []chatMsg{{TextMessage, text}, {TextMessage, text}, {TextMessage, chatText(rng, 200<<10)}, {BinaryMessage, randomBytes(rng, 50<<10)}}
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			opts := CompressionOptions{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts, WriteBufferSize: 2048}, echoOnUpgrade(echoStreamed))
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts, WriteBufferSize: 4096})
			sendAndEcho(t, c, msgs, func(int) bool { return true })
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			for _, fromServer := range []bool{false, true} {
				wire, _ := checkTappedDirection(t, tap, fromServer, takeover, 15, defaultCompressionThreshold, msgs)
				for i, m := range wire {
					if fromServer {
						// The relay's ReadFrom grows its buffer (doubling,
						// up to maxStreamFrame) rather than send a fragment
						// per write buffer, so these go out whole.
						assert.Len(t, m.frames, 1+len(msgs[i].data)/maxStreamFrame, "message %d from the server", i)
						continue
					}
					assert.Greater(t, len(m.frames), 1, "message %d is streamed in fragments from the client", i)
				}
				if takeover {
					assert.Less(t, len(wire[1].payload), len(wire[0].payload)/2, "takeover unused (from the server: %v)", fromServer)
				}
			}
		})
	}
}

func TestCompressPrepared(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := chatText(rng, 2000)
	pm, err := NewPreparedMessage(TextMessage, data)
	require.NoError(t, err)
	small, err := NewPreparedMessage(BinaryMessage, []byte("short, sent as it is"))
	require.NoError(t, err)
	other := chatText(rng, 500)
	want := []chatMsg{{TextMessage, data}, {TextMessage, data}, {BinaryMessage, []byte("short, sent as it is")}, {TextMessage, other}, {TextMessage, data}}

	type server struct {
		name     string
		opts     CompressionOptions
		disabled bool
		level0   bool // SetCompressionLevel(0) before the last message
	}
	servers := []server{
		{name: "takeover", opts: CompressionOptions{}},
		{name: "no takeover a", opts: CompressionOptions{ServerNoContextTakeover: true}},
		{name: "no takeover b", opts: CompressionOptions{ServerNoContextTakeover: true}},
		{name: "no takeover, window 9, level 9", opts: CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 9, Level: 9}},
		{name: "no takeover, level changed", opts: CompressionOptions{ServerNoContextTakeover: true}, level0: true},
		{name: "not negotiated", disabled: true},
	}
	// Every server writes once all clients are connected, so that the
	// prepared message is used concurrently.
	start := make(chan struct{})
	clients := make([]*Conn, len(servers))
	taps := make([]*trafficTap, len(servers))
	for i, s := range servers {
		s := s
		srv := upgradeServer(t, &Upgrader{EnableCompression: !s.disabled, Compression: s.opts}, func(c *Conn, err error) {
			if err != nil {
				return
			}
			<-start
			for i, m := range []*PreparedMessage{pm, pm, small} {
				if err := c.WritePreparedMessage(m); err != nil {
					c.WriteMessage(TextMessage, []byte(fmt.Sprintf("prepared %d: %v", i, err)))
					return
				}
			}
			c.WriteMessage(TextMessage, other)
			if s.level0 {
				c.SetCompressionLevel(0)
			}
			c.WritePreparedMessage(pm)
			echoStreamed(c)
		})
		clients[i], taps[i], _ = dialTapped(t, srv, &Dialer{EnableCompression: true})
	}
	close(start)
	for i, s := range servers {
		for j, w := range want {
			typ, p, err := clients[i].ReadMessage()
			require.NoError(t, err, "%s: message %d", s.name, j)
			require.Equal(t, w.typ, typ, "%s: message %d", s.name, j)
			require.True(t, bytes.Equal(w.data, p), "%s: message %d is %.60q", s.name, j, p)
		}
		require.NoError(t, clients[i].CloseGracefully(CloseNormalClosure, "", testWait))
	}

	wires := make([][]wireMessage, len(servers))
	for i, s := range servers {
		threshold := defaultCompressionThreshold
		if s.disabled {
			threshold = 1 << 30
		}
		bits := 15
		if s.opts.ServerMaxWindowBits != 0 {
			bits = s.opts.ServerMaxWindowBits
		}
		var stats []flatetest.Stats
		wires[i], stats = checkTappedDirection(t, taps[i], true, !s.opts.ServerNoContextTakeover, bits, threshold, want)
		if s.level0 {
			assert.Zero(t, stats[4].Blocks[1]+stats[4].Blocks[2], "%s: level 0 not applied to the prepared message", s.name)
		}
	}
	// One compression serves the servers that share level and
	// window: their frames are the same bytes.
	for _, w := range wires[1:3] {
		for _, j := range []int{0, 1, 4} {
			assert.Equal(t, wires[1][0].payload, w[j].payload)
		}
	}
	for _, j := range []int{0, 1} {
		assert.Equal(t, wires[1][0].payload, wires[4][j].payload)
	}
	assert.NotEqual(t, wires[3][0].payload, wires[1][0].payload, "the cache must tell level and window apart")
	assert.NotEqual(t, wires[4][4].payload, wires[4][0].payload, "the cache must tell levels apart")
	// With takeover each connection compresses on its own: the
	// second copy refers to the first.
	assert.Less(t, len(wires[0][1].payload), len(wires[0][0].payload)/4)
}

func TestCompressPreparedClient(t *testing.T) {
	data := chatText(rand.New(rand.NewPCG(13, 13)), 2000)
	pm, err := NewPreparedMessage(TextMessage, data)
	require.NoError(t, err)
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, echoOnUpgrade(echoStreamed))
	for _, takeover := range []bool{true, false} {
		c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: CompressionOptions{ClientNoContextTakeover: !takeover}})
		for i := 0; i < 3; i++ {
			require.NoError(t, c.WritePreparedMessage(pm))
			_, p, err := c.ReadMessage()
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, p))
		}
		require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
		want := []chatMsg{{TextMessage, data}, {TextMessage, data}, {TextMessage, data}}
		wire, _ := checkTappedDirection(t, tap, false, takeover, 15, defaultCompressionThreshold, want)
		if takeover {
			assert.Less(t, len(wire[1].payload), len(wire[0].payload)/4)
		}
		checkTappedDirection(t, tap, true, true, 15, defaultCompressionThreshold, want)
	}
}

func TestCompressEnableWriteCompression(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	text := chatText(rng, 800)
	enabled := []bool{true, false, true, true, false, true}
	msgs := make([]chatMsg, len(enabled))
	for i := range msgs {
		msgs[i] = chatMsg{TextMessage, text}
	}
	for _, negotiated := range []bool{true, false} {
		t.Run(fmt.Sprintf("negotiated=%v", negotiated), func(t *testing.T) {
			// The server switches too, in its own pattern.
			srv := upgradeServer(t, &Upgrader{EnableCompression: negotiated}, func(c *Conn, err error) {
				for i := 0; err == nil; i++ {
					c.EnableWriteCompression(i%3 != 1)
					var typ int
					var p []byte
					if typ, p, err = c.ReadMessage(); err == nil {
						err = c.WriteMessage(typ, p)
					}
				}
			})
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
			for i, m := range msgs {
				c.EnableWriteCompression(enabled[i])
				require.NoError(t, c.WriteMessage(m.typ, m.data))
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.True(t, bytes.Equal(m.data, p), "echo %d", i)
			}
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			for _, fromServer := range []bool{false, true} {
				wire := tap.messages(t, fromServer)
				require.Len(t, wire, len(msgs))
				// Uncompressed messages stay out of the history: the
				// reference inflates only the compressed ones.
				ref := newReferenceInflater(true, 15)
				for i, m := range wire {
					want := negotiated && enabled[i]
					if fromServer {
						want = negotiated && i%3 != 1
					}
					require.Equal(t, want, m.compressed, "RSV1 on message %d (from the server: %v)", i, fromServer)
					got := m.payload
					if m.compressed {
						var err error
						got, _, err = ref.inflate(m.payload)
						require.NoError(t, err)
					}
					require.True(t, bytes.Equal(text, got))
				}
			}
		})
	}
}

func TestCompressSetCompressionLevel(t *testing.T) {
	levels := []int{1, 9, 0, -2, 6, 2, -1}
	msg := chatText(rand.New(rand.NewPCG(19, 19)), 3000)
	msgs := make([]chatMsg, len(levels))
	for i := range msgs {
		msgs[i] = chatMsg{TextMessage, msg}
	}
	srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: CompressionOptions{ServerNoContextTakeover: true}}, echoOnUpgrade(echoWhole))
	c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
	for _, bad := range []int{-3, 10, 100} {
		require.Error(t, c.SetCompressionLevel(bad))
	}
	for i, level := range levels {
		require.NoError(t, c.SetCompressionLevel(level))
		require.NoError(t, c.WriteMessage(TextMessage, msg))
		_, p, err := c.ReadMessage()
		require.NoError(t, err)
		require.True(t, bytes.Equal(msg, p), "echo %d", i)
	}
	require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
	wire, stats := checkTappedDirection(t, tap, false, true, 15, defaultCompressionThreshold, msgs)
	for i, level := range levels {
		st := stats[i]
		switch level {
		case 0:
			assert.Zero(t, st.Blocks[1]+st.Blocks[2], "level 0 uses stored blocks only")
			assert.GreaterOrEqual(t, len(wire[i].payload), len(msg))
		case -2:
			assert.Zero(t, st.Matches, "HuffmanOnly has no matches")
			assert.Less(t, len(wire[i].payload), len(msg))
		default:
			assert.Positive(t, st.Matches, "message %d at level %d", i, level)
		}
	}
	// The history is kept across a change of level: the second copy,
	// at level 9, refers back to the first, sent at level 1.
	assert.Less(t, len(wire[1].payload), len(msg)/10, "level 9 after level 1 refers back")
}

func TestCompressSetCompressionLevelConcurrent(t *testing.T) {
	// SetCompressionLevel and EnableWriteCompression race with the writes
	// they affect; every message must still arrive intact.
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, echoOnUpgrade(echoWhole))
	c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
	stop := make(chan struct{})
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.SetCompressionLevel(i%12 - 2)
			c.EnableWriteCompression(i%5 != 0)
		}
	}()
	msgs := chatCorpus(23, 200)
	for i, m := range msgs {
		require.NoError(t, c.WriteMessage(m.typ, m.data))
		_, p, err := c.ReadMessage()
		require.NoError(t, err)
		require.True(t, bytes.Equal(m.data, p), "echo %d", i)
	}
	close(stop)
	<-switched
	require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
	wire := tap.messages(t, false)
	require.Len(t, wire, len(msgs))
	ref := newReferenceInflater(true, 15)
	for i, m := range wire {
		got := m.payload
		if m.compressed {
			var err error
			got, _, err = ref.inflate(m.payload)
			require.NoError(t, err, "message %d", i)
		}
		require.True(t, bytes.Equal(msgs[i].data, got), "message %d", i)
	}
}

func TestCompressThreshold(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 65, 199, 200, 3000, 5000}
	for _, tc := range []struct {
		name      string
		threshold int // the option
		effective int // what the test expects; negative: every message
	}{
		{"default", 0, defaultCompressionThreshold},
		{"every message", -1, -1},
		{"200", 200, 200},
		{"10000", 10000, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := CompressionOptions{Threshold: tc.threshold}
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, echoOnUpgrade(echoWhole))
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts})
			rng := rand.New(rand.NewPCG(29, 29))
			var msgs []chatMsg
			var streamed []bool
			for _, n := range sizes {
				m := chatMsg{BinaryMessage, chatText(rng, n)}
				for len(m.data) < n {
					m.data = append(m.data, 'x')
				}
				msgs = append(msgs, m, m, m)
				streamed = append(streamed, false, true, false)
			}
			for i, m := range msgs {
				switch {
				case i%3 == 2:
					// A prepared message follows the same rule.
					pm, err := NewPreparedMessage(m.typ, m.data)
					require.NoError(t, err)
					require.NoError(t, c.WritePreparedMessage(pm))
				case streamed[i]:
					w, err := c.NextWriter(m.typ)
					require.NoError(t, err)
					for p := m.data; len(p) > 0; {
						k := min(len(p), 1000)
						_, err := w.Write(p[:k])
						require.NoError(t, err)
						p = p[k:]
					}
					require.NoError(t, w.Close())
				default:
					require.NoError(t, c.WriteMessage(m.typ, m.data))
				}
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.True(t, bytes.Equal(m.data, p))
			}
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			// The server answers with WriteMessage: the threshold as it is.
			checkTappedDirection(t, tap, true, true, 15, tc.effective, msgs)
			// A NextWriter message that overflowed the write buffer
			// (4 KiB) before Close is compressed whatever its size.
			wire := tap.messages(t, false)
			ref := newReferenceInflater(true, 15)
			for i, m := range wire {
				n := len(msgs[i].data)
				want := tc.effective < 0 || n >= tc.effective || streamed[i] && n > defaultWriteBufferSize
				require.Equal(t, want, m.compressed, "RSV1 on client message %d of %d bytes (streamed %v)", i, n, streamed[i])
				if m.compressed {
					got, _, err := ref.inflate(m.payload)
					require.NoError(t, err)
					require.True(t, bytes.Equal(msgs[i].data, got))
				}
			}
		})
	}
}

// ---- 5. hostile and broken peers ----------------------------------------------

// deflateBomb is a few KiB of compressed data that inflates to 4 MiB of zeros.
var deflateBomb = sync.OnceValue(func() []byte {
	return newPeerDeflater(false, 15, stdflate.BestCompression).compress(make([]byte, 4<<20))
})

// deflateFinal compresses msg into a complete stream ending with a BFINAL
// block.
func deflateFinal(msg []byte) []byte {
	var b bytes.Buffer
	fw, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
	fw.Write(msg)
	fw.Close()
	return b.Bytes()
}

// deflateWithDict compresses msg as a peer whose history holds dict.
func deflateWithDict(msg, dict []byte) []byte {
	var b bytes.Buffer
	fw, _ := stdflate.NewWriterDict(&b, stdflate.BestCompression, dict)
	fw.Write(msg)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), syncFlushTail)
}

func TestCompressBadPeer(t *testing.T) {
	pmd := permessageDeflate
	rng := rand.New(rand.NewPCG(31, 31))
	letters := make([]byte, 600)
	for i := range letters {
		letters[i] = 'a' + byte(rng.IntN(26))
	}
	text := chatText(rng, 3000)
	truncated := newPeerDeflater(false, 15, stdflate.BestCompression).compress(text)
	truncated = truncated[:len(truncated)/2]
	frame := encodeFrame
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, tc := range []struct {
		name string
		// The negotiation: the raw client's offer, the raw server's
		// response ("" for none), our server's answer to the offer where
		// it is not that response, and the options of our side.
		offer, response, answer string
		opts                    CompressionOptions
		limit                   int64
		before                  int // messages that must arrive before the failure
		send                    func(mask bool) []byte
		want                    error // ErrReadLimit or a *ProtocolError with the close code
		code                    int   // the close code the peer receives
	}{
		{name: "bomb", offer: pmd, response: pmd, limit: 1 << 10,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, deflateBomb(), mask) },
			want: ErrReadLimit, code: CloseMessageTooBig},
		{name: "fragmented bomb", offer: pmd, response: pmd, limit: 1 << 10,
			send: func(mask bool) []byte {
				z := deflateBomb()
				return cat(frame(false, wireRSV1, opText, z[:10], mask), frame(false, 0, opContinuation, z[10:100], mask), frame(true, 0, opContinuation, z[100:], mask))
			},
			want: ErrReadLimit, code: CloseMessageTooBig},
		{name: "RSV1 on a continuation", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				z := newPeerDeflater(false, 15, 6).compress(text)
				return cat(frame(false, wireRSV1, opText, z[:10], mask), frame(true, wireRSV1, opContinuation, z[10:], mask))
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on an uncompressed message's continuation", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return cat(frame(false, 0, opText, []byte("abc"), mask), frame(true, wireRSV1, opContinuation, []byte("def"), mask))
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on a ping", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opPing, []byte("p"), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on a close", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opClose, FormatCloseMessage(1000, ""), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV2 with compression", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV2, opText, []byte("x"), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 without compression", offer: "", response: "",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(text), mask)
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 when the server declined", offer: pmd + "; bogus", response: "",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(text), mask)
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "corrupt data", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, []byte{0xff, 0xff, 0xff, 0xff}, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "stored length check", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, []byte{0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5}, mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated stored block", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated Huffman block", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, truncated, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated block the restored tail ends", offer: pmd, response: pmd,
			// A fixed Huffman block cut after "the ": the first seven
			// zero bits of the restored tail read as its end-of-block
			// code, and the rest as a stored block cut short. The
			// payload did not end at a block boundary: it is invalid,
			// and compress/flate (hence gorilla) refuses it.
			send: func(mask bool) []byte { return frame(true, wireRSV1, opText, []byte{0x2a, 0xc9, 0x48, 0x55}, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "invalid UTF-8 once inflated", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				bad := append(bytes.Clone(text[:2000]), 0xff)
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(bad), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "UTF-8 cut at the end once inflated", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress([]byte("caf\xc3")), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "data after a final block", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, append(deflateFinal(text), 0x00), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "data after a final block in a later frame", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return cat(frame(false, wireRSV1, opBinary, deflateFinal(text), mask), frame(true, 0, opContinuation, []byte{0x00}, mask))
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "reference into a history not kept", offer: pmd + "; client_no_context_takeover", response: pmd + "; server_no_context_takeover", answer: pmd + "; client_no_context_takeover",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, deflateWithDict(letters, letters), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "reference beyond the window", offer: pmd + "; client_max_window_bits=9", response: pmd + "; server_max_window_bits=9", answer: pmd, before: 1,
			send: func(mask bool) []byte {
				d := newPeerDeflater(true, 15, stdflate.BestCompression)
				return cat(frame(true, wireRSV1, opBinary, d.compress(letters), mask), frame(true, wireRSV1, opBinary, d.compress(letters), mask))
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
	} {
		check := func(t *testing.T, err error) {
			t.Helper()
			if pe, ok := tc.want.(*ProtocolError); ok {
				var got *ProtocolError
				require.ErrorAs(t, err, &got)
				require.Equal(t, pe.Code, got.Code, "%v", err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		}
		t.Run("server/"+tc.name, func(t *testing.T) {
			results := make(chan error, 2)
			u := &Upgrader{EnableCompression: tc.offer != "", Compression: tc.opts}
			srv := upgradeServer(t, u, func(c *Conn, err error) {
				if err != nil {
					results <- err
					return
				}
				c.SetReadLimit(tc.limit)
				for i := 0; i < tc.before; i++ {
					if _, _, err := c.ReadMessage(); err != nil {
						results <- fmt.Errorf("message %d: %w", i, err)
						return
					}
				}
				_, _, err = c.ReadMessage()
				results <- err
				if err != nil {
					_, _, err2 := c.ReadMessage()
					results <- err2
				}
			})
			var offer []string
			if tc.offer != "" {
				offer = []string{tc.offer}
			}
			conn, br, resp := dialRawUpgrade(t, srv, offer...)
			answer := tc.response
			if tc.answer != "" {
				answer = tc.answer
			}
			require.Equal(t, answer, resp.Header.Get("Sec-Websocket-Extensions"))
			_, err := conn.Write(tc.send(true))
			require.NoError(t, err)
			err = <-results
			check(t, err)
			require.Equal(t, err, <-results, "the error is permanent")
			code, err := readCloseCode(br)
			require.NoError(t, err)
			assert.Equal(t, tc.code, code)
		})
		t.Run("client/"+tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			codes := make(chan error, 1)
			var code int
			go func() {
				codes <- func() error {
					conn, br, req, err := acceptRawUpgrade(ln)
					if err != nil {
						return err
					}
					defer conn.Close()
					var ext []string
					if tc.response != "" {
						ext = []string{tc.response}
					}
					if err := respond101(conn, req, ext...); err != nil {
						return err
					}
					if _, err := conn.Write(tc.send(false)); err != nil {
						return err
					}
					code, err = readCloseCode(br)
					return err
				}()
			}()
			d := &Dialer{EnableCompression: tc.offer != "", Compression: tc.opts}
			c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
			require.NoError(t, err)
			defer c.Close()
			c.SetReadLimit(tc.limit)
			for i := 0; i < tc.before; i++ {
				_, _, err := c.ReadMessage()
				require.NoError(t, err, "message %d", i)
			}
			_, _, err = c.ReadMessage()
			check(t, err)
			_, _, err2 := c.ReadMessage()
			require.Equal(t, err, err2, "the error is permanent")
			require.NoError(t, <-codes)
			assert.Equal(t, tc.code, code)
		})
	}
}

func TestCompressReadLimitBoundary(t *testing.T) {
	// The limit applies to the inflated size, as with uncompressed
	// messages: exactly the limit passes, one byte more fails.
	const limit = 1000
	for _, n := range []int{limit, limit + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			results := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true}, func(c *Conn, err error) {
				if err == nil {
					c.SetReadLimit(limit)
					var p []byte
					if _, p, err = c.ReadMessage(); err == nil && len(p) != n {
						err = fmt.Errorf("read %d bytes", len(p))
					}
				}
				results <- err
			})
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
			require.NoError(t, c.WriteMessage(BinaryMessage, make([]byte, n)))
			err := <-results
			wire := tap.messages(t, false)
			require.Len(t, wire, 1)
			require.True(t, wire[0].compressed)
			require.Less(t, len(wire[0].payload), 100)
			if n == limit {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrReadLimit)
			_, _, err = c.ReadMessage()
			require.True(t, IsCloseError(err, CloseMessageTooBig), "%v", err)
		})
	}
}

func TestCompressNineForEight(t *testing.T) {
	// zlib cannot compress with a 256-byte window and uses 512 when told
	// 8 (compression_negotiate.go): the server inflates such a peer's
	// messages all the same.
	msgs := chatCorpus(37, 300)
	results := make(chan error, 1)
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, func(c *Conn, err error) {
		for i := 0; err == nil && i < len(msgs); i++ {
			var p []byte
			if _, p, err = c.ReadMessage(); err == nil && !bytes.Equal(p, msgs[i].data) {
				err = fmt.Errorf("message %d differs", i)
			}
		}
		results <- err
	})
	conn, _, resp := dialRawUpgrade(t, srv, permessageDeflate+"; client_max_window_bits=8")
	require.Equal(t, permessageDeflate, resp.Header.Get("Sec-Websocket-Extensions"))
	out := newPeerDeflater(true, 9, stdflate.DefaultCompression)
	var stream []byte
	for _, m := range msgs {
		stream = append(stream, encodeFrame(true, wireRSV1, byte(m.typ), out.compress(m.data), true)...)
	}
	_, err := conn.Write(stream)
	require.NoError(t, err)
	require.NoError(t, <-results)
}
