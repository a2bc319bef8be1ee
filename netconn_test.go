package websocket

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// netConnPair returns NetConns over both ends of a connection, client's
// of type ct and server's of type st, both with ctx. When the test ends
// both Conns are closed and the NetConns' reading goroutines must have
// returned.
func netConnPair(t testing.TB, ctx context.Context, ct, st int) (cnc, snc *netConn) {
	t.Helper()
	client, server := conns(t)
	cnc = NetConn(ctx, client, ct).(*netConn)
	snc = NetConn(ctx, server, st).(*netConn)
	t.Cleanup(func() {
		client.Close()
		server.Close()
		for _, nc := range []*netConn{cnc, snc} {
			nc.rlock <- struct{}{}
			started := nc.started
			<-nc.rlock
			if started {
				select {
				case <-nc.rdone:
				case <-time.After(testWait):
					t.Error("a NetConn's reading goroutine outlived its Conn")
				}
			}
		}
	})
	return cnc, snc
}

// conns returns both ends of a connection over loopback TCP, closed when
// the test ends. Unlike newPair's, these have no read deadline: a NetConn
// has its own.
func conns(t testing.TB) (client, server *Conn) {
	t.Helper()
	servers := make(chan *Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
		}
		servers <- c
	}))
	t.Cleanup(srv.Close)
	client, _, err := DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	require.NoError(t, err)
	server = <-servers
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// readN reads exactly n bytes from r in Reads of at most chunk bytes.
func readN(t *testing.T, r io.Reader, n, chunk int) []byte {
	t.Helper()
	got := make([]byte, 0, n)
	buf := make([]byte, chunk)
	for len(got) < n {
		k, err := r.Read(buf[:min(chunk, n-len(got))])
		require.NoError(t, err)
		require.Positive(t, k, "a Read returned 0, nil")
		got = append(got, buf[:k]...)
	}
	return got
}

func TestNetConnStream(t *testing.T) {
	big := make([]byte, 1<<20+17)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	tests := []struct {
		name   string
		writes [][]byte
		chunk  int // Read size
	}{
		{"across messages", [][]byte{[]byte("hello, "), []byte("wor"), []byte("ld")}, 64},
		{"empty messages skipped", [][]byte{[]byte("a"), {}, {}, []byte("b"), nil, []byte("c")}, 64},
		{"one byte reads", [][]byte{[]byte("abc"), []byte("defgh")}, 1},
		{"small reads of a big message", [][]byte{big[:100<<10+17]}, 7},
		{"large reads of a big message", [][]byte{big}, 100 << 10},
		{"big messages back to back", [][]byte{big[:70000], big[:5], big[:200000]}, 4096},
	}
	for _, mt := range []int{TextMessage, BinaryMessage} {
		for _, fromClient := range []bool{true, false} {
			for _, tt := range tests {
				name := fmt.Sprintf("%s/client->server=%v/%s", messageTypeName(mt), fromClient, tt.name)
				t.Run(name, func(t *testing.T) {
					cnc, snc := netConnPair(t, context.Background(), mt, mt)
					w, r := cnc, snc
					if !fromClient {
						w, r = snc, cnc
					}
					var want []byte
					for _, p := range tt.writes {
						want = append(want, p...)
					}
					written := make(chan error, 1)
					go func() {
						for _, p := range tt.writes {
							n, err := w.Write(p)
							if err != nil {
								written <- err
								return
							}
							if n != len(p) {
								written <- fmt.Errorf("Write returned %d, want %d", n, len(p))
								return
							}
						}
						written <- nil
					}()
					got := readN(t, r, len(want), tt.chunk)
					require.True(t, bytes.Equal(want, got), "stream differs")
					require.NoError(t, <-written)
				})
			}
		}
	}
}

