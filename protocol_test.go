package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The protocol tests put a Conn, server side (Upgrader) or client side
// (Dialer), opposite a raw TCP peer that writes frames byte by byte as the
// test dictates and reads back what the Conn sends. Each Conn runs an
// application function, usually an echo loop, whose return value (the
// error ReadMessage finally gave) the test checks.

// protoKey masks the frames of a raw client; deliberately not zero, so that
// a peer that forgets to unmask sees garbage.
var protoKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// protoPeer is the raw end of a connection to a Conn under test.
type protoPeer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader // holds what followed the handshake; all reads go through it
	// client is true when the raw peer plays the client: it masks its
	// frames and expects unmasked ones.
	client bool
	appErr chan error // what the Conn's application function returned
}

// protoSide starts a Conn under test with app and returns the raw peer.
type protoSide struct {
	name  string
	start func(t *testing.T, app func(c *Conn) error) *protoPeer
}

// protoSides runs rules that bind both ends on a server Conn and on a
// client Conn.
var protoSides = []protoSide{
	{"server", protoServe},
	{"client", protoDialed},
}

// protoServe serves app on a loopback server Conn and connects a raw client
// to it: the handshake is written by hand and the 101 read with
// http.ReadResponse.
func protoServe(t *testing.T, app func(c *Conn) error) *protoPeer {
	t.Helper()
	appErr := make(chan error, 1)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			appErr <- err
			return
		}
		protoRun(c, app, appErr, stop)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	addr := srv.Listener.Addr().String()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(testWait)))

	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	_, err = io.WriteString(nc, "GET /ws HTTP/1.1\r\nHost: "+addr+
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "+key+
		"\r\nSec-WebSocket-Version: 13\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, computeAcceptKey(key), resp.Header.Get("Sec-WebSocket-Accept"))
	return &protoPeer{t: t, conn: nc, br: br, client: true, appErr: appErr}
}

// protoDialed runs app on a client Conn from our Dialer, connected to a raw
// server that reads the request and answers the 101 by hand.
func protoDialed(t *testing.T, app func(c *Conn) error) *protoPeer {
	t.Helper()
	return protoDialedPipelined(t, app, nil)
}

// protoDialedPipelined is protoDialed with frames written in the same
// write as the 101 response.
func protoDialedPipelined(t *testing.T, app func(c *Conn) error, frames []protoFrame) *protoPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	appErr := make(chan error, 1)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		d := Dialer{HandshakeTimeout: testWait}
		c, _, err := d.Dial("ws://"+l.Addr().String()+"/ws", nil)
		if err != nil {
			appErr <- err
			return
		}
		protoRun(c, app, appErr, stop)
	}()
	require.NoError(t, l.(*net.TCPListener).SetDeadline(time.Now().Add(testWait)))
	nc, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(testWait)))
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	require.NoError(t, err)
	require.Equal(t, "websocket", strings.ToLower(req.Header.Get("Upgrade")))
	key := req.Header.Get("Sec-WebSocket-Key")
	require.NotEmpty(t, key)
	resp := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Accept: " + computeAcceptKey(key) + "\r\n\r\n")
	for _, f := range frames {
		resp = append(resp, f.encode(false)...)
	}
	_, err = nc.Write(resp)
	require.NoError(t, err)
	return &protoPeer{t: t, conn: nc, br: br, client: false, appErr: appErr}
}

// protoRun runs app on c and reports its result. The Conn is closed only
// at the end of the test, so that a test seeing the TCP connection closed
// knows the library closed it.
func protoRun(c *Conn, app func(c *Conn) error, appErr chan<- error, stop <-chan struct{}) {
	appErr <- app(c)
	<-stop
	c.Close()
}

// protoEchoWith runs setup on the Conn, then echoes.
func protoEchoWith(setup func(c *Conn)) func(c *Conn) error {
	return func(c *Conn) error {
		setup(c)
		return echoWhole(c)
	}
}

// protoFrame describes a frame for the raw peer to write, valid or not.
type protoFrame struct {
	op      byte
	fin     bool
	rsv     byte // RSV bits in place (0x40, 0x20, 0x10)
	payload []byte
	// flipMask sends the frame masked by a raw server or unmasked by a raw
	// client.
	flipMask bool
	// form forces the length encoding: 7, 16 or 64 bits; 0 picks the
	// shortest.
	form int
	// declare announces declLen as the payload length instead of
	// len(payload); only payload is sent.
	declare bool
	declLen uint64
}

// protoF is a plain frame.
func protoF(op byte, fin bool, payload string) protoFrame {
	return protoFrame{op: op, fin: fin, payload: []byte(payload)}
}

// protoClose is a close frame with payload code and reason.
func protoClose(code int, reason string) protoFrame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return protoFrame{op: opClose, fin: true, payload: append(p, reason...)}
}

