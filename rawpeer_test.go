package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The raw peer, part of the test kit: a Conn, server side (Upgrader) or
// client side (Dialer), opposite a raw TCP peer that writes frames byte by
// byte as the test dictates and reads back what the Conn sends. Each Conn
// runs an application function, usually an echo loop, whose return value
// (the error ReadMessage finally gave) the test checks.

// rawKey masks the frames of a raw client; deliberately not zero, so that
// a peer that forgets to unmask sees garbage.
var rawKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// rawPeer is the raw end of a connection to a Conn under test.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader // holds what followed the handshake; all reads go through it
	// client is true when the raw peer plays the client: it masks its
	// frames and expects unmasked ones.
	client bool
	// sent counts the bytes write has sent the Conn.
	sent int64
	// results carries what the Conn's application function returned.
	results chan appResult
	// drained carries what drain read, once it was started.
	drained chan rawDrained
}

// appResult is how the application under test ended: its error, or the
// panic it met (recovered, so that it fails the test and not the test
// binary) with its stack.
type appResult struct {
	err      error
	panicked any
	stack    string
}

// rawOptions configure the Conn of serveRawWith and dialRawWith; the zero
// value is a Conn with default settings.
type rawOptions struct {
	// compress: the raw end offers (as a client) or grants (as a server)
	// permessage-deflate without context takeover, so that it compresses
	// each message alone, and the Conn under test enables it.
	compress bool
	// separate: the server's handler starts the application in a
	// goroutine of its own and returns, as gorilla's chat example does.
	separate bool
	// closeOnReturn: the Conn is closed as soon as the application
	// returns. By default it is closed only at the end of the test, so
	// that a test seeing the TCP connection closed knows the library
	// closed it.
	closeOnReturn bool
	// pipelined: frames the raw server writes in the same write as its
	// 101 response.
	pipelined []rawFrame
	// serve, if set, upgrades the request and runs the application in
	// place of serveRawWith's own handler (an Engine's, for one); it
	// sends what the application ended with on results.
	serve func(w http.ResponseWriter, r *http.Request, results chan<- appResult)
}

// rawPMD is the permessage-deflate element both raw ends use with
// rawOptions.compress: no context takeover either way.
const rawPMD = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// rawSide starts a Conn under test with app and returns the raw peer.
type rawSide struct {
	name  string
	start func(t *testing.T, app func(c *Conn) error) *rawPeer
}

// rawSides runs rules that bind both ends on a server Conn and on a
// client Conn.
var rawSides = []rawSide{
	{"server", serveRaw},
	{"client", dialRaw},
}

// serveRaw serves app on a loopback server Conn with default settings and
// connects a raw client to it.
func serveRaw(t *testing.T, app func(c *Conn) error) *rawPeer {
	t.Helper()
	return serveRawWith(t, app, rawOptions{})
}