// A message of the other data type fails the connection with 1003, with
// an error that says what happened on the reading side and a *CloseError
// on the other.
func TestNetConnMessageType(t *testing.T) {
	for _, tt := range []struct{ send, want int }{
		{TextMessage, BinaryMessage},
		{BinaryMessage, TextMessage},
	} {
		t.Run(messageTypeName(tt.send)+" on "+messageTypeName(tt.want), func(t *testing.T) {
			cnc, snc := netConnPair(t, context.Background(), tt.send, tt.want)
			_, err := cnc.Write([]byte("hi"))
			require.NoError(t, err)

			_, err = snc.Read(make([]byte, 10))
			var mte *MessageTypeError
			require.ErrorAs(t, err, &mte)
			assert.Equal(t, MessageTypeError{Want: tt.want, Got: tt.send}, *mte)
			assert.Equal(t, "websocket: NetConn read: received a "+messageTypeName(tt.send)+
				" message, expected "+messageTypeName(tt.want), err.Error())
			_, again := snc.Read(make([]byte, 10))
			assert.Equal(t, err, again, "the error is permanent")
			_, err = snc.Write([]byte("x"))
			assert.Error(t, err, "the connection was failed")

			_, err = cnc.Read(make([]byte, 10))
			assert.True(t, IsCloseError(err, CloseUnsupportedData), "peer's read: %v", err)
			require.NoError(t, snc.Close(), "Close of a failed connection")
		})
	}
}

func TestNetConnInvalidUTF8Write(t *testing.T) {
	cnc, snc := netConnPair(t, context.Background(), TextMessage, TextMessage)
	n, err := cnc.Write([]byte("ok\xff"))
	assert.Zero(t, n)
	require.EqualError(t, err, "websocket: NetConn write: invalid UTF-8 in a text message")
	_, err = cnc.Write([]byte("h\u00e9"))
	require.NoError(t, err, "the connection is still usable")
	assert.Equal(t, "h\u00e9", string(readN(t, snc, 3, 10)))
}

func TestNetConnReadDeadline(t *testing.T) {
	t.Run("passes while waiting", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		require.NoError(t, snc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := snc.Read(make([]byte, 10))
		checkTimeout(t, err)

		// The stream is intact: moving the deadline lets reads go on.
		require.NoError(t, snc.SetReadDeadline(time.Time{}))
		_, err = cnc.Write([]byte("after"))
		require.NoError(t, err)
		assert.Equal(t, "after", string(readN(t, snc, 5, 10)))
	})
	t.Run("past deadline interrupts a blocked Read", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		errs := make(chan error, 1)
		go func() {
			_, err := snc.Read(make([]byte, 10))
			errs <- err
		}()
		require.NoError(t, snc.SetReadDeadline(time.Now().Add(-time.Second)))
		select {
		case err := <-errs:
			checkTimeout(t, err)
		case <-time.After(testWait):
			t.Fatal("Read not interrupted by a past deadline")
		}
		require.NoError(t, snc.SetReadDeadline(time.Time{}))
		_, err := cnc.Write([]byte("x"))
		require.NoError(t, err)
		assert.Equal(t, "x", string(readN(t, snc, 1, 10)))
	})
	t.Run("passed deadline wins over buffered data", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		_, err := cnc.Write([]byte("abcdef"))
		require.NoError(t, err)
		assert.Equal(t, "ab", string(readN(t, snc, 2, 2)))
		require.NoError(t, snc.SetReadDeadline(time.Now().Add(-time.Second)))
		_, err = snc.Read(make([]byte, 10))
		checkTimeout(t, err)
		require.NoError(t, snc.SetDeadline(time.Time{}))
		assert.Equal(t, "cdef", string(readN(t, snc, 4, 10)))
	})
}

// checkTimeout checks that err is a NetConn's read timeout, in every form
// callers test for.
func checkTimeout(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	ne, ok := err.(net.Error)
	require.True(t, ok, "%T is not a net.Error", err)
	assert.True(t, ne.Timeout())
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.True(t, strings.HasPrefix(err.Error(), "websocket: NetConn read: "), err.Error())
}

// A Write blocked on a peer that does not read ends when a deadline set
// meanwhile passes, and the write side stays failed.
func TestNetConnWriteDeadline(t *testing.T) {
	_, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
	big := make([]byte, 64<<20) // far more than the sockets buffer
	started := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		close(started)
		_, err := snc.Write(big)
		errs <- err
	}()
	<-started
	require.NoError(t, snc.SetWriteDeadline(time.Now()))
	var err error
	select {
	case err = <-errs:
	case <-time.After(testWait):
		t.Fatal("Write not interrupted by its deadline")
	}
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "%v", err)
	assert.True(t, strings.HasPrefix(err.Error(), "websocket: NetConn write: "), err.Error())

	require.NoError(t, snc.SetWriteDeadline(time.Time{}))
	_, err = snc.Write([]byte("x"))
	assert.Error(t, err, "a Write that timed out while sending breaks the write side")
}