func (f protoFrame) encode(mask bool) []byte {
	if f.flipMask {
		mask = !mask
	}
	n := uint64(len(f.payload))
	if f.declare {
		n = f.declLen
	}
	b0 := f.op | f.rsv
	if f.fin {
		b0 |= 0x80
	}
	var b1 byte
	if mask {
		b1 = 0x80
	}
	form := f.form
	if form == 0 {
		switch {
		case n <= 125:
			form = 7
		case n <= 0xffff:
			form = 16
		default:
			form = 64
		}
	}
	b := []byte{b0}
	switch form {
	case 7:
		b = append(b, b1|byte(n))
	case 16:
		b = append(b, b1|126, byte(n>>8), byte(n))
	default:
		b = append(b, b1|127)
		b = binary.BigEndian.AppendUint64(b, n)
	}
	if mask {
		b = append(b, protoKey[:]...)
	}
	start := len(b)
	b = append(b, f.payload...)
	if mask {
		for i := range b[start:] {
			b[start+i] ^= protoKey[i&3]
		}
	}
	return b
}

// send writes frames with one write call, so that the Conn finds them
// together.
func (p *protoPeer) send(frames ...protoFrame) {
	p.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f.encode(p.client)...)
	}
	require.NoError(p.t, p.conn.SetWriteDeadline(time.Now().Add(testWait)))
	_, err := p.conn.Write(b)
	require.NoError(p.t, err)
}

// protoRecv is a frame read by the raw peer, unmasked.
type protoRecv struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	form    int // length encoding: 7, 16 or 64
	payload []byte
}

// readFrame reads one frame, waiting at most testWait.
func (p *protoPeer) readFrame() (protoRecv, error) {
	if err := p.conn.SetReadDeadline(time.Now().Add(testWait)); err != nil {
		return protoRecv{}, err
	}
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return protoRecv{}, err
	}
	f := protoRecv{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0xf, masked: h[1]&0x80 != 0, form: 7}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return f, err
		}
		n, f.form = uint64(binary.BigEndian.Uint16(e[:])), 16
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(p.br, e[:]); err != nil {
			return f, err
		}
		n, f.form = binary.BigEndian.Uint64(e[:]), 64
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(p.br, key[:]); err != nil {
			return f, err
		}
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame of %d bytes is beyond what the tests send", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(p.br, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// next reads a frame and checks that it is masked exactly when the Conn is
// a client.
func (p *protoPeer) next() protoRecv {
	p.t.Helper()
	f, err := p.readFrame()
	require.NoError(p.t, err, "reading a frame from the Conn")
	require.Equal(p.t, !p.client, f.masked, "masking of a frame from the Conn")
	require.Zero(p.t, f.rsv, "RSV bits of a frame from the Conn")
	return f
}

// expectData reads a frame and checks that it is the whole message op,
// payload.
func (p *protoPeer) expectData(op byte, payload []byte) protoRecv {
	p.t.Helper()
	f := p.next()
	require.Equal(p.t, op, f.op, "opcode")
	require.True(p.t, f.fin, "FIN")
	require.True(p.t, bytes.Equal(payload, f.payload), "payload: got %d bytes %.40q, want %d bytes %.40q", len(f.payload), f.payload, len(payload), payload)
	return f
}

// expectClose reads a frame, checks that it is a close frame and returns its
// code, or CloseNoStatusReceived for an empty one.
func (p *protoPeer) expectClose() (code int, reason string) {
	p.t.Helper()
	f := p.next()
	require.Equal(p.t, byte(opClose), f.op, "want a close frame, got opcode %d payload %q", f.op, f.payload)
	require.True(p.t, f.fin)
	if len(f.payload) == 0 {
		return CloseNoStatusReceived, ""
	}
	require.GreaterOrEqual(p.t, len(f.payload), 2, "close payload %q", f.payload)
	return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
}

// expectEOF checks that the Conn's side closed the TCP connection with
// nothing more sent.
func (p *protoPeer) expectEOF() {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
	b, err := p.br.ReadByte()
	require.ErrorIs(p.t, err, io.EOF, "want the TCP connection closed, read byte %#x", b)
}

// expectHandshakeEnd checks how the Conn ends a completed closing
// handshake: a server closes TCP at once (RFC 6455 section 7.1.1); a
// client leaves that to the server, so the raw server closes it, as it
// should.
func (p *protoPeer) expectHandshakeEnd() {
	p.t.Helper()
	if p.client {
		p.expectEOF()
		return
	}
	require.NoError(p.t, p.conn.Close())
}

// result returns what the application function returned.
func (p *protoPeer) result() error {
	p.t.Helper()
	select {
	case err := <-p.appErr:
		return err
	case <-time.After(testWait):
		p.t.Fatal("the application function did not return")
		return nil
	}
}

// expectFailed checks the whole of a failed connection: a close frame with
// code, then TCP closed by the Conn, and the matching typed error from
// ReadMessage.
func (p *protoPeer) expectFailed(code int) {
	p.t.Helper()
	got, reason := p.expectClose()
	require.Equal(p.t, code, got, "close code (reason %q)", reason)
	p.expectEOF()
	protoCheckFailErr(p.t, p.result(), code)
}

// protoCheckFailErr checks that err is the error for a connection failed
// with code.
func protoCheckFailErr(t *testing.T, err error, code int) {
	t.Helper()
	if code == CloseMessageTooBig {
		require.ErrorIs(t, err, ErrReadLimit)
		return
	}
	var pe *ProtocolError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, code, pe.Code, "ProtocolError %v", pe)
	require.True(t, strings.HasPrefix(pe.Error(), "websocket: "), pe.Error())
}

