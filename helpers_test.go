package websocket

import (
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

// The test kit: what the package's tests share.

// testWait bounds every wait of the tests for an event (a read, a write,
// a goroutine to end), so that a broken library fails a test instead of
// hanging the suite. It is a failure guard, never a delay: nothing waits
// for it to pass, and it is long enough to hold on a loaded machine under
// the race detector.
const testWait = 20 * time.Second

// sampleKey is the Sec-WebSocket-Key of RFC 6455 section 1.3's example,
// and sampleAccept the Sec-WebSocket-Accept that answers it.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// echoWhole echoes every data message with ReadMessage and WriteMessage
// until a read fails, and returns that read's error. A failed write does
// not stop it: the tests look at how the read ended (the peer's close, a
// protocol error, the peer gone), which follows.
func echoWhole(c *Conn) error {
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		c.WriteMessage(mt, p)
	}
}

// echoStreamed echoes every data message by streaming it from NextReader
// into NextWriter (io.Copy, so the writer's ReadFrom), as autobahn/server
// and autobahn/client do, so that fragmentation is exercised both ways. It
// returns the error that ended the loop.
func echoStreamed(c *Conn) error {
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return err
		}
		w, err := c.NextWriter(mt)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// startEcho runs echoWhole on c in a goroutine and returns a channel that
// carries its result.
func startEcho(c *Conn) <-chan error {
	done := make(chan error, 1)
	go func() { done <- echoWhole(c) }()
	return done
}

// newPair returns both ends of a connection: client from our Dialer,
// server from our Upgrader. Both are closed, and the server handler has
// returned, when the test ends.
func newPair(t *testing.T, u *Upgrader, d *Dialer) (client, server *Conn) {
	t.Helper()
	if u == nil {
		u = &Upgrader{}
	}
	if d == nil {
		d = &Dialer{}
	}
	servers := make(chan *Conn, 1)
	stop := make(chan struct{})
	handlerDone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(handlerDone)
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			close(servers)
			return
		}
		defer c.Close()
		servers <- c
		<-stop
	}))
	client, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err == nil {
		server = <-servers
	}
	t.Cleanup(func() {
		close(stop)
		if client != nil {
			client.Close()
		}
		<-handlerDone
		srv.Close()
	})
	require.NoError(t, err)
	require.NotNil(t, server)
	require.NoError(t, client.SetReadDeadline(time.Now().Add(testWait)))
	require.NoError(t, server.SetReadDeadline(time.Now().Add(testWait)))
	return client, server
}

// hangGuard runs f and fails the test if it has not returned in
// testWait: f tests something that used to hang.
func hangGuard(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(testWait):
		buf := make([]byte, 1<<20)
		t.Fatalf("hung; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server = <-accepted
	require.NotNil(t, server)
	t.Cleanup(func() { client.Close(); server.Close() })
	require.NoError(t, client.SetDeadline(time.Now().Add(testWait)))
	require.NoError(t, server.SetDeadline(time.Now().Add(testWait)))
	return client, server
}

// writeInPieces writes data as one message of type typ through NextWriter,
// in Writes of at most piece bytes.
func writeInPieces(t *testing.T, c *Conn, typ int, data []byte, piece int) {
	t.Helper()
	w, err := c.NextWriter(typ)
	require.NoError(t, err)
	for p := data; len(p) > 0; {
		k := min(len(p), piece)
		_, err := w.Write(p[:k])
		require.NoError(t, err)
		p = p[k:]
	}
	require.NoError(t, w.Close())
}
