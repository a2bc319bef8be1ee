package websocket

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// engineRecorder is an EventHandler that records what the Engine reports
// and, with echo set, echoes every message from the loop.
type engineRecorder struct {
	echo    bool
	onOpen  func(c *Conn)
	opened  chan *Conn
	closed  chan error
	mu      sync.Mutex
	msgs    int
	onClose func(c *Conn, err error)
}

func newEngineRecorder(echo bool) *engineRecorder {
	return &engineRecorder{echo: echo, opened: make(chan *Conn, 1024), closed: make(chan error, 1024)}
}

func (r *engineRecorder) OnOpen(c *Conn) {
	if r.onOpen != nil {
		r.onOpen(c)
	}
	r.opened <- c
}

func (r *engineRecorder) OnMessage(c *Conn, mt int, data []byte) {
	r.mu.Lock()
	r.msgs++
	r.mu.Unlock()
	if r.echo {
		c.WriteMessage(mt, data)
	}
}

func (r *engineRecorder) OnClose(c *Conn, err error) {
	if r.onClose != nil {
		r.onClose(c, err)
	}
	r.closed <- err
}

// startEngine serves an Engine on a test server whose handler returns
// once the connection is handed over, and returns its ws:// URL.
func startEngine(t *testing.T, opts EngineOptions, u *Upgrader, h EventHandler) (*Engine, string) {
	t.Helper()
	e, err := NewEngine(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.Upgrade(u, w, r, nil, h); err != nil {
			t.Logf("upgrade: %v", err)
		}
	}))
	t.Cleanup(func() {
		e.Close()
		srv.Close()
	})
	return e, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// wait receives from ch within testWait.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testWait):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestEngineEcho(t *testing.T) {
	rec := newEngineRecorder(true)
	_, url := startEngine(t, EngineOptions{Loops: 2}, &Upgrader{}, rec)
	sizes := []int{0, 1, 125, 126, 4095, 65535, 65536, 200_000, 1 << 20}
	for _, streamed := range []bool{false, true} {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("streamed=%v/%d", streamed, size), func(t *testing.T) {
				c, _, err := DefaultDialer.Dial(url, nil)
				require.NoError(t, err)
				defer c.Close()
				wait(t, rec.opened, "OnOpen")
				msg := bytes.Repeat([]byte("wsforge!"), size/8+1)[:size]
				for i := 0; i < 3; i++ {
					if streamed {
						// Small frames: the message spans frames and reads.
						w, err := c.NextWriter(BinaryMessage)
						require.NoError(t, err)
						for p := msg; len(p) > 0; {
							k := min(len(p), 1000)
							_, err := w.Write(p[:k])
							require.NoError(t, err)
							p = p[k:]
						}
						require.NoError(t, w.Close())
					} else {
						require.NoError(t, c.WriteMessage(TextMessage, msg))
					}
					c.SetReadDeadline(time.Now().Add(testWait))
					mt, got, err := c.ReadMessage()
					require.NoError(t, err)
					assert.Equal(t, map[bool]int{false: TextMessage, true: BinaryMessage}[streamed], mt)
					assert.True(t, bytes.Equal(msg, got), "echo of %d bytes differs", size)
				}
				require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
				var ce *CloseError
				require.ErrorAs(t, wait(t, rec.closed, "OnClose"), &ce)
				assert.Equal(t, CloseNormalClosure, ce.Code)
			})
		}
	}
}

// rawEngineConn opens a TCP connection to url, performs the handshake by
// hand and returns the connection with first written right after the
// request, in the same write (so the server gets it with the handshake).
func rawEngineConn(t *testing.T, url string, first []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(url, "ws://")
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + sampleKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_, err = nc.Write(append([]byte(req), first...))
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(testWait))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Equal(t, sampleAccept, resp.Header.Get("Sec-WebSocket-Accept"))
	return nc, br
}

// clientFrame is a masked client frame as the wire carries it.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	p := bytes.Clone(payload)
	maskBytes(key, 0, p)
	return append(appendFrameHeader(nil, fin, 0, op, len(p), true, key), p...)
}

