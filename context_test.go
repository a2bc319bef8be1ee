package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// ctxPeer returns a server Conn over loopback TCP, its network
// connection wrapped by wrap (when not nil), and a raw client peer
// opposite it. The Conn's read deadline is testWait from now, set
// through the Conn so that context-bound calls know it.
func ctxPeer(t *testing.T, wrap func(net.Conn) net.Conn) (*Conn, *rawPeer) {
	t.Helper()
	cl, sv := tcpPair(t)
	var nc net.Conn = sv
	if wrap != nil {
		nc = wrap(sv)
	}
	c := newConn(nc, true, 0, 0, nil, nil)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(testWait)))
	return c, &rawPeer{t: t, conn: cl, br: bufio.NewReader(cl), client: true}
}

// requireContextError checks that err is a *ContextError wrapping want,
// with Failed as given.
func requireContextError(t *testing.T, err error, want error, failed bool) {
	t.Helper()
	require.ErrorIs(t, err, want)
	var ce *ContextError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, failed, ce.Failed, "Failed, error %v", err)
}

// cancelOnPing makes the Conn's ping handler cancel, then answer: the
// cancellation lands inside a read, at a point the test knows.
func cancelOnPing(c *Conn, cancel context.CancelFunc) {
	c.SetPingHandler(func(s string) error {
		cancel()
		return c.defaultPingHandler(s)
	})
}

func TestReadMessageContextCanceledBetweenMessages(t *testing.T) {
	c, p := ctxPeer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelOnPing(c, cancel)
	hello := p.encode(rawF(opBinary, true, "hello"))
	// The ping, and the first byte of the next message's header: a byte
	// that arrived stays buffered for the next read.
	require.NoError(t, p.write(append(p.encode(rawF(opPing, true, "x")), hello[0])))
	hangGuard(t, func() {
		_, _, err := c.ReadMessageContext(ctx)
		requireContextError(t, err, context.Canceled, false)
	})
	f := p.next()
	require.Equal(t, byte(opPong), f.op)

	require.NoError(t, p.write(hello[1:]))
	c.SetPingHandler(nil)
	typ, msg, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, BinaryMessage, typ)
	require.Equal(t, "hello", string(msg))
}

func TestNextReaderContextCanceledBetweenMessages(t *testing.T) {
	c, p := ctxPeer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelOnPing(c, cancel)
	p.send(rawF(opPing, true, "x"))
	hangGuard(t, func() {
		_, r, err := c.NextReaderContext(ctx)
		requireContextError(t, err, context.Canceled, false)
		require.Nil(t, r)
	})

	p.send(rawF(opText, false, "hel"), rawF(opContinuation, true, "lo"))
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	typ, r, err := c.NextReaderContext(ctx2)
	require.NoError(t, err)
	require.Equal(t, TextMessage, typ)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
}

// An idle Conn (no read buffer held) waits through the buffer-free path
// where the platform has one; a context deadline ends that wait too.
func TestReadMessageContextDeadlineWhileIdle(t *testing.T) {
	c, p := ctxPeer(t, nil)
	for _, next := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		hangGuard(t, func() {
			var err error
			if next {
				_, _, err = c.NextReaderContext(ctx)
			} else {
				_, _, err = c.ReadMessageContext(ctx)
			}
			requireContextError(t, err, context.DeadlineExceeded, false)
		})
		cancel()
		p.send(rawF(opText, true, "after"))
		_, msg, err := c.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, "after", string(msg))
	}
}

// readDeadlineConn records the read deadlines set on it.
type readDeadlineConn struct {
	net.Conn
	mu   sync.Mutex
	last time.Time
	sets int
}

func (d *readDeadlineConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.last, d.sets = t, d.sets+1
	d.mu.Unlock()
	return d.Conn.SetReadDeadline(t)
}

func (d *readDeadlineConn) lastDeadline() (time.Time, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last, d.sets
}