// Close runs the closing handshake with 1000: the peer's Conn sees
// CloseNormalClosure and its NetConn reads io.EOF.
func TestNetConnClose(t *testing.T) {
	for _, tt := range []struct {
		name       string
		fromClient bool
		blocked    bool // a Read of the closing side waits meanwhile
	}{
		{"client closes", true, false},
		{"server closes", false, false},
		{"client closes while reading", true, true},
		{"server closes while reading", false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
			closer, peer := cnc, snc
			if !tt.fromClient {
				closer, peer = snc, cnc
			}
			codes := make(chan int, 1)
			peer.c.SetCloseHandler(func(code int, text string) error {
				codes <- code
				return peer.c.defaultCloseHandler(code, text)
			})
			_, err := closer.Write([]byte("last words"))
			require.NoError(t, err)
			var blocked chan error
			if tt.blocked {
				blocked = make(chan error, 1)
				go func() {
					_, err := closer.Read(make([]byte, 1))
					blocked <- err
				}()
			}
			peerRead := make(chan error, 1)
			go func() {
				got, err := io.ReadAll(peer)
				if err == nil && string(got) != "last words" {
					err = fmt.Errorf("read %q", got)
				}
				peerRead <- err
			}()

			require.NoError(t, closer.Close(), "the peer answered the close")
			assert.Equal(t, CloseNormalClosure, <-codes)
			require.NoError(t, <-peerRead, "the peer reads everything, then io.EOF")
			if tt.blocked {
				assert.ErrorIs(t, <-blocked, net.ErrClosed)
			}

			_, err = closer.Read(make([]byte, 1))
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.EqualError(t, err, "websocket: NetConn read: use of closed network connection")
			_, err = closer.Write([]byte("x"))
			assert.ErrorIs(t, err, net.ErrClosed)
			assert.ErrorIs(t, closer.Close(), net.ErrClosed, "second Close")
			_, err = peer.Read(make([]byte, 1))
			assert.Equal(t, io.EOF, err, "io.EOF stays")
			assert.NoError(t, peer.Close(), "Close after the peer closed")
		})
	}
}

// Other close codes are errors, not the stream's end.
func TestNetConnPeerCloseCodes(t *testing.T) {
	for _, tt := range []struct {
		payload []byte
		eof     bool
	}{
		{FormatCloseMessage(CloseNormalClosure, "bye"), true},
		{nil, true}, // 1005: no code, as a browser's close()
		{FormatCloseMessage(CloseGoingAway, ""), false},
		{FormatCloseMessage(CloseInternalServerErr, "oops"), false},
	} {
		t.Run(fmt.Sprint(tt.payload), func(t *testing.T) {
			cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
			require.NoError(t, snc.c.WriteControl(CloseMessage, tt.payload, time.Now().Add(testWait)))
			_, err := cnc.Read(make([]byte, 1))
			if tt.eof {
				assert.Equal(t, io.EOF, err)
				return
			}
			var ce *CloseError
			require.ErrorAs(t, err, &ce)
			code, _, _ := parseClosePayload(tt.payload)
			assert.Equal(t, code, ce.Code)
			assert.True(t, strings.HasPrefix(err.Error(), "websocket: NetConn read: close "), err.Error())
		})
	}
}

func TestNetConnContext(t *testing.T) {
	t.Run("cancel while reading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		client, server := conns(t)
		cnc := NetConn(ctx, client, BinaryMessage)
		peer := NetConn(context.Background(), server, BinaryMessage)
		reads := make(chan error, 1)
		go func() {
			_, err := cnc.Read(make([]byte, 1))
			reads <- err
		}()
		cancel()
		err := <-reads
		assert.ErrorIs(t, err, context.Canceled)
		assert.EqualError(t, err, "websocket: NetConn read: context canceled")
		_, err = cnc.Write([]byte("x"))
		assert.ErrorIs(t, err, context.Canceled)
		_, err = peer.Read(make([]byte, 1))
		assert.True(t, IsCloseError(err, CloseGoingAway), "peer's read: %v", err)
		assert.NoError(t, cnc.Close(), "Close after ctx ended the connection")
		assert.ErrorIs(t, cnc.Close(), net.ErrClosed)
	})
	t.Run("already done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		cnc, _ := netConnPair(t, ctx, BinaryMessage, BinaryMessage)
		// The failure runs on another goroutine: a Read sees it at the
		// latest when it closes the Conn.
		_, err := cnc.Read(make([]byte, 1))
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("Close stops watching", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cnc, snc := netConnPair(t, ctx, BinaryMessage, BinaryMessage)
		go io.Copy(io.Discard, snc)
		require.NoError(t, cnc.Close())
		assert.False(t, cnc.stopCtx(), "the AfterFunc was still registered")
	})
}