// expectClosedBy checks the end of a closing handshake the raw peer
// started with code and reason: the Conn answers with code, a server Conn
// closes TCP, and ReadMessage returned the peer's CloseError.
func (p *protoPeer) expectClosedBy(code int, reason string) {
	p.t.Helper()
	got, _ := p.expectClose()
	require.Equal(p.t, code, got, "close code echoed")
	p.expectHandshakeEnd()
	err := p.result()
	var ce *CloseError
	require.ErrorAs(p.t, err, &ce)
	require.Equal(p.t, CloseError{Code: code, Text: reason}, *ce)
}

// closeNormally runs the closing handshake from the raw side.
func (p *protoPeer) closeNormally() {
	p.t.Helper()
	p.send(protoClose(CloseNormalClosure, "done"))
	p.expectClosedBy(CloseNormalClosure, "done")
}

// protoRule is a sequence of frames the Conn must reject with a close
// code.
type protoRule struct {
	name   string
	frames []protoFrame
	code   int
}

func protoRunRules(t *testing.T, rules []protoRule, setup func(c *Conn)) {
	t.Helper()
	if setup == nil {
		setup = func(*Conn) {}
	}
	for _, side := range protoSides {
		for _, r := range rules {
			t.Run(side.name+"/"+r.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, protoEchoWith(setup))
				p.send(r.frames...)
				p.expectFailed(r.code)
			})
		}
	}
}

func TestProtoLengthForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		n    int
		form int
	}{
		{"7-bit", 125, 7},
		{"16-bit min", 126, 16},
		{"16-bit", 1000, 16},
		{"16-bit max", 65535, 16},
		{"64-bit", 65536, 64},
		{"64-bit large", 200000, 64},
	}
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			for _, tc := range cases {
				payload := make([]byte, tc.n)
				for i := range payload {
					payload[i] = byte(i*7 + tc.n)
				}
				p.send(protoFrame{op: opBinary, fin: true, payload: payload})
				f := p.expectData(opBinary, payload)
				assert.Equal(t, tc.form, f.form, "%s: length form of the echo", tc.name)
			}
			p.closeNormally()
		})
	}
}

func TestProtoBadFrames(t *testing.T) {
	t.Parallel()
	rules := []protoRule{
		{"64-bit length with top bit", []protoFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: 1 << 63}}, CloseProtocolError},
		{"64-bit length all ones", []protoFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: ^uint64(0)}}, CloseProtocolError},
		{"wrong masking", []protoFrame{{op: opText, fin: true, payload: []byte("hello"), flipMask: true}}, CloseProtocolError},
		{"wrong masking on ping", []protoFrame{{op: opPing, fin: true, payload: []byte("hello"), flipMask: true}}, CloseProtocolError},
		{"control payload 126", []protoFrame{{op: opPing, fin: true, payload: make([]byte, 126)}}, CloseProtocolError},
		{"close payload 126", []protoFrame{{op: opClose, fin: true, payload: append([]byte{0x03, 0xe8}, make([]byte, 124)...)}}, CloseProtocolError},
		{"control length 126 in 64-bit form", []protoFrame{{op: opPong, fin: true, form: 64, payload: make([]byte, 126)}}, CloseProtocolError},
		// RFC 6455 section 5.2: "the minimal number of bytes MUST be
		// used to encode the length".
		{"length 0 in 16-bit form", []protoFrame{{op: opBinary, fin: true, form: 16}}, CloseProtocolError},
		{"length 125 in 16-bit form", []protoFrame{{op: opText, fin: true, form: 16, payload: bytes.Repeat([]byte("a"), 125)}}, CloseProtocolError},
		{"length 0 in 64-bit form", []protoFrame{{op: opBinary, fin: true, form: 64}}, CloseProtocolError},
		{"length 126 in 64-bit form", []protoFrame{{op: opBinary, fin: true, form: 64, payload: make([]byte, 126)}}, CloseProtocolError},
		{"length 65535 in 64-bit form", []protoFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: 65535}}, CloseProtocolError},
		{"ping length 5 in 16-bit form", []protoFrame{{op: opPing, fin: true, form: 16, payload: []byte("hello")}}, CloseProtocolError},
		{"non-minimal continuation", []protoFrame{protoF(opText, false, "ab"), {op: opContinuation, fin: true, form: 16, payload: []byte("cd")}}, CloseProtocolError},
		{"ping without FIN", []protoFrame{protoF(opPing, false, "x")}, CloseProtocolError},
		{"pong without FIN", []protoFrame{protoF(opPong, false, "")}, CloseProtocolError},
		{"close without FIN", []protoFrame{{op: opClose, payload: []byte{0x03, 0xe8}}}, CloseProtocolError},
		{"continuation without start", []protoFrame{protoF(opContinuation, true, "abc")}, CloseProtocolError},
		{"unfinished continuation without start", []protoFrame{protoF(opContinuation, false, "abc")}, CloseProtocolError},
		{"text inside unfinished text", []protoFrame{protoF(opText, false, "ab"), protoF(opText, true, "cd")}, CloseProtocolError},
		{"binary inside unfinished text", []protoFrame{protoF(opText, false, "ab"), protoF(opBinary, true, "cd")}, CloseProtocolError},
		{"text inside unfinished binary", []protoFrame{protoF(opBinary, false, "ab"), protoF(opContinuation, false, "cd"), protoF(opText, true, "ef")}, CloseProtocolError},
	}
	for _, rsv := range []byte{rsv1Bit, rsv2Bit, rsv3Bit} {
		for _, op := range []byte{opText, opBinary, opPing, opPong, opClose} {
			f := protoFrame{op: op, fin: true, rsv: rsv}
			if op == opClose {
				f.payload = []byte{0x03, 0xe8}
			}
			rules = append(rules, protoRule{fmt.Sprintf("RSV %#x on opcode %d", rsv, op), []protoFrame{f}, CloseProtocolError})
		}
	}
	rules = append(rules, protoRule{"RSV1 on continuation", []protoFrame{protoF(opText, false, "a"), {op: opContinuation, fin: true, rsv: rsv1Bit, payload: []byte("b")}}, CloseProtocolError})
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		rules = append(rules, protoRule{fmt.Sprintf("opcode %#x", op), []protoFrame{protoF(op, true, "x")}, CloseProtocolError})
	}
	rules = append(rules, protoRule{"reserved opcode inside a message", []protoFrame{protoF(opText, false, "a"), protoF(0x3, true, "b")}, CloseProtocolError})
	protoRunRules(t, rules, nil)

	for _, side := range protoSides {
		t.Run(side.name+"/continuation after complete message", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			p.send(protoF(opText, true, "a"), protoF(opContinuation, true, "b"))
			p.expectData(opText, []byte("a"))
			p.expectFailed(CloseProtocolError)
		})
	}
}