func TestReadContextDeadlinesCompose(t *testing.T) {
	var dc *readDeadlineConn
	wrap := func(nc net.Conn) net.Conn {
		dc = &readDeadlineConn{Conn: nc}
		return dc
	}
	t.Run("ContextEarlier", func(t *testing.T) {
		for _, own := range []time.Time{time.Now().Add(testWait), {}} {
			c, p := ctxPeer(t, wrap)
			require.NoError(t, c.SetReadDeadline(own))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			hangGuard(t, func() {
				_, _, err := c.ReadMessageContext(ctx)
				requireContextError(t, err, context.DeadlineExceeded, false)
			})
			cancel()
			last, _ := dc.lastDeadline()
			require.True(t, own.Equal(last), "deadline restored: set %v, now %v", own, last)
			p.send(rawF(opText, true, "next"))
			_, msg, err := c.ReadMessage()
			require.NoError(t, err)
			require.Equal(t, "next", string(msg))
		}
	})
	t.Run("OwnEarlier", func(t *testing.T) {
		c, _ := ctxPeer(t, wrap)
		own := time.Now().Add(20 * time.Millisecond)
		require.NoError(t, c.SetReadDeadline(own))
		_, setsBefore := dc.lastDeadline()
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		hangGuard(t, func() {
			_, _, err := c.ReadMessageContext(ctx)
			require.NoError(t, ctx.Err())
			var ce *ContextError
			require.False(t, errors.As(err, &ce), "got %v", err)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			require.True(t, ne.Timeout())
			// As with the plain methods, a timeout of the Conn's own
			// deadline is permanent.
			_, _, err2 := c.ReadMessageContext(ctx)
			require.Equal(t, err, err2)
		})
		last, sets := dc.lastDeadline()
		require.Equal(t, setsBefore, sets, "the context never fired: no deadline moved")
		require.True(t, own.Equal(last))
	})
}

// cancelAfterConn cancels once n bytes have been read from it.
type cancelAfterConn struct {
	net.Conn
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfterConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestReadContextCanceledMidFrame(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	frame := rawFrame{op: opBinary, fin: true, payload: make([]byte, 100)}
	// Six bytes of masked header, then ten of the payload.
	const half = 6 + 10
	c, p := ctxPeer(t, func(nc net.Conn) net.Conn {
		return &cancelAfterConn{Conn: nc, n: half, cancel: cancel}
	})
	require.NoError(t, p.write(p.encode(frame)[:half]))
	hangGuard(t, func() {
		_, _, err := c.ReadMessageContext(ctx)
		requireContextError(t, err, context.Canceled, true)
		// The failure is the permanent read error.
		_, _, err = c.ReadMessage()
		requireContextError(t, err, context.Canceled, true)
	})
	code, _ := p.expectClose()
	require.Equal(t, CloseInternalServerErr, code)
	p.expectEOF()
}

func TestReadContextCanceledMidMessage(t *testing.T) {
	c, p := ctxPeer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelOnPing(c, cancel)
	// The first fragment is consumed, then the ping cancels: the message
	// cannot be resumed.
	p.send(rawF(opText, false, "abc"), rawF(opPing, true, "x"))
	hangGuard(t, func() {
		_, _, err := c.ReadMessageContext(ctx)
		requireContextError(t, err, context.Canceled, true)
	})
	require.Equal(t, byte(opPong), p.next().op)
	code, _ := p.expectClose()
	require.Equal(t, CloseInternalServerErr, code)
	p.expectEOF()
}

func TestReadContextAlreadyDone(t *testing.T) {
	c, p := ctxPeer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p.send(rawF(opText, true, "waiting"))
	_, _, err := c.ReadMessageContext(ctx)
	requireContextError(t, err, context.Canceled, false)
	_, _, err = c.NextReaderContext(ctx)
	requireContextError(t, err, context.Canceled, false)
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "waiting", string(msg))
}