// Reads and Writes run at once on both ends (an echo), and Writes from
// several goroutines each arrive whole.
func TestNetConnConcurrent(t *testing.T) {
	t.Run("full duplex echo", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		go io.Copy(snc, snc)
		data := make([]byte, 4<<20)
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		written := make(chan error, 1)
		go func() {
			for p := data; len(p) > 0; {
				k := min(len(p), 1+rand.IntN(100000))
				if _, err := cnc.Write(p[:k]); err != nil {
					written <- err
					return
				}
				p = p[k:]
			}
			written <- nil
		}()
		got := readN(t, cnc, len(data), 50000)
		require.NoError(t, <-written)
		require.True(t, bytes.Equal(data, got))
	})
	t.Run("concurrent writers", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		const writers, records, size = 4, 500, 64
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := bytes.Repeat([]byte{byte(w)}, size)
				for i := range records {
					rec[1], rec[2] = byte(i), byte(i>>8)
					if _, err := cnc.Write(rec); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		// Each record is one message: it arrives whole, and each
		// writer's in the order written.
		next := make([]int, writers)
		buf := make([]byte, size)
		for range writers * records {
			_, err := io.ReadFull(snc, buf)
			require.NoError(t, err)
			w := int(buf[0])
			require.Less(t, w, writers)
			require.Equal(t, bytes.Repeat(buf[:1], size-3), buf[3:], "torn record")
			require.Equal(t, next[w], int(buf[1])|int(buf[2])<<8, "writer %d out of order", w)
			next[w]++
		}
		wg.Wait()
	})
	t.Run("readers take turns", func(t *testing.T) {
		cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
		data := bytes.Repeat([]byte("x"), 1<<20)
		go cnc.Write(data)
		var total atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1000)
				for {
					n, err := snc.Read(buf)
					if err != nil {
						assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
						return
					}
					if !bytes.Equal(buf[:n], data[:n]) {
						t.Error("wrong bytes")
					}
					if total.Add(int64(n)) == int64(len(data)) {
						snc.SetReadDeadline(time.Now()) // release the others
					}
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, int64(len(data)), total.Load())
	})
}

// net/rpc, a real protocol, through NetConns: gob on a binary NetConn,
// JSON-RPC on a text one; the client calls from several goroutines at
// once.
type netConnArith struct{}

func (netConnArith) Mul(args [2]int, reply *int) error { *reply = args[0] * args[1]; return nil }

func (netConnArith) Echo(s string, reply *string) error { *reply = s; return nil }

func TestNetConnRPC(t *testing.T) {
	for _, tt := range []struct {
		mt     int
		server func(*rpc.Server, io.ReadWriteCloser)
		client func(io.ReadWriteCloser) *rpc.Client
	}{
		{BinaryMessage, (*rpc.Server).ServeConn, rpc.NewClient},
		{TextMessage, func(s *rpc.Server, c io.ReadWriteCloser) { s.ServeCodec(jsonrpc.NewServerCodec(c)) }, jsonrpc.NewClient},
	} {
		t.Run(messageTypeName(tt.mt), func(t *testing.T) {
			cnc, snc := netConnPair(t, context.Background(), tt.mt, tt.mt)
			srv := rpc.NewServer()
			require.NoError(t, srv.RegisterName("Arith", netConnArith{}))
			served := make(chan struct{})
			go func() {
				defer close(served)
				tt.server(srv, snc)
			}()
			client := tt.client(cnc)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						var got int
						if err := client.Call("Arith.Mul", [2]int{g, i}, &got); err != nil {
							t.Error(err)
							return
						}
						if got != g*i {
							t.Errorf("%d*%d = %d", g, i, got)
						}
					}
				}()
			}
			wg.Wait()
			long := strings.Repeat("long argument \u00e9 ", 20000)
			var echo string
			require.NoError(t, client.Call("Arith.Echo", long, &echo))
			assert.Equal(t, long, echo)
			// The client's Close closes its NetConn: the server reads
			// io.EOF and returns.
			require.NoError(t, client.Close())
			select {
			case <-served:
			case <-time.After(testWait):
				t.Fatal("the server did not see the end of the stream")
			}
		})
	}
}