// serveRawWith serves app on a loopback server Conn and connects a raw
// client to it: the handshake is written by hand and the 101 read with
// http.ReadResponse.
func serveRawWith(t *testing.T, app func(c *Conn) error, o rawOptions) *rawPeer {
	t.Helper()
	results := make(chan appResult, 2)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.serve != nil {
			o.serve(w, r, results)
			return
		}
		u := Upgrader{EnableCompression: o.compress}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			results <- appResult{err: err}
			return
		}
		if o.separate {
			go runRawApp(c, app, results, stop, o.closeOnReturn)
			return
		}
		runRawApp(c, app, results, stop, o.closeOnReturn)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	addr := srv.Listener.Addr().String()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(testWait)))

	key := sampleKey
	req := "GET /ws HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\n"
	if o.compress {
		req += "Sec-WebSocket-Extensions: " + rawPMD + "\r\n"
	}
	_, err = io.WriteString(nc, req+"\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, computeAcceptKey(key), resp.Header.Get("Sec-WebSocket-Accept"))
	if o.compress {
		require.Contains(t, resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	}
	require.NoError(t, nc.SetDeadline(time.Time{}))
	return &rawPeer{t: t, conn: nc, br: br, client: true, results: results}
}

// dialRaw runs app on a client Conn from our Dialer with default
// settings, connected to a raw server.
func dialRaw(t *testing.T, app func(c *Conn) error) *rawPeer {
	t.Helper()
	return dialRawWith(t, app, rawOptions{})
}

// dialRawPipelined is dialRaw with frames written in the same write as the
// 101 response.
func dialRawPipelined(t *testing.T, app func(c *Conn) error, frames []rawFrame) *rawPeer {
	t.Helper()
	return dialRawWith(t, app, rawOptions{pipelined: frames})
}

// dialRawWith runs app on a client Conn from our Dialer, connected to a raw
// server that reads the request and answers the 101 by hand.
func dialRawWith(t *testing.T, app func(c *Conn) error, o rawOptions) *rawPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	results := make(chan appResult, 2)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		d := Dialer{HandshakeTimeout: testWait, EnableCompression: o.compress}
		c, _, err := d.Dial("ws://"+l.Addr().String()+"/ws", nil)
		if err != nil {
			results <- appResult{err: err}
			return
		}
		runRawApp(c, app, results, stop, o.closeOnReturn)
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
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Accept: " + computeAcceptKey(key) + "\r\n"
	if o.compress {
		resp += "Sec-WebSocket-Extensions: " + rawPMD + "\r\n"
	}
	b := []byte(resp + "\r\n")
	for _, f := range o.pipelined {
		b = append(b, f.encode(false)...)
	}
	_, err = nc.Write(b)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Time{}))
	return &rawPeer{t: t, conn: nc, br: br, client: false, results: results}
}

// runRawApp runs app on c, reports how it ended (recovering a panic) and
// closes c: at once with closeOnReturn, else once stop is closed at the
// end of the test.
func runRawApp(c *Conn, app func(c *Conn) error, results chan<- appResult, stop <-chan struct{}, closeOnReturn bool) {
	var res appResult
	defer func() {
		if v := recover(); v != nil {
			buf := make([]byte, 16<<10)
			res = appResult{panicked: v, stack: string(buf[:runtime.Stack(buf, false)])}
		}
		if closeOnReturn {
			c.Close()
		}
		results <- res
		if !closeOnReturn {
			<-stop
			c.Close()
		}
	}()
	res.err = app(c)
}

// echoWholeWith runs setup on the Conn, if set, then echoes.
func echoWholeWith(setup func(c *Conn)) func(c *Conn) error {
	return func(c *Conn) error {
		if setup != nil {
			setup(c)
		}
		return echoWhole(c)
	}
}

// echoSide starts a Conn under test that runs setup (if set) and then
// echoes every data message whole, opposite a raw peer.
type echoSide struct {
	name  string
	start func(t *testing.T, setup func(c *Conn)) *rawPeer
}

// echoSides run rules whose application is an echo on the two Conns of
// rawSides, running echoWhole, and on a server Conn served by an Engine,
// so that the event-driven path meets every rule the blocking one does.
var echoSides = []echoSide{
	{"server", func(t *testing.T, setup func(c *Conn)) *rawPeer { return serveRaw(t, echoWholeWith(setup)) }},
	{"client", func(t *testing.T, setup func(c *Conn)) *rawPeer { return dialRaw(t, echoWholeWith(setup)) }},
	{"engine", serveEngineEcho},
}

// serveEngineEcho serves a Conn from an Engine of its own opposite a raw
// client. The handler runs setup in OnOpen and echoes each message; the
// error OnClose gets is the application's result, as ReadMessage's is for
// echoWhole.
func serveEngineEcho(t *testing.T, setup func(c *Conn)) *rawPeer {
	t.Helper()
	e, err := NewEngine(EngineOptions{Loops: 1})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return serveRawWith(t, nil, rawOptions{serve: func(w http.ResponseWriter, r *http.Request, results chan<- appResult) {
		var u Upgrader
		if _, err := e.Upgrade(&u, w, r, nil, engineEcho{setup: setup, results: results}); err != nil {
			results <- appResult{err: err}
		}
	}})
}