// engineServedConn stands for the net.Conn of a Conn an Engine serves.
type engineServedConn struct{ discardConn }

func (engineServedConn) engineServed() {}

func TestContextOnEngineConn(t *testing.T) {
	c := newConn(engineServedConn{}, true, 0, 0, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, _, err := c.ReadMessageContext(ctx)
	require.ErrorIs(t, err, errEngineRead)
	_, _, err = c.NextReaderContext(ctx)
	require.ErrorIs(t, err, errEngineRead)
	_, _, err = c.ReadMessageContext(context.Background())
	require.ErrorIs(t, err, errEngineRead)
	// Writes go through: an Engine's never block.
	require.NoError(t, c.WriteMessageContext(ctx, TextMessage, []byte("x")))
	w, err := c.NextWriterContext(ctx, TextMessage)
	require.NoError(t, err)
	require.NoError(t, w.Close())
}

func TestContextZeroAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const runs = 200
	for _, isServer := range []bool{true, false} {
		t.Run("NextReaderContextBackground/"+sideName(isServer), func(t *testing.T) {
			c := benchReadConn(isServer, 1<<10)
			buf := make([]byte, 1<<10)
			ctx := context.Background()
			allocs := testing.AllocsPerRun(runs, func() {
				_, r, err := c.NextReaderContext(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(r, buf); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, allocs, "allocations per NextReaderContext(Background)+io.ReadFull")
		})
	}
	// A context that can be canceled costs what context.AfterFunc
	// allocates; reported, and bounded so that a regression shows.
	c := benchReadConn(true, 1<<10)
	buf := make([]byte, 1<<10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(runs, func() {
		_, r, err := c.NextReaderContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per NextReaderContext with a cancelable context: %v", allocs)
	assert.LessOrEqual(t, allocs, 2.0)
}

func TestWriteMessageContextCanceledWaitingForLock(t *testing.T) {
	c, p := ctxPeer(t, nil)
	c.EnableConcurrentWriters()
	w, err := c.NextWriter(BinaryMessage)
	require.NoError(t, err)
	for _, next := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		hangGuard(t, func() {
			var err error
			if next {
				var w2 io.WriteCloser
				w2, err = c.NextWriterContext(ctx, TextMessage)
				require.Nil(t, w2)
			} else {
				err = c.WriteMessageContext(ctx, TextMessage, []byte("canceled"))
			}
			requireContextError(t, err, context.DeadlineExceeded, false)
		})
		cancel()
	}
	_, err = w.Write([]byte("first"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, c.WriteMessageContext(ctx, TextMessage, []byte("second")))
	w, err = c.NextWriterContext(ctx, TextMessage)
	require.NoError(t, err)
	_, err = w.Write([]byte("third"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, c.WriteMessageContext(ctx, PingMessage, []byte("ping")))
	// Nothing of the canceled messages went out.
	p.expectData(opBinary, []byte("first"))
	p.expectData(opText, []byte("second"))
	p.expectData(opText, []byte("third"))
	require.Equal(t, byte(opPing), p.next().op)
}

// doneAskedCtx reports on asked when Done is first called: the call under
// test has begun to wait on the context.
type doneAskedCtx struct {
	context.Context
	once  sync.Once
	asked chan struct{}
}

func (c *doneAskedCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.asked) })
	return c.Context.Done()
}

// A control message waits for the frame lock like any write; a cancel
// with no deadline in ctx ends that wait with nothing sent, and the
// connection stays usable.
func TestWriteControlContextCanceledWaitingForLock(t *testing.T) {
	c, p := ctxPeer(t, nil)
	parent, cancel := context.WithCancel(context.Background())
	ctx := &doneAskedCtx{Context: parent, asked: make(chan struct{})}
	c.frameLock.lockWait() // another writer's frame
	errc := make(chan error, 1)
	go func() { errc <- c.WriteMessageContext(ctx, PingMessage, []byte("canceled")) }()
	wait(t, ctx.asked, "the ping to wait on ctx")
	cancel()
	requireContextError(t, wait(t, errc, "the ping to give up"), context.Canceled, false)
	c.frameLock.unlock()
	require.NoError(t, c.WriteMessageContext(context.Background(), PingMessage, []byte("sent")))
	f := p.next()
	assert.Equal(t, byte(opPing), f.op)
	assert.Equal(t, "sent", string(f.payload), "nothing of the canceled ping went out")
}

// A message far larger than the loopback buffers, to a peer that does not
// read: the write blocks inside the frame until ctx ends it. The cancel
// comes once the peer has the frame's first byte, so the frame is known
// to be under way (cancelling when Write is merely called can win the
// race, and then nothing is sent and the connection rightly survives).
func TestWriteMessageContextCanceledMidFrame(t *testing.T) {
	c, p := ctxPeer(t, nil)
	big := make([]byte, 64<<20)
	for _, timeout := range []bool{false, true} {
		if timeout {
			c, p = ctxPeer(t, nil)
		}
		ctx, cancel := context.WithCancel(context.Background())
		want := context.Canceled
		if timeout {
			// The ctx deadline comes first; SetWriteDeadline's later one
			// stays.
			require.NoError(t, c.SetWriteDeadline(time.Now().Add(testWait)))
			ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
			want = context.DeadlineExceeded
		}
		errc := make(chan error, 1)
		go func() { errc <- c.WriteMessageContext(ctx, BinaryMessage, big) }()
		if !timeout {
			hangGuard(t, func() {
				require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
				_, err := p.br.Peek(1)
				require.NoError(t, err, "the write did not start")
			})
			cancel()
		}
		requireContextError(t, wait(t, errc, "the write to be canceled"), want, true)
		cancel()
		// Failed: writes fail, and the peer sees the TCP connection end
		// after the part of the frame that went out.
		require.Error(t, c.WriteMessage(TextMessage, []byte("after")))
		hangGuard(t, func() {
			require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
			n, err := io.Copy(io.Discard, p.br)
			require.NoError(t, err)
			require.Less(t, n, int64(len(big)))
		})
	}
}

func TestWriteContextOwnDeadlineEarlier(t *testing.T) {
	c, _ := ctxPeer(t, nil)
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	hangGuard(t, func() {
		err := c.WriteMessageContext(ctx, BinaryMessage, make([]byte, 64<<20))
		var ce *ContextError
		require.False(t, errors.As(err, &ce), "got %v", err)
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		require.True(t, ne.Timeout())
	})
}

func TestWriteContextZeroAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const runs = 200
	msg := make([]byte, 1<<10)
	for _, isServer := range []bool{true, false} {
		c := newConn(discardConn{}, isServer, 0, 0, nil, nil)
		allocs := testing.AllocsPerRun(runs, func() {
			if err := c.WriteMessageContext(context.Background(), BinaryMessage, msg); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs, "allocations per WriteMessageContext(Background), %s", sideName(isServer))
	}
	c := newConn(discardConn{}, true, 0, 0, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	allocs := testing.AllocsPerRun(runs, func() {
		if err := c.WriteMessageContext(ctx, BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per WriteMessageContext with a cancelable context: %v", allocs)
	assert.LessOrEqual(t, allocs, 2.0)
}

func TestCloseContextPeerSilent(t *testing.T) {
	for _, timeout := range []bool{false, true} {
		c, p := ctxPeer(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		want := context.Canceled
		if timeout {
			ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
			want = context.DeadlineExceeded
		}
		errc := make(chan error, 1)
		go func() { errc <- c.CloseContext(ctx, CloseGoingAway, "bye") }()
		code, reason := p.expectClose()
		require.Equal(t, CloseGoingAway, code)
		require.Equal(t, "bye", reason)
		if !timeout {
			cancel()
		}
		requireContextError(t, wait(t, errc, "CloseContext to return"), want, true)
		cancel()
		p.expectEOF()
	}
}

func TestCloseContextPeerAnswers(t *testing.T) {
	c, p := ctxPeer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.CloseContext(ctx, CloseNormalClosure, "") }()
	code, _ := p.expectClose()
	require.Equal(t, CloseNormalClosure, code)
	p.send(rawClose(CloseNormalClosure, ""))
	require.NoError(t, <-errc)
	p.expectEOF()
}

// A compressed message whose write is canceled before any of it went out
// leaves the connection usable (Failed false); with context takeover the
// compressor had taken the message into its history, which the peer never
// received, so the next message must not refer to it.
func TestWriteMessageContextCanceledCompressedInStep(t *testing.T) {
	client, server := newPair(t, &Upgrader{EnableCompression: true}, &Dialer{EnableCompression: true})
	require.Equal(t, "permessage-deflate", server.Extensions(), "takeover both ways")
	canceled := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog "), 40)
	parent, cancel := context.WithCancel(context.Background())
	ctx := &doneAskedCtx{Context: parent, asked: make(chan struct{})}
	server.frameLock.lockWait() // another writer's frame
	errc := make(chan error, 1)
	go func() { errc <- server.WriteMessageContext(ctx, TextMessage, canceled) }()
	wait(t, ctx.asked, "the write to wait on ctx")
	cancel()
	requireContextError(t, wait(t, errc, "the write to give up"), context.Canceled, false)
	server.frameLock.unlock()

	// The same text again: a compressor that remembered the canceled
	// copy would send back-references to it.
	require.NoError(t, server.WriteMessage(TextMessage, canceled))
	require.NoError(t, client.SetReadDeadline(time.Now().Add(testWait)))
	_, got, err := client.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, string(canceled), string(got))
	require.NoError(t, server.WriteMessage(TextMessage, canceled))
	_, got, err = client.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, string(canceled), string(got), "history in step after the canceled message")
}

// A streamed message whose next fragment cannot go out (its wait for the
// frame lock timed out, nothing of it sent) leaves the peer inside the
// message: no other data message may follow, so every later data write
// fails with the same error, while the connection is not otherwise
// failed.
func TestWriterCutMessageStopsDataWrites(t *testing.T) {
	c, p := ctxPeer(t, nil)
	w, err := c.NextWriter(BinaryMessage)
	require.NoError(t, err)
	first := bytes.Repeat([]byte{1}, defaultWriteBufferSize+100) // goes out as a fragment
	_, err = w.Write(first)
	require.NoError(t, err)
	f := p.next()
	require.False(t, f.fin)
	require.Len(t, f.payload, len(first))

	c.frameLock.lockWait() // a control frame's writer holds the lock
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = w.Write(bytes.Repeat([]byte{2}, defaultWriteBufferSize+100))
	require.True(t, isTimeout(err), "%v", err)
	c.frameLock.unlock()
	require.NoError(t, c.SetWriteDeadline(time.Time{}))

	require.ErrorIs(t, w.Close(), err)
	require.ErrorIs(t, c.WriteMessage(TextMessage, []byte("not inside the message")), err)
	_, err2 := c.NextWriter(TextMessage)
	require.ErrorIs(t, err2, err)
	// Control frames may still go: they are allowed between fragments.
	require.NoError(t, c.WriteControl(PingMessage, []byte("p"), time.Now().Add(testWait)))
	f = p.next()
	require.Equal(t, byte(opPing), f.op)
	require.NoError(t, c.Close())
	p.expectEOF()
}

// A reader from NextReaderContext is bound to ctx for the whole message:
// a Read that has to wait for the network after ctx ended fails the
// connection, the message being under way, while a message read whole
// before the cancel leaves the connection as it was.
func TestNextReaderContextBindsReads(t *testing.T) {
	t.Run("deadline passes mid-message", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		p.send(rawF(opText, false, "part"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, r, err := c.NextReaderContext(ctx)
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(r, buf) // buffered: no wait
		require.NoError(t, err)
		require.Equal(t, "part", string(buf))
		_, err = r.Read(buf) // the rest never comes
		requireContextError(t, err, context.DeadlineExceeded, true)
		code, _ := p.expectClose()
		require.Equal(t, CloseInternalServerErr, code)
		_, _, err = c.ReadMessage()
		requireContextError(t, err, context.DeadlineExceeded, true)
	})
	t.Run("canceled before a read that waits", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		p.send(rawF(opBinary, false, "ab"))
		ctx, cancel := context.WithCancel(context.Background())
		_, r, err := c.NextReaderContext(ctx)
		require.NoError(t, err)
		buf := make([]byte, 2)
		_, err = io.ReadFull(r, buf)
		require.NoError(t, err)
		cancel()
		_, err = r.Read(buf)
		requireContextError(t, err, context.Canceled, true)
	})
	t.Run("whole message, then cancel", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		p.send(rawF(opText, false, "hel"), rawF(opContinuation, true, "lo"))
		ctx, cancel := context.WithCancel(context.Background())
		_, r, err := c.NextReaderContext(ctx)
		require.NoError(t, err)
		b, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, "hello", string(b))
		cancel()
		p.send(rawF(opText, true, "next"))
		_, msg, err := c.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, "next", string(msg))
	})
}

// A writer from NextWriterContext is bound to ctx for the whole message:
// canceled before any frame went out, the message is dropped and the
// connection goes on; once a frame is under way, a cancel fails it.
func TestNextWriterContextBindsWrites(t *testing.T) {
	big := bytes.Repeat([]byte{7}, defaultWriteBufferSize+100) // a frame of its own
	t.Run("canceled before any frame", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(testWait))) // hang guard
		ctx, cancel := context.WithCancel(context.Background())
		w, err := c.NextWriterContext(ctx, BinaryMessage)
		require.NoError(t, err)
		c.frameLock.lockWait() // another writer's frame
		cancel()
		_, err = w.Write(big)
		requireContextError(t, err, context.Canceled, false)
		c.frameLock.unlock()
		require.Error(t, w.Close())
		require.NoError(t, c.WriteMessage(TextMessage, []byte("next")))
		p.expectData(opText, []byte("next"))
	})
	t.Run("canceled mid-frame", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(testWait))) // hang guard
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w, err := c.NextWriterContext(ctx, BinaryMessage)
		require.NoError(t, err)
		errc := make(chan error, 1)
		go func() {
			_, err := w.Write(make([]byte, 64<<20)) // far more than the socket takes
			errc <- err
		}()
		hangGuard(t, func() {
			require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
			_, err := p.br.Peek(1)
			require.NoError(t, err, "the write did not start")
		})
		cancel()
		requireContextError(t, wait(t, errc, "the write to be canceled"), context.Canceled, true)
		require.Error(t, c.WriteMessage(TextMessage, []byte("after")))
	})
	t.Run("written whole, then cancel", func(t *testing.T) {
		c, p := ctxPeer(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		w, err := c.NextWriterContext(ctx, BinaryMessage)
		require.NoError(t, err)
		_, err = w.Write(big)
		require.NoError(t, err)
		_, err = w.Write([]byte("tail"))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		cancel()
		require.NoError(t, c.WriteMessage(TextMessage, []byte("next")))
		f := p.next()
		require.Equal(t, byte(opBinary), f.op)
		require.Equal(t, big, f.payload)
		f = p.next()
		require.Equal(t, byte(opContinuation), f.op)
		require.True(t, f.fin)
		require.Equal(t, "tail", string(f.payload))
		p.expectData(opText, []byte("next"))
	})
}