func TestProtoInvalidUTF8(t *testing.T) {
	t.Parallel()
	rules := []protoRule{
		{"single frame", []protoFrame{protoF(opText, true, "ok\xff")}, CloseInvalidFramePayloadData},
		{"overlong", []protoFrame{protoF(opText, true, "\xc0\xaf")}, CloseInvalidFramePayloadData},
		{"surrogate", []protoFrame{protoF(opText, true, "\xed\xa0\x80")}, CloseInvalidFramePayloadData},
		{"beyond U+10FFFF", []protoFrame{protoF(opText, true, "\xf4\x90\x80\x80")}, CloseInvalidFramePayloadData},
		{"second fragment", []protoFrame{protoF(opText, false, "fine"), protoF(opContinuation, true, "bad\xff")}, CloseInvalidFramePayloadData},
		{"sequence split across fragments", []protoFrame{protoF(opText, false, "a\xe2\x82"), protoF(opContinuation, true, "(b")}, CloseInvalidFramePayloadData},
		{"surrogate split after its lead byte", []protoFrame{protoF(opText, false, "a\xed"), protoF(opContinuation, true, "\xa0\x80")}, CloseInvalidFramePayloadData},
		{"overlong split after its lead byte", []protoFrame{protoF(opText, false, "a\xe0"), protoF(opContinuation, true, "\x80\x80")}, CloseInvalidFramePayloadData},
		{"beyond U+10FFFF split after its lead byte", []protoFrame{protoF(opText, false, "\xf4"), protoF(opContinuation, true, "\x90\x80\x80")}, CloseInvalidFramePayloadData},
		{"overlong four-byte split", []protoFrame{protoF(opText, false, "\xf0"), protoF(opContinuation, true, "\x80\x80\x80")}, CloseInvalidFramePayloadData},
		{"split four-byte sequence", []protoFrame{protoF(opText, false, "\xf0\x9f"), protoF(opContinuation, false, "\x98"), protoF(opContinuation, true, "z")}, CloseInvalidFramePayloadData},
		{"message ends mid-sequence", []protoFrame{protoF(opText, true, "ab\xe2\x82")}, CloseInvalidFramePayloadData},
		{"fragmented message ends mid-sequence", []protoFrame{protoF(opText, false, "ab"), protoF(opContinuation, true, "\xe2\x82")}, CloseInvalidFramePayloadData},
		{"empty final fragment after cut sequence", []protoFrame{protoF(opText, false, "ab\xf0\x9f\x98"), protoF(opContinuation, true, "")}, CloseInvalidFramePayloadData},
	}
	protoRunRules(t, rules, nil)
}