// netConnListener is a net.Listener whose Accept returns the NetConns an
// Upgrader handler makes.
type netConnListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (l *netConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *netConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *netConnListener) Addr() net.Addr { return l.addr }

// An HTTP/1.1 server (http.Server.Serve on a listener of NetConns) and an
// http.Client whose Transport dials NetConns: keep-alive connections
// carry many requests, which works only because net/http's server stops
// its background read after each request with a past read deadline and
// then reads on.
func TestNetConnHTTP(t *testing.T) {
	ln := &netConnListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	upgrader := Upgrader{}
	wsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		// Not r.Context(): net/http cancels it when this handler returns.
		nc := NetConn(context.Background(), c, BinaryMessage)
		select {
		case ln.conns <- nc:
		case <-ln.closed:
			c.Close()
		}
	}))
	defer wsSrv.Close()
	ln.addr = wsSrv.Listener.Addr()

	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	hs := &http.Server{Handler: mux}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	defer func() {
		hs.Close()
		assert.ErrorIs(t, <-served, http.ErrServerClosed)
	}()

	var dials atomic.Int32
	wsURL := "ws" + strings.TrimPrefix(wsSrv.URL, "http")
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			c, _, err := DefaultDialer.DialContext(ctx, wsURL, nil)
			if err != nil {
				return nil, err
			}
			// Not ctx: it ends with the dial.
			return NetConn(context.Background(), c, BinaryMessage), nil
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: testWait}

	get := func(n int) {
		resp, err := client.Get(fmt.Sprintf("http://tunnel/hello?n=%d", n))
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, fmt.Sprintf("hello %d", n), string(body))
	}
	for n := range 20 {
		get(n)
	}
	assert.Equal(t, int32(1), dials.Load(), "sequential requests share one keep-alive connection")

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Post("http://tunnel/echo", "application/octet-stream", bytes.NewReader(big))
			if !assert.NoError(t, err) {
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.NoError(t, err)
			assert.True(t, bytes.Equal(big, body), "echoed body differs")
		}()
	}
	wg.Wait()
}

func TestNetConnAddrsAndArgs(t *testing.T) {
	cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
	assert.Equal(t, cnc.c.LocalAddr(), cnc.LocalAddr())
	assert.Equal(t, cnc.c.RemoteAddr(), cnc.RemoteAddr())
	assert.Equal(t, snc.LocalAddr().String(), cnc.RemoteAddr().String())
	for _, mt := range []int{0, CloseMessage, PingMessage, PongMessage, 3} {
		assert.Panics(t, func() { NetConn(context.Background(), cnc.c, mt) }, "type %d", mt)
	}
	n, err := cnc.Read(nil)
	assert.Zero(t, n)
	assert.NoError(t, err, "an empty Read does not wait")
}

// Once running, a Write and the Read that receives it allocate nothing.
func TestNetConnAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("the race detector allocates")
	}
	for _, size := range []int{64, 64 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cnc, snc := netConnPair(t, context.Background(), BinaryMessage, BinaryMessage)
			msg := make([]byte, size)
			buf := make([]byte, size)
			roundTrip := func() {
				if _, err := cnc.Write(msg); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(snc, buf); err != nil {
					t.Fatal(err)
				}
			}
			for range 10 {
				roundTrip() // start the goroutine, fill the pools
			}
			assert.Zero(t, testing.AllocsPerRun(200, roundTrip), "allocations per Write+Read")
		})
	}
}

// BenchmarkNetConn measures a Write and the Reads that receive it, on
// loopback TCP, against the same exchange through the Conn's own methods
// (the "Conn" rows), which is the NetConn's overhead.
func BenchmarkNetConn(b *testing.B) {
	for _, size := range []int{64, 4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("NetConn/%d", size), func(b *testing.B) {
			cnc, snc := netConnPair(b, context.Background(), BinaryMessage, BinaryMessage)
			msg := make([]byte, size)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := cnc.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(snc, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Conn/%d", size), func(b *testing.B) {
			client, server := conns(b)
			msg := make([]byte, size)
			buf := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := client.WriteMessage(BinaryMessage, msg); err != nil {
					b.Fatal(err)
				}
				_, r, err := server.NextReader()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(r, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