// readServerFrame reads one unmasked frame from br.
func readServerFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	head := make([]byte, 2, maxFrameHeaderSize)
	_, err := ioReadFull(br, head)
	require.NoError(t, err)
	head = head[:frameHeaderLen(head[0], head[1])]
	_, err = ioReadFull(br, head[2:])
	require.NoError(t, err)
	h, _, perr := parseFrameHeader(head)
	require.Nil(t, perr)
	payload = make([]byte, h.length)
	_, err = ioReadFull(br, payload)
	require.NoError(t, err)
	return h.opcode, payload
}

func ioReadFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestEngineSplitAndPipelined hands the server a stream cut at every
// possible place: the first frames ride with the handshake request, then
// the rest goes one byte per write, so frame headers and control frames
// arrive in pieces and are joined across reads.
func TestEngineSplitAndPipelined(t *testing.T) {
	rec := newEngineRecorder(true)
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte("with the handshake"))...)
	stream = append(stream, clientFrame(false, opBinary, bytes.Repeat([]byte{1}, 300))...)
	stream = append(stream, clientFrame(true, opPing, []byte("ping inside a message"))...)
	stream = append(stream, clientFrame(false, opContinuation, nil)...)
	stream = append(stream, clientFrame(true, opContinuation, bytes.Repeat([]byte{2}, 70000))...)
	stream = append(stream, clientFrame(true, opText, []byte("last"))...)
	cut := len(clientFrame(true, opText, []byte("with the handshake"))) + 5
	nc, br := rawEngineConn(t, url, stream[:cut])
	nc.(*net.TCPConn).SetNoDelay(true)
	go func() {
		for i := cut; i < len(stream) && i < cut+2000; i++ {
			if _, err := nc.Write(stream[i : i+1]); err != nil {
				return
			}
		}
		nc.Write(stream[min(cut+2000, len(stream)):])
	}()
	op, p := readServerFrame(t, br)
	assert.Equal(t, byte(opText), op)
	assert.Equal(t, "with the handshake", string(p))
	op, p = readServerFrame(t, br)
	assert.Equal(t, byte(opPong), op)
	assert.Equal(t, "ping inside a message", string(p))
	op, p = readServerFrame(t, br)
	assert.Equal(t, byte(opBinary), op)
	assert.Equal(t, append(bytes.Repeat([]byte{1}, 300), bytes.Repeat([]byte{2}, 70000)...), p)
	op, p = readServerFrame(t, br)
	assert.Equal(t, byte(opText), op)
	assert.Equal(t, "last", string(p))
}

// TestEngineFailures checks that bad input gets the RFC's close code and
// OnClose the error, as with the blocking Conn.
func TestEngineFailures(t *testing.T) {
	tests := []struct {
		name   string
		limit  int64
		frames [][]byte
		code   int
		check  func(t *testing.T, err error)
	}{
		{"reserved opcode", 0, [][]byte{clientFrame(true, 3, nil)}, CloseProtocolError, func(t *testing.T, err error) {
			var pe *ProtocolError
			assert.ErrorAs(t, err, &pe)
		}},
		{"unmasked client frame", 0, [][]byte{appendFrameHeader(nil, true, 0, opText, 0, false, [4]byte{})}, CloseProtocolError, nil},
		{"invalid UTF-8", 0, [][]byte{clientFrame(true, opText, []byte{0xff, 0xfe})}, CloseInvalidFramePayloadData, nil},
		{"invalid UTF-8 across fragments", 0, [][]byte{clientFrame(false, opText, []byte{0xe2, 0x82}), clientFrame(true, opContinuation, []byte{0x28})}, CloseInvalidFramePayloadData, nil},
		{"continuation without a message", 0, [][]byte{clientFrame(true, opContinuation, []byte("x"))}, CloseProtocolError, nil},
		{"over the read limit", 1000, [][]byte{clientFrame(true, opBinary, make([]byte, 1001))}, CloseMessageTooBig, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, ErrReadLimit)
		}},
		{"fragments over the read limit", 1000, [][]byte{clientFrame(false, opBinary, make([]byte, 600)), clientFrame(true, opContinuation, make([]byte, 600))}, CloseMessageTooBig, nil},
		{"bad close code", 0, [][]byte{clientFrame(true, opClose, []byte{0x03, 0xe7})}, CloseProtocolError, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newEngineRecorder(true)
			rec.onOpen = func(c *Conn) { c.SetReadLimit(tt.limit) }
			_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
			nc, br := rawEngineConn(t, url, nil)
			for _, f := range tt.frames {
				_, err := nc.Write(f)
				require.NoError(t, err)
			}
			op, p := readServerFrame(t, br)
			require.Equal(t, byte(opClose), op)
			code, _, perr := parseClosePayload(p)
			require.Nil(t, perr)
			assert.Equal(t, tt.code, code)
			err := wait(t, rec.closed, "OnClose")
			require.Error(t, err)
			if tt.check != nil {
				tt.check(t, err)
			}
			// The server closed TCP.
			_, rerr := br.ReadByte()
			assert.Error(t, rerr)
		})
	}
}