// TestProtoInvalidUTF8FailFast checks that a text message is rejected at
// the bytes that make it invalid, before the rest of it has arrived: the
// raw peer sends the bad start and then only waits for the close frame.
func TestProtoInvalidUTF8FailFast(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		frame protoFrame
	}{
		{"first fragment", protoF(opText, false, "ok\xff")},
		{"first fragment with valid prefix then bad continuation", protoF(opText, false, "\xe2\x82(")},
		// Each of these is the start of a sequence that no continuation
		// can make valid.
		{"surrogate prefix", protoF(opText, false, "ab\xed\xa0")},
		{"overlong prefix", protoF(opText, false, "ab\xe0\x9f")},
		{"overlong four-byte prefix", protoF(opText, false, "ab\xf0\x8f")},
		{"prefix beyond U+10FFFF", protoF(opText, false, "ab\xf4\x90")},
		{"lead byte 0xf5", protoF(opText, false, "ab\xf5")},
		{"start of a longer frame", protoFrame{op: opText, fin: true, payload: []byte("ab\xff"), declare: true, declLen: 100}},
	}
	for _, side := range protoSides {
		for _, tc := range cases {
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, echoWhole)
				p.send(tc.frame)
				p.expectFailed(CloseInvalidFramePayloadData)
			})
		}
	}
}

func TestProtoValidUTF8Fragments(t *testing.T) {
	t.Parallel()
	// Every way of cutting multi-byte characters into fragments,
	// including empty fragments, must be accepted.
	text := "aé€😀z\u07ff\uffff\U0010ffff"
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			for cut := 0; cut <= len(text); cut++ {
				p.send(protoF(opText, false, text[:cut]), protoF(opContinuation, false, ""), protoF(opContinuation, true, text[cut:]))
				p.expectData(opText, []byte(text))
			}
			// One byte per fragment.
			frames := []protoFrame{protoF(opText, false, text[:1])}
			for i := 1; i < len(text); i++ {
				frames = append(frames, protoF(opContinuation, i == len(text)-1, text[i:i+1]))
			}
			p.send(frames...)
			p.expectData(opText, []byte(text))
			p.closeNormally()
		})
	}
}

func TestProtoPing(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 125)
	for i := range payload {
		payload[i] = byte(255 - i) // not UTF-8: ping data is opaque
	}
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			for _, data := range [][]byte{payload, nil, []byte("x")} {
				p.send(protoFrame{op: opPing, fin: true, payload: data})
				f := p.next()
				require.Equal(t, byte(opPong), f.op)
				require.True(t, f.fin)
				require.Equal(t, len(data), len(f.payload))
				require.True(t, bytes.Equal(data, f.payload), "pong payload %q", f.payload)
			}
			p.closeNormally()
		})
	}
}

// TestProtoControlBetweenFragments interleaves pings and pongs with the
// fragments of a text message: the ping is answered before the message is
// complete, the pong reaches the pong handler, and the message arrives
// whole.
func TestProtoControlBetweenFragments(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			pongs := make(chan string, 4)
			p := side.start(t, protoEchoWith(func(c *Conn) {
				c.SetPongHandler(func(s string) error {
					pongs <- s
					return nil
				})
			}))
			p.send(protoF(opText, false, "Hel"), protoF(opPing, true, "p1"))
			f := p.next()
			require.Equal(t, byte(opPong), f.op, "the ping must be answered while the message is unfinished")
			require.Equal(t, "p1", string(f.payload))

			p.send(protoF(opContinuation, false, "lo, "), protoF(opPong, true, "q1"), protoF(opPing, true, ""), protoF(opContinuation, true, "wörld"))
			f = p.next()
			require.Equal(t, byte(opPong), f.op)
			require.Empty(t, f.payload)
			p.expectData(opText, []byte("Hello, wörld"))
			select {
			case s := <-pongs:
				require.Equal(t, "q1", s)
			case <-time.After(testWait):
				t.Fatal("pong handler not called")
			}
			require.Empty(t, pongs, "pong handler called more than once")
			p.closeNormally()
		})
	}
}

func TestProtoClose(t *testing.T) {
	t.Parallel()
	type closeCase struct {
		name    string
		payload []byte
		// echo is the code the Conn answers with; fail is the close code
		// for a close frame the Conn must reject (then echo is unused).
		echo, fail int
		text       string
	}
	cases := []closeCase{
		{name: "1000 bye", payload: protoClose(1000, "bye").payload, echo: 1000, text: "bye"},
		{name: "empty", payload: nil, echo: CloseNoStatusReceived},
		{name: "3000", payload: protoClose(3000, "").payload, echo: 3000},
		{name: "4999", payload: protoClose(4999, "über").payload, echo: 4999, text: "über"},
		{name: "1001", payload: protoClose(1001, "").payload, echo: 1001},
		{name: "1011", payload: protoClose(1011, "x").payload, echo: 1011, text: "x"},
		{name: "123-byte reason", payload: protoClose(1000, strings.Repeat("r", 123)).payload, echo: 1000, text: strings.Repeat("r", 123)},
		{name: "payload of one byte", payload: []byte{0x03}, fail: CloseProtocolError},
		{name: "invalid UTF-8 reason", payload: protoClose(1000, "bad\xff").payload, fail: CloseInvalidFramePayloadData},
		{name: "reason ending mid-sequence", payload: protoClose(1000, "\xe2\x82").payload, fail: CloseInvalidFramePayloadData},
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, closeCase{name: fmt.Sprintf("code %d", code), payload: protoClose(code, "").payload, fail: CloseProtocolError})
	}
	for _, side := range protoSides {
		for _, tc := range cases {
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, echoWhole)
				p.send(protoFrame{op: opClose, fin: true, payload: tc.payload})
				if tc.fail != 0 {
					p.expectFailed(tc.fail)
					return
				}
				if tc.echo == CloseNoStatusReceived {
					// An empty close is answered with an empty close.
					f := p.next()
					require.Equal(t, byte(opClose), f.op)
					require.Empty(t, f.payload)
					p.expectHandshakeEnd()
					var ce *CloseError
					require.ErrorAs(t, p.result(), &ce)
					require.Equal(t, CloseError{Code: CloseNoStatusReceived}, *ce)
					return
				}
				p.expectClosedBy(tc.echo, tc.text)
			})
		}
	}
}