// engineEcho is an EventHandler that runs setup (if set) when the
// connection opens, echoes each message unless quiet, and sends what ended
// the connection on results.
type engineEcho struct {
	setup   func(c *Conn)
	quiet   bool
	results chan<- appResult
}

func (h engineEcho) OnOpen(c *Conn) {
	if h.setup != nil {
		h.setup(c)
	}
}

func (h engineEcho) OnMessage(c *Conn, mt int, p []byte) {
	if !h.quiet {
		c.WriteMessage(mt, p)
	}
}

func (h engineEcho) OnClose(_ *Conn, err error) { h.results <- appResult{err: err} }

// rawFrame describes a frame for the raw peer to write, valid or not.
type rawFrame struct {
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

// rawF is a plain frame.
func rawF(op byte, fin bool, payload string) rawFrame {
	return rawFrame{op: op, fin: fin, payload: []byte(payload)}
}

// rawClose is a close frame with payload code and reason.
func rawClose(code int, reason string) rawFrame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return rawFrame{op: opClose, fin: true, payload: append(p, reason...)}
}

func (f rawFrame) encode(mask bool) []byte {
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
		b = append(b, rawKey[:]...)
	}
	start := len(b)
	b = append(b, f.payload...)
	if mask {
		for i := range b[start:] {
			b[start+i] ^= rawKey[i&3]
		}
	}
	return b
}

// send writes frames with one write call, so that the Conn finds them
// together.
func (p *rawPeer) send(frames ...rawFrame) {
	p.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, f.encode(p.client)...)
	}
	require.NoError(p.t, p.conn.SetWriteDeadline(time.Now().Add(testWait)))
	_, err := p.conn.Write(b)
	require.NoError(p.t, err)
}

// rawRecv is a frame read by the raw peer, unmasked.
type rawRecv struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	form    int // length encoding: 7, 16 or 64
	payload []byte
}