func TestEnginePeerVanishes(t *testing.T) {
	rec := newEngineRecorder(true)
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	nc, _ := rawEngineConn(t, url, clientFrame(false, opText, []byte("half a mess")))
	wait(t, rec.opened, "OnOpen")
	nc.Close()
	var ce *CloseError
	require.ErrorAs(t, wait(t, rec.closed, "OnClose"), &ce)
	assert.Equal(t, CloseAbnormalClosure, ce.Code)
}

// TestEngineWritesFromAnyGoroutine writes from goroutines of the
// application while the loop echoes; every message arrives whole.
func TestEngineWritesFromAnyGoroutine(t *testing.T) {
	rec := newEngineRecorder(true)
	const writers, each = 4, 200
	var wg sync.WaitGroup
	rec.onOpen = func(c *Conn) {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := c.WriteMessage(TextMessage, []byte(fmt.Sprintf("push %d %d %s", w, i, strings.Repeat("x", i*50)))); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			}(w)
		}
	}
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	const echoes = 100
	go func() {
		for i := 0; i < echoes; i++ {
			c.WriteMessage(BinaryMessage, []byte(fmt.Sprintf("echo %d", i)))
		}
	}()
	pushes, echoed := 0, 0
	c.SetReadDeadline(time.Now().Add(testWait))
	for pushes+echoed < writers*each+echoes {
		mt, p, err := c.ReadMessage()
		require.NoError(t, err)
		switch {
		case mt == TextMessage && strings.HasPrefix(string(p), "push "):
			var w, i int
			_, err := fmt.Sscanf(string(p), "push %d %d", &w, &i)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("push %d %d %s", w, i, strings.Repeat("x", i*50)), string(p))
			pushes++
		case mt == BinaryMessage:
			require.Equal(t, fmt.Sprintf("echo %d", echoed), string(p))
			echoed++
		default:
			t.Fatalf("unexpected message %q", p)
		}
	}
	wg.Wait()
}

func TestEngineManyConnections(t *testing.T) {
	rec := newEngineRecorder(true)
	_, url := startEngine(t, EngineOptions{}, &Upgrader{}, rec)
	const conns, msgs = 200, 10
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		go func(i int) {
			errs <- func() error {
				c, _, err := DefaultDialer.Dial(url, nil)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(testWait))
				for j := 0; j < msgs; j++ {
					want := fmt.Sprintf("conn %d message %d", i, j)
					if err := c.WriteMessage(TextMessage, []byte(want)); err != nil {
						return err
					}
					_, p, err := c.ReadMessage()
					if err != nil {
						return err
					}
					if string(p) != want {
						return fmt.Errorf("got %q, want %q", p, want)
					}
				}
				return c.CloseGracefully(CloseNormalClosure, "", testWait)
			}()
		}(i)
	}
	for i := 0; i < conns; i++ {
		require.NoError(t, wait(t, errs, "a client"))
	}
	for i := 0; i < conns; i++ {
		wait(t, rec.closed, "OnClose")
	}
	rec.mu.Lock()
	assert.Equal(t, conns*msgs, rec.msgs)
	rec.mu.Unlock()
}