// TestProtoDataAfterClose checks that frames behind the peer's close frame
// are ignored: the Conn answers the close and nothing else.
func TestProtoDataAfterClose(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			p.send(protoF(opText, true, "before"))
			p.expectData(opText, []byte("before"))
			p.send(protoClose(1000, ""), protoF(opText, true, "after"), protoF(opPing, true, "late"))
			p.expectClosedBy(1000, "")
		})
	}
}

// TestProtoWriteAfterCloseSent has the application start the closing
// handshake; data written after that fails with ErrCloseSent and never
// reaches the peer, and the peer's answer completes the handshake.
func TestProtoWriteAfterCloseSent(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			writeErrs := make(chan error, 8)
			p := side.start(t, func(c *Conn) error {
				if err := c.WriteControl(CloseMessage, FormatCloseMessage(CloseGoingAway, "going"), time.Now().Add(testWait)); err != nil {
					return err
				}
				writeErrs <- c.WriteMessage(TextMessage, []byte("late"))
				writeErrs <- c.WriteControl(PingMessage, nil, time.Now().Add(testWait))
				writeErrs <- c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait))
				_, err := c.NextWriter(BinaryMessage)
				writeErrs <- err
				pm, err := NewPreparedMessage(TextMessage, []byte("prepared"))
				if err != nil {
					return err
				}
				writeErrs <- c.WritePreparedMessage(pm)
				close(writeErrs)
				// The echo loop's writes fail too.
				return echoWhole(c)
			})
			code, reason := p.expectClose()
			require.Equal(t, CloseGoingAway, code)
			require.Equal(t, "going", reason)
			for err := range writeErrs {
				require.ErrorIs(t, err, ErrCloseSent)
			}
			// Data from the peer is still read but cannot be echoed.
			p.send(protoF(opText, true, "x"), protoClose(CloseGoingAway, "ok"))
			p.expectHandshakeEnd()
			var ce *CloseError
			require.ErrorAs(t, p.result(), &ce)
			require.Equal(t, CloseError{Code: CloseGoingAway, Text: "ok"}, *ce)
		})
	}
}

func TestProtoReadLimit(t *testing.T) {
	t.Parallel()
	limit := func(c *Conn) { c.SetReadLimit(1024) }
	big := protoFrame{op: opBinary, fin: true, declare: true, declLen: 1 << 40}
	rules := []protoRule{
		// Only the header is sent: the Conn must not wait for the payload.
		{"header announcing 2^40 bytes", []protoFrame{big}, CloseMessageTooBig},
		{"one byte over", []protoFrame{{op: opBinary, fin: true, payload: make([]byte, 1025)}}, CloseMessageTooBig},
		{"fragments over the limit", []protoFrame{{op: opText, payload: make([]byte, 600)}, {op: opContinuation, fin: true, payload: make([]byte, 600)}}, CloseMessageTooBig},
		{"third fragment over the limit", []protoFrame{{op: opBinary, payload: make([]byte, 512)}, {op: opContinuation, payload: make([]byte, 512)}, {op: opContinuation, fin: true, payload: make([]byte, 1)}}, CloseMessageTooBig},
		{"huge continuation", []protoFrame{{op: opBinary, payload: make([]byte, 10)}, {op: opContinuation, fin: true, declare: true, declLen: 1<<63 - 1}}, CloseMessageTooBig},
	}
	protoRunRules(t, rules, limit)

	for _, side := range protoSides {
		t.Run(side.name+"/at the limit", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, protoEchoWith(limit))
			msg := bytes.Repeat([]byte("0123456789abcdef"), 64)
			p.send(protoFrame{op: opBinary, fin: true, payload: msg})
			p.expectData(opBinary, msg)
			p.send(protoFrame{op: opText, payload: msg[:512]}, protoF(opPing, true, "x"), protoFrame{op: opContinuation, fin: true, payload: msg[512:]})
			require.Equal(t, byte(opPong), p.next().op)
			p.expectData(opText, msg)
			// The limit is per message, not per connection.
			p.send(protoFrame{op: opBinary, fin: true, payload: msg})
			p.expectData(opBinary, msg)
			p.closeNormally()
		})
	}
}