// readFrame reads one frame, waiting at most testWait.
func (p *rawPeer) readFrame() (rawRecv, error) {
	if err := p.conn.SetReadDeadline(time.Now().Add(testWait)); err != nil {
		return rawRecv{}, err
	}
	var h [2]byte
	if _, err := io.ReadFull(p.br, h[:]); err != nil {
		return rawRecv{}, err
	}
	f := rawRecv{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0xf, masked: h[1]&0x80 != 0, form: 7}
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
func (p *rawPeer) next() rawRecv {
	p.t.Helper()
	f, err := p.readFrame()
	require.NoError(p.t, err, "reading a frame from the Conn")
	require.Equal(p.t, !p.client, f.masked, "masking of a frame from the Conn")
	require.Zero(p.t, f.rsv, "RSV bits of a frame from the Conn")
	return f
}

// expectData reads a frame and checks that it is the whole message op,
// payload.
func (p *rawPeer) expectData(op byte, payload []byte) rawRecv {
	p.t.Helper()
	f := p.next()
	require.Equal(p.t, op, f.op, "opcode")
	require.True(p.t, f.fin, "FIN")
	require.True(p.t, bytes.Equal(payload, f.payload), "payload: got %d bytes %.40q, want %d bytes %.40q", len(f.payload), f.payload, len(payload), payload)
	return f
}

// expectClose reads a frame, checks that it is a close frame and returns its
// code, or CloseNoStatusReceived for an empty one.
func (p *rawPeer) expectClose() (code int, reason string) {
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
func (p *rawPeer) expectEOF() {
	p.t.Helper()
	require.NoError(p.t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
	b, err := p.br.ReadByte()
	require.ErrorIs(p.t, err, io.EOF, "want the TCP connection closed, read byte %#x", b)
}

// expectHandshakeEnd checks how the Conn ends a completed closing
// handshake: a server closes TCP at once (RFC 6455 section 7.1.1); a
// client leaves that to the server, so the raw server closes it, as it
// should.
func (p *rawPeer) expectHandshakeEnd() {
	p.t.Helper()
	if p.client {
		p.expectEOF()
		return
	}
	require.NoError(p.t, p.conn.Close())
}

// result returns what the application function returned; a panic in it
// fails the test.
func (p *rawPeer) result() error {
	p.t.Helper()
	select {
	case res := <-p.results:
		require.Nil(p.t, res.panicked, "panic in the application:\n%s", res.stack)
		return res.err
	case <-time.After(testWait):
		p.t.Fatal("the application function did not return")
		return nil
	}
}

// expectFailed checks the whole of a failed connection: a close frame with
// code, then TCP closed by the Conn, and the matching typed error from
// ReadMessage.
func (p *rawPeer) expectFailed(code int) {
	p.t.Helper()
	got, reason := p.expectClose()
	require.Equal(p.t, code, got, "close code (reason %q)", reason)
	p.expectEOF()
	checkFailErr(p.t, p.result(), code)
}

// checkFailErr checks that err is the error for a connection failed
// with code.
func checkFailErr(t *testing.T, err error, code int) {
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
func (p *rawPeer) expectClosedBy(code int, reason string) {
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
func (p *rawPeer) closeNormally() {
	p.t.Helper()
	p.send(rawClose(CloseNormalClosure, "done"))
	p.expectClosedBy(CloseNormalClosure, "done")
}

// write sends b, counting it as input to the Conn.
func (p *rawPeer) write(b []byte) error {
	p.conn.SetWriteDeadline(time.Now().Add(testWait))
	n, err := p.conn.Write(b)
	p.sent += int64(n)
	return err
}

// encode returns frames as the attacker sends them.
func (p *rawPeer) encode(frames ...rawFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.encode(p.client)...)
	}
	return b
}

// rawDrained is what the attacker read from the Conn.
type rawDrained struct {
	data  int64 // payload bytes of data frames
	pongs int
	// closeCode is the code of the close frame that ended the reading,
	// CloseNoStatusReceived for an empty one, or 0 when the connection
	// ended without one.
	closeCode int
	err       error // what ended the reading when no close frame did
}

// drain reads what the Conn sends, discarding data, until a close frame
// arrives or the connection ends, in a goroutine of its own.
func (p *rawPeer) drain() {
	p.drained = make(chan rawDrained, 1)
	go func() {
		var d rawDrained
		defer func() { p.drained <- d }()
		p.conn.SetReadDeadline(time.Now().Add(testWait))
		var h [14]byte
		for {
			if _, err := io.ReadFull(p.br, h[:2]); err != nil {
				d.err = err
				return
			}
			n := int64(h[1] & 0x7f)
			ext := 0
			switch n {
			case 126:
				ext = 2
			case 127:
				ext = 8
			}
			if h[1]&0x80 != 0 {
				ext += 4
			}
			if _, err := io.ReadFull(p.br, h[2:2+ext]); err != nil {
				d.err = err
				return
			}
			switch n {
			case 126:
				n = int64(binary.BigEndian.Uint16(h[2:]))
			case 127:
				n = int64(binary.BigEndian.Uint64(h[2:]))
			}
			op := h[0] & 0xf
			if op != opClose {
				if _, err := io.CopyN(io.Discard, p.br, n); err != nil {
					d.err = err
					return
				}
				switch op {
				case opPong:
					d.pongs++
				case opText, opBinary, opContinuation:
					d.data += n
				}
				continue
			}
			payload := make([]byte, n)
			if _, err := io.ReadFull(p.br, payload); err != nil {
				d.err = err
				return
			}
			if h[1]&0x80 != 0 {
				key := [4]byte(h[2+ext-4 : 2+ext])
				maskBytes(key, 0, payload)
			}
			d.closeCode = CloseNoStatusReceived
			if n >= 2 {
				d.closeCode = int(binary.BigEndian.Uint16(payload))
			}
			return
		}
	}()
}

// wait returns the application's outcome and what drain read.
func (p *rawPeer) wait() (appResult, rawDrained) {
	p.t.Helper()
	var res appResult
	select {
	case res = <-p.results:
	case <-time.After(testWait):
		buf := make([]byte, 1<<20)
		p.t.Fatalf("the application did not return; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
	var d rawDrained
	if p.drained != nil {
		select {
		case d = <-p.drained:
		case <-time.After(testWait):
			p.t.Fatal("the attacker's reader did not finish")
		}
	}
	return res, d
}