// TestEngineClose stops an Engine with connections open: each client gets
// close 1001, OnClose gets ErrEngineClosed, and the Engine's goroutines end.
func TestEngineClose(t *testing.T) {
	before := runtime.NumGoroutine()
	rec := newEngineRecorder(true)
	e, url := startEngine(t, EngineOptions{Loops: 2}, &Upgrader{}, rec)
	var clients []*Conn
	for i := 0; i < 5; i++ {
		c, _, err := DefaultDialer.Dial(url, nil)
		require.NoError(t, err)
		defer c.Close()
		clients = append(clients, c)
		wait(t, rec.opened, "OnOpen")
	}
	require.NoError(t, e.Close())
	for range clients {
		assert.ErrorIs(t, wait(t, rec.closed, "OnClose"), ErrEngineClosed)
	}
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(testWait))
		_, _, err := c.ReadMessage()
		var ce *CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, CloseGoingAway, ce.Code)
	}
	_, err := e.Upgrade(&Upgrader{}, httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), nil, rec)
	assert.ErrorIs(t, err, ErrEngineClosed)
	deadline := time.Now().Add(testWait)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before+2, "the Engine's goroutines should have ended")
}

func TestEngineReadDeadline(t *testing.T) {
	rec := newEngineRecorder(true)
	rec.onOpen = func(c *Conn) { c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) }
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	err = wait(t, rec.closed, "OnClose")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
}

func TestEngineCloseFromHandler(t *testing.T) {
	rec := newEngineRecorder(false)
	var once sync.Once
	handler := &engineFuncs{rec: rec, onMessage: func(c *Conn, mt int, p []byte) {
		once.Do(func() {
			c.WriteMessage(mt, []byte("bye"))
			c.Close()
		})
	}}
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, handler)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.WriteMessage(TextMessage, []byte("hi")))
	c.SetReadDeadline(time.Now().Add(testWait))
	_, p, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "bye", string(p))
	_, _, err = c.ReadMessage()
	assert.Error(t, err)
	assert.ErrorIs(t, wait(t, rec.closed, "OnClose"), net.ErrClosed)
}

// engineFuncs is an EventHandler whose OnMessage is a function, recording
// the rest in rec.
type engineFuncs struct {
	rec       *engineRecorder
	onMessage func(c *Conn, mt int, p []byte)
}

func (h *engineFuncs) OnOpen(c *Conn)             { h.rec.OnOpen(c) }
func (h *engineFuncs) OnClose(c *Conn, err error) { h.rec.OnClose(c, err) }
func (h *engineFuncs) OnMessage(c *Conn, mt int, p []byte) {
	h.onMessage(c, mt, p)
}

// TestEngineCompression echoes compressed messages, whole and in small
// frames, with and without context takeover.
func TestEngineCompression(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			rec := newEngineRecorder(true)
			opts := CompressionOptions{}
			if !takeover {
				opts.ServerNoContextTakeover, opts.ClientNoContextTakeover = true, true
			}
			_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{EnableCompression: true, Compression: opts}, rec)
			c, _, err := (&Dialer{EnableCompression: true}).Dial(url, nil)
			require.NoError(t, err)
			defer c.Close()
			require.Contains(t, c.Extensions(), "permessage-deflate")
			c.SetReadDeadline(time.Now().Add(testWait))
			for i, size := range []int{0, 10, 1000, 70_000, 1 << 20} {
				msg := []byte(strings.Repeat(fmt.Sprintf("message %d, ", i), size/10+1)[:size])
				if i%2 == 0 {
					require.NoError(t, c.WriteMessage(TextMessage, msg))
				} else {
					w, err := c.NextWriter(TextMessage)
					require.NoError(t, err)
					writeChunks(t, w, msg, 700)
					require.NoError(t, w.Close())
				}
				_, got, err := c.ReadMessage()
				require.NoError(t, err)
				require.True(t, bytes.Equal(msg, got), "echo of message %d (%d bytes) differs", i, size)
			}
		})
	}
}

// writeChunks writes msg to w in pieces of at most n bytes.
func writeChunks(t *testing.T, w io.Writer, msg []byte, n int) {
	t.Helper()
	for p := msg; len(p) > 0; p = p[min(n, len(p)):] {
		_, err := w.Write(p[:min(n, len(p))])
		require.NoError(t, err)
	}
}