// TestProtoFailurePermanent checks that the error of a failed connection
// stays the same for later reads.
func TestProtoFailurePermanent(t *testing.T) {
	t.Parallel()
	p := protoServe(t, func(c *Conn) error {
		_, _, err := c.ReadMessage()
		for i := 0; i < 3; i++ {
			_, _, again := c.ReadMessage()
			if again != err {
				return fmt.Errorf("read %d after failure: %v, first %v", i, again, err)
			}
			if _, _, again = c.NextReader(); again != err {
				return fmt.Errorf("NextReader after failure: %v, first %v", again, err)
			}
		}
		if werr := c.WriteMessage(TextMessage, []byte("x")); werr == nil {
			return errors.New("write after failure succeeded")
		}
		return err
	})
	p.send(protoF(0x3, true, ""))
	p.expectFailed(CloseProtocolError)
}

// TestProtoControlDuringStream checks that a ping is answered while the
// Conn's application holds a NextWriter open in the middle of a message:
// the pong goes out between two fragments.
func TestProtoControlDuringStream(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			proceed := make(chan struct{})
			p := side.start(t, func(c *Conn) error {
				w, err := c.NextWriter(BinaryMessage)
				if err != nil {
					return err
				}
				// More than the write buffer: one fragment goes out.
				if _, err := w.Write(bytes.Repeat([]byte{1}, 5000)); err != nil {
					return err
				}
				readErr := make(chan error, 1)
				go func() {
					_, _, err := c.ReadMessage()
					readErr <- err
				}()
				select {
				case <-proceed:
				case err := <-readErr:
					return err
				}
				if _, err := w.Write(bytes.Repeat([]byte{2}, 100)); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				return <-readErr
			})
			var got []byte
			f := p.next()
			require.Equal(t, byte(opBinary), f.op)
			require.False(t, f.fin)
			got = append(got, f.payload...)
			p.send(protoF(opPing, true, "mid"))
			// Fragments of the first 5000 bytes may come before the pong.
			for {
				f = p.next()
				if f.op == opPong {
					break
				}
				require.Equal(t, byte(opContinuation), f.op)
				require.False(t, f.fin, "message ended before it was finished")
				got = append(got, f.payload...)
			}
			require.Equal(t, "mid", string(f.payload))
			close(proceed)
			for !f.fin || f.op == opPong {
				f = p.next()
				require.Equal(t, byte(opContinuation), f.op)
				got = append(got, f.payload...)
			}
			require.Equal(t, append(bytes.Repeat([]byte{1}, 5000), bytes.Repeat([]byte{2}, 100)...), got)
			p.closeNormally()
		})
	}
}

// TestProtoStreamedWriteFrames pins how NextWriter's writes become frames
// with the default 4096-byte write buffer: a write larger than the buffer
// leaves at once as one fragment (the client masks it through a pooled
// buffer; the server sends it as it is), never one fragment per buffer, and
// smaller writes are gathered until the buffer fills or Close.
func TestProtoStreamedWriteFrames(t *testing.T) {
	t.Parallel()
	type frame struct {
		op  byte
		fin bool
		n   int
	}
	for _, tc := range []struct {
		name   string
		writes []int
		want   []frame
	}{
		{"one large write", []int{20000}, []frame{{opBinary, false, 20000}, {opContinuation, true, 0}}},
		{"small then large", []int{100, 9000}, []frame{{opBinary, false, 4096}, {opContinuation, false, 5004}, {opContinuation, true, 0}}},
		{"large then small", []int{70000, 10}, []frame{{opBinary, false, 70000}, {opContinuation, true, 10}}},
		{"buffer-sized writes", []int{4096, 4096}, []frame{{opBinary, false, 4096}, {opContinuation, true, 4096}}},
		{"small writes", []int{1000, 1000, 1000}, []frame{{opBinary, true, 3000}}},
	} {
		for _, side := range protoSides {
			t.Run(tc.name+"/"+side.name, func(t *testing.T) {
				t.Parallel()
				var sent []byte
				for i, n := range tc.writes {
					sent = append(sent, bytes.Repeat([]byte{byte('a' + i)}, n)...)
				}
				p := side.start(t, func(c *Conn) error {
					w, err := c.NextWriter(BinaryMessage)
					if err != nil {
						return err
					}
					rest := sent
					for _, n := range tc.writes {
						if _, err := w.Write(rest[:n]); err != nil {
							return err
						}
						rest = rest[n:]
					}
					return w.Close()
				})
				var got []frame
				var payload []byte
				for len(got) == 0 || !got[len(got)-1].fin {
					f := p.next()
					got = append(got, frame{f.op, f.fin, len(f.payload)})
					payload = append(payload, f.payload...)
				}
				assert.Equal(t, tc.want, got)
				assert.True(t, bytes.Equal(sent, payload), "payload differs from what was written")
				require.NoError(t, p.result())
			})
		}
	}
}

// TestProtoByteByByte writes frames one byte per write, so that headers,
// extended lengths, masking keys and payloads arrive cut at every place.
func TestProtoByteByByte(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			long := bytes.Repeat([]byte("é"), 100)
			// A 64-bit length is minimal only from 65536 on: the
			// header and the start of that payload go byte by byte,
			// the rest in one write.
			big := bytes.Repeat([]byte("sixty-four"), 7000)
			var stream []byte
			for _, f := range []protoFrame{
				protoF(opText, false, "frag"),
				protoF(opPing, true, "pi"),
				{op: opContinuation, fin: true, payload: long},
				{op: opBinary, fin: true, payload: big},
			} {
				stream = append(stream, f.encode(p.client)...)
			}
			cut := len(stream) - len(big) + 10
			for i := range stream[:cut] {
				_, err := p.conn.Write(stream[i : i+1])
				require.NoError(t, err)
			}
			_, err := p.conn.Write(stream[cut:])
			require.NoError(t, err)
			f := p.next()
			require.Equal(t, byte(opPong), f.op)
			require.Equal(t, "pi", string(f.payload))
			p.expectData(opText, append([]byte("frag"), long...))
			p.expectData(opBinary, big)
			p.closeNormally()
		})
	}
}

// TestProtoHugeClaimNoLimit checks that without a read limit a frame
// header's claim of 2^40 bytes makes the Conn allocate nothing for it: the
// payload that arrives is read, and the peer going away ends the read with
// CloseAbnormalClosure.
func TestProtoHugeClaimNoLimit(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			p.send(protoFrame{op: opBinary, fin: true, payload: make([]byte, 1000), declare: true, declLen: 1 << 40})
			require.NoError(t, p.conn.(*net.TCPConn).CloseWrite())
			p.expectEOF()
			var ce *CloseError
			require.ErrorAs(t, p.result(), &ce)
			require.Equal(t, CloseAbnormalClosure, ce.Code)
		})
	}
}

// TestProtoSkippedMessageChecked checks that a message the application
// skips (NextReader without reading) is still validated.
func TestProtoSkippedMessageChecked(t *testing.T) {
	t.Parallel()
	skip := func(c *Conn) error {
		for {
			if _, _, err := c.NextReader(); err != nil {
				return err
			}
		}
	}
	for _, side := range protoSides {
		t.Run(side.name+"/invalid UTF-8", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, skip)
			p.send(protoF(opText, true, "fine"), protoF(opText, false, "x"), protoF(opContinuation, true, "\xff"), protoF(opText, true, "never read"))
			p.expectFailed(CloseInvalidFramePayloadData)
		})
		t.Run(side.name+"/bad continuation", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, skip)
			p.send(protoF(opBinary, false, "x"), protoF(opBinary, true, "y"))
			p.expectFailed(CloseProtocolError)
		})
		t.Run(side.name+"/read limit", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, func(c *Conn) error {
				c.SetReadLimit(10)
				return skip(c)
			})
			p.send(protoF(opBinary, false, "12345678"), protoF(opContinuation, true, "9ab"))
			p.expectFailed(CloseMessageTooBig)
		})
	}
}

// TestProtoCloseMidMessage checks that a close frame between the fragments
// of a message ends the connection normally.
func TestProtoCloseMidMessage(t *testing.T) {
	t.Parallel()
	for _, side := range protoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, echoWhole)
			p.send(protoF(opText, false, "unfinished"), protoClose(CloseGoingAway, "gone"))
			p.expectClosedBy(CloseGoingAway, "gone")
		})
	}
}

// TestProtoCloseUnblocksWriter checks that Close, and a protocol failure
// found by the reader, end a write blocked on a peer that stopped reading.
func TestProtoCloseUnblocksWriter(t *testing.T) {
	t.Parallel()
	// Far more than the socket buffers hold; shared, as writing does not
	// modify it.
	big := make([]byte, 64<<20)
	for _, side := range protoSides {
		for _, how := range []string{"Close", "protocol failure"} {
			t.Run(side.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				conns := make(chan *Conn, 1)
				writeErr := make(chan error, 1)
				p := side.start(t, func(c *Conn) error {
					conns <- c
					go func() { writeErr <- c.WriteMessage(BinaryMessage, big) }()
					_, _, err := c.ReadMessage()
					return err
				})
				c := <-conns
				// Once the first byte is here, the writer is inside the
				// frame's write, which cannot finish.
				require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
				_, err := p.br.ReadByte()
				require.NoError(t, err)
				closed := make(chan error, 1)
				if how == "Close" {
					go func() { closed <- c.Close() }()
				} else {
					p.send(protoF(0x3, true, ""))
				}
				select {
				case err := <-writeErr:
					require.Error(t, err)
				case <-time.After(testWait):
					t.Fatal("the blocked write did not end")
				}
				if how == "Close" {
					require.NoError(t, <-closed)
					require.Error(t, p.result())
				} else {
					protoCheckFailErr(t, p.result(), CloseProtocolError)
				}
			})
		}
	}
}

// TestProtoClientPipelined checks that frames the server sends in the same
// TCP segment as its 101 response reach the client Conn.
func TestProtoClientPipelined(t *testing.T) {
	t.Parallel()
	p := protoDialedPipelined(t, echoWhole, []protoFrame{
		protoF(opText, true, "right behind the 101"),
		protoF(opPing, true, "pp"),
		{op: opBinary, fin: true, payload: bytes.Repeat([]byte{7}, 10000)},
	})
	p.expectData(opText, []byte("right behind the 101"))
	f := p.next()
	require.Equal(t, byte(opPong), f.op)
	require.Equal(t, "pp", string(f.payload))
	p.expectData(opBinary, bytes.Repeat([]byte{7}, 10000))
	p.closeNormally()
}