// TestEngineCompressedHostile sends compressed messages that must fail:
// a bomb that inflates past the read limit, and data that does not
// inflate.
func TestEngineCompressedHostile(t *testing.T) {
	var bomb bytes.Buffer
	fw, err := stdflate.NewWriter(&bomb, stdflate.BestCompression)
	require.NoError(t, err)
	_, err = fw.Write(make([]byte, 16<<20))
	require.NoError(t, err)
	require.NoError(t, fw.Flush())
	tests := []struct {
		name    string
		payload []byte
		code    int
		err     error
	}{
		{"bomb past the read limit", bytes.TrimSuffix(bomb.Bytes(), []byte{0, 0, 0xff, 0xff}), CloseMessageTooBig, ErrReadLimit},
		{"corrupt data", []byte{0xff, 0xff, 0xff, 0xff}, CloseInvalidFramePayloadData, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newEngineRecorder(true)
			rec.onOpen = func(c *Conn) { c.SetReadLimit(1 << 20) }
			_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{EnableCompression: true}, rec)
			c, _, err := (&Dialer{EnableCompression: true}).Dial(url, nil)
			require.NoError(t, err)
			defer c.Close()
			key := [4]byte{1, 2, 3, 4}
			p := bytes.Clone(tt.payload)
			maskBytes(key, 0, p)
			frame := append(appendFrameHeader(nil, true, rsv1Bit, opBinary, len(p), true, key), p...)
			_, err = c.NetConn().Write(frame)
			require.NoError(t, err)
			c.SetReadDeadline(time.Now().Add(testWait))
			_, _, err = c.ReadMessage()
			var ce *CloseError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.code, ce.Code)
			oerr := wait(t, rec.closed, "OnClose")
			if tt.err != nil {
				assert.ErrorIs(t, oerr, tt.err)
			}
		})
	}
}

// startEngineServe is startEngine with the Engine's own listener: the
// handshake is read in its loops (on Linux), not by net/http.
func startEngineServe(t *testing.T, opts EngineOptions, u *Upgrader, h EventHandler) (*Engine, string) {
	t.Helper()
	e, err := NewEngine(opts)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln, u, h) }()
	t.Cleanup(func() {
		e.Close()
		ln.Close()
		wait(t, served, "Serve to return")
	})
	return e, "ws://" + ln.Addr().String()
}

func TestEngineServe(t *testing.T) {
	rec := newEngineRecorder(true)
	u := &Upgrader{Subprotocols: []string{"chat"}, EnableCompression: true}
	_, url := startEngineServe(t, EngineOptions{Loops: 2}, u, rec)
	for _, compress := range []bool{false, true} {
		d := &Dialer{Subprotocols: []string{"chat"}, EnableCompression: compress}
		c, resp, err := d.Dial(url+"/any/path?x=1", nil)
		require.NoError(t, err)
		assert.Equal(t, "chat", c.Subprotocol())
		assert.Equal(t, compress, strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate"))
		c.SetReadDeadline(time.Now().Add(testWait))
		for _, size := range []int{0, 100, 70_000, 1 << 20} {
			msg := bytes.Repeat([]byte{'a' + byte(size%26)}, size)
			require.NoError(t, c.WriteMessage(BinaryMessage, msg))
			_, got, err := c.ReadMessage()
			require.NoError(t, err)
			require.True(t, bytes.Equal(msg, got), "echo of %d bytes", size)
		}
		require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
		var ce *CloseError
		require.ErrorAs(t, wait(t, rec.closed, "OnClose"), &ce)
		assert.Equal(t, CloseNormalClosure, ce.Code)
	}
	// Frames sent with the request are read after it.
	nc, br := rawEngineConn(t, url, clientFrame(true, opText, []byte("right behind the request")))
	op, p := readServerFrame(t, br)
	assert.Equal(t, byte(opText), op)
	assert.Equal(t, "right behind the request", string(p))
	nc.Close()
}

// TestEngineServeRefusals sends requests that are not acceptable upgrades
// to the Engine's own listener: each gets the Upgrader's HTTP error and the
// connection is closed, with no Conn and no event.
func TestEngineServeRefusals(t *testing.T) {
	rec := newEngineRecorder(true)
	u := &Upgrader{HandshakeTimeout: 200 * time.Millisecond}
	_, url := startEngineServe(t, EngineOptions{Loops: 1}, u, rec)
	addr := strings.TrimPrefix(url, "ws://")
	upgrade := "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"not an upgrade", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", http.StatusBadRequest},
		{"no key", "GET / HTTP/1.1\r\nHost: x\r\n" + upgrade + "\r\n", http.StatusBadRequest},
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\n" + upgrade + "Sec-WebSocket-Key: " + sampleKey + "\r\n\r\n", http.StatusMethodNotAllowed},
		{"cross origin", "GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere\r\n" + upgrade + "Sec-WebSocket-Key: " + sampleKey + "\r\n\r\n", http.StatusForbidden},
		{"bad version", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: " + sampleKey + "\r\n\r\n", http.StatusUpgradeRequired},
		{"not HTTP", "HELLO\r\n\r\n", http.StatusBadRequest},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(testWait))
			go nc.Write([]byte(tt.request)) // the server may answer and close before it has all
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			require.NoError(t, err)
			assert.Equal(t, tt.status, resp.StatusCode)
			_, err = io.Copy(io.Discard, resp.Body)
			require.NoError(t, err)
			// The server closed the connection.
			_, err = nc.Read(make([]byte, 1))
			assert.Error(t, err)
		})
	}
	t.Run("request that never ends", func(t *testing.T) {
		nc, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer nc.Close()
		_, err = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		require.NoError(t, err)
		nc.SetReadDeadline(time.Now().Add(testWait))
		// HandshakeTimeout ends it: the read ends with EOF (or a reset),
		// not the test's hang guard.
		_, err = nc.Read(make([]byte, 1))
		var ne net.Error
		require.Error(t, err)
		assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the server should have closed the connection: %v", err)
	})
	select {
	case c := <-rec.opened:
		t.Fatalf("a refused request opened a connection: %v", c.RemoteAddr())
	default:
	}
}

// TestEnginePings: with PingInterval set, a peer that answers the Engine's
// pings stays; one that answers nothing is sent a ping, then close 1011,
// and OnClose gets ErrKeepAliveTimeout.
func TestEnginePings(t *testing.T) {
	// Long enough that a loaded machine answers a ping within one.
	const interval = 300 * time.Millisecond
	start := func(t *testing.T) (*engineRecorder, string) {
		rec := newEngineRecorder(false)
		_, url := startEngine(t, EngineOptions{Loops: 1, PingInterval: interval}, &Upgrader{}, rec)
		return rec, url
	}

	t.Run("answered", func(t *testing.T) {
		rec, url := start(t)
		c, _, err := DefaultDialer.Dial(url, nil)
		require.NoError(t, err)
		defer c.Close()
		wait(t, rec.opened, "OnOpen")
		pings := make(chan struct{}, 16)
		c.SetPingHandler(func(s string) error {
			pings <- struct{}{}
			return c.WriteControl(PongMessage, []byte(s), time.Now().Add(testWait))
		})
		go c.ReadMessage()
		for i := 0; i < 3; i++ {
			wait(t, pings, "a ping")
		}
		select {
		case err := <-rec.closed:
			t.Fatalf("closed although it answered: %v", err)
		default:
		}
	})

	t.Run("silent after our close", func(t *testing.T) {
		// The application starts the closing handshake and the peer
		// never answers: with no ping possible after the close frame,
		// liveness still ends the connection.
		rec, url := start(t)
		rec.onOpen = func(c *Conn) {
			c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait))
		}
		rawEngineConn(t, url, nil)
		wait(t, rec.opened, "OnOpen")
		assert.ErrorIs(t, wait(t, rec.closed, "OnClose"), ErrKeepAliveTimeout)
	})

	t.Run("silent", func(t *testing.T) {
		rec, url := start(t)
		nc, br := rawEngineConn(t, url, nil)
		wait(t, rec.opened, "OnOpen")
		nc.SetReadDeadline(time.Now().Add(testWait))
		op, _ := readServerFrame(t, br)
		assert.Equal(t, byte(opPing), op)
		op, p := readServerFrame(t, br)
		require.Equal(t, byte(opClose), op)
		code, reason, perr := parseClosePayload(p)
		require.Nil(t, perr)
		assert.Equal(t, CloseInternalServerErr, code)
		assert.Equal(t, keepAliveReason, reason)
		assert.ErrorIs(t, wait(t, rec.closed, "OnClose"), ErrKeepAliveTimeout)
	})
}
