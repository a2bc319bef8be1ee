//go:build linux

package websocket

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// An Engine serves WebSocket connections from a few event loops instead
// of a goroutine each. On Linux each loop owns an epoll instance and the
// sockets it serves: it reads what is ready into its own buffer, runs the
// protocol core (decode.go) over the bytes, and calls the EventHandler;
// a connection holds no read buffer except while a frame header is
// incomplete, nor any goroutine. Writes go straight to the socket from
// whichever goroutine makes them; what the socket does not take is queued
// and written by the loop when epoll says the socket can take more.
//
// An Engine is safe for concurrent use.
type Engine struct {
	opts   EngineOptions
	loops  []*eventLoop
	next   atomic.Uint32
	closed atomic.Bool
	done   sync.WaitGroup
}

// NewEngine starts an Engine's event loops.
func NewEngine(opts EngineOptions) (*Engine, error) {
	e := &Engine{opts: opts.withDefaults()}
	for i := 0; i < e.opts.Loops; i++ {
		l, err := newEventLoop(e)
		if err != nil {
			e.Close()
			return nil, err
		}
		e.loops = append(e.loops, l)
		e.done.Add(1)
		go l.run()
	}
	return e, nil
}

// Close stops the Engine: each connection it serves is sent a close frame
// with CloseGoingAway (best effort, without waiting), closed, and given to
// OnClose with ErrEngineClosed. Close returns once every loop has stopped.
func (e *Engine) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	for _, l := range e.loops {
		l.mu.Lock()
		l.stop = true
		l.mu.Unlock()
		l.wakeUp()
	}
	e.done.Wait()
	return nil
}

// serve takes c's socket out of the Go runtime's poller and gives it to
// one of the loops.
func (e *Engine) serve(c *Conn, h EventHandler) error {
	fd, err := takeFD(c.conn)
	if err != nil {
		return err
	}
	e.setTCPKeepAlive(fd)
	l := e.pickLoop()
	ec := &engineConn{fd: fd, loop: l}
	ec.setAddrs(c.conn.LocalAddr(), c.conn.RemoteAddr())
	c.conn.Close()
	ec.attach(c, h)
	if !l.add(ec) {
		ec.closeFD()
		return ErrEngineClosed
	}
	return nil
}

// takeFD returns a non-blocking duplicate of nc's descriptor. The
// duplicate survives closing nc, which takes the original out of the
// runtime's poller.
func takeFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("websocket: an Engine serves plain TCP or Unix connections, not %T", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := raw.Control(func(s uintptr) {
		syscall.ForkLock.RLock()
		fd, err = syscall.Dup(int(s))
		if err == nil {
			syscall.CloseOnExec(fd)
		}
		syscall.ForkLock.RUnlock()
	})
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// setTCPKeepAlive applies EngineOptions.TCPKeepAlive to a socket. Errors
// are ignored: a Unix socket has no TCP options, and a socket whose
// probes could not be set still works.
func (e *Engine) setTCPKeepAlive(fd int) {
	idle := e.opts.tcpKeepAliveIdle()
	if idle <= 0 {
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0)
		return
	}
	secs := func(d time.Duration) int { return max(int(d/time.Second), 1) }
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, secs(idle))
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, secs(e.opts.TCPKeepAlive/4))
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveProbes)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1)
}

func (e *Engine) pickLoop() *eventLoop {
	return e.loops[int(e.next.Add(1))%len(e.loops)]
}

// Serve accepts connections from ln and serves them with no net/http
// state and no goroutine per connection: a loop reads each request,
// upgrades it with u's rules (origin check, subprotocols, compression,
// u.Error for refusals) and then serves the connection with h, as
// Upgrade does. A request that is not a valid upgrade is answered with
// an HTTP error and closed, as are requests whose line and headers pass
// 16 KiB or that do not arrive within u.HandshakeTimeout (10 seconds if
// zero). One goroutine, the caller's, accepts. Serve returns
// ErrEngineClosed once the Engine is closed, or the error that ended ln
// (after Close of ln, one wrapping net.ErrClosed).
func (e *Engine) Serve(ln net.Listener, u *Upgrader, h EventHandler) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if e.closed.Load() {
				return ErrEngineClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors, or the like: wait, as net/http does,
			// rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		fd, err := takeFD(nc)
		if err != nil {
			nc.Close()
			continue
		}
		e.setTCPKeepAlive(fd)
		l := e.pickLoop()
		ec := &engineConn{fd: fd, loop: l, hs: &engineHandshake{u: u, h: h}}
		ec.setAddrs(nc.LocalAddr(), nc.RemoteAddr())
		nc.Close()
		if !l.add(ec) {
			ec.closeFD()
			return ErrEngineClosed
		}
	}
}

// eventLoop is one event loop: an epoll instance, the connections it
// serves (touched by the loop's goroutine only) and its read buffer.
type eventLoop struct {
	e      *Engine
	epfd   int
	wake   [2]int // a pipe: a byte written to wake[1] wakes the loop
	buf    []byte
	events []syscall.EpollEvent
	conns  []*engineConn // by descriptor

	// The liveness check (engine_ping_linux.go): when the next tick is
	// due, the descriptor the next tick starts at, and the visits owed
	// (in 1/pingTicks of a slot).
	nextTick time.Time
	cursor   int
	owed     int

	// mu guards what other goroutines hand the loop.
	mu       sync.Mutex
	adds     []*engineConn
	timeouts []*engineConn
	stop     bool
	woken    bool
}

// loopReadSize is the size of a loop's read buffer: what one read
// system call may take.
const loopReadSize = 64 << 10

func newEventLoop(e *Engine) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &eventLoop{e: e, epfd: epfd, buf: make([]byte, loopReadSize),
		events: make([]syscall.EpollEvent, 256)}
	if err := syscall.Pipe2(l.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(l.wake[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wake[0], &ev); err != nil {
		l.closeFDs()
		return nil, err
	}
	return l, nil
}

func (l *eventLoop) closeFDs() {
	syscall.Close(l.wake[0])
	syscall.Close(l.wake[1])
	syscall.Close(l.epfd)
}

// wakeUp makes the loop look at what was handed to it.
func (l *eventLoop) wakeUp() {
	l.mu.Lock()
	if l.woken {
		l.mu.Unlock()
		return
	}
	l.woken = true
	l.mu.Unlock()
	syscall.Write(l.wake[1], []byte{0})
}

// add hands ec to the loop; false if the loop has stopped.
func (l *eventLoop) add(ec *engineConn) bool {
	l.mu.Lock()
	if l.stop {
		l.mu.Unlock()
		return false
	}
	l.adds = append(l.adds, ec)
	l.mu.Unlock()
	l.wakeUp()
	return true
}

func (l *eventLoop) run() {
	defer l.e.done.Done()
	for {
		n, err := syscall.EpollWait(l.epfd, l.events, l.waitMillis())
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Not expected of a valid epoll instance; stop rather
			// than spin.
			l.shutdown(fmt.Errorf("websocket: epoll_wait: %w", err))
			return
		}
		for _, ev := range l.events[:n] {
			if ev.Fd == int32(l.wake[0]) {
				if l.handOver() {
					l.shutdown(ErrEngineClosed)
					return
				}
				continue
			}
			ec := l.conn(int(ev.Fd))
			if ec == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				ec.flush()
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 {
				l.read(ec)
			}
		}
		l.tick()
	}
}

// handOver takes what other goroutines handed the loop: new connections
// and expired read deadlines. It reports whether the loop must stop.
func (l *eventLoop) handOver() bool {
	var b [64]byte
	for {
		if n, _ := syscall.Read(l.wake[0], b[:]); n < len(b) {
			break
		}
	}
	l.mu.Lock()
	adds, timeouts, stop := l.adds, l.timeouts, l.stop
	l.adds, l.timeouts, l.woken = nil, nil, false
	l.mu.Unlock()
	for _, ec := range adds {
		l.open(ec)
	}
	for _, ec := range timeouts {
		if l.conn(ec.fd) != ec {
			continue
		}
		if ec.deadlinePassed() {
			c := ec.c
			if c == nil {
				// The handshake did not arrive in time.
				l.finish(ec, nil)
				continue
			}
			c.endRead(errReadTimeout)
			c.closeNet()
			l.finish(ec, errReadTimeout)
		} else if ec.c.kaExpired.Load() {
			l.finish(ec, ec.c.failKeepAlive())
		}
	}
	return stop
}

// errReadTimeout ends a connection whose read deadline passed.
var errReadTimeout = &netError{msg: "websocket: read timeout", timeout: true}

// conn returns the connection with descriptor fd, or nil.
func (l *eventLoop) conn(fd int) *engineConn {
	if fd < 0 || fd >= len(l.conns) {
		return nil
	}
	return l.conns[fd]
}

// open starts serving ec: OnOpen, then the bytes that arrived with the
// handshake, then whatever epoll reports.
func (l *eventLoop) open(ec *engineConn) {
	// A write between Upgrade's return and now may have queued bytes
	// already (its EPOLL_CTL_MOD found no registration): register for
	// writability too then. ec.mu orders this against such a write.
	ec.mu.Lock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(ec.fd)}
	if ec.wantOut {
		ev.Events |= syscall.EPOLLOUT
	}
	err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, ec.fd, &ev)
	ec.mu.Unlock()
	if err != nil {
		ec.closeFD()
		if ec.c != nil {
			ec.h.OnClose(ec.c, err)
		}
		return
	}
	if ec.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*engineConn, ec.fd+1-len(l.conns)+len(l.conns)/2)...)
	}
	l.conns[ec.fd] = ec
	if ec.hs != nil {
		timeout := ec.hs.u.HandshakeTimeout
		if timeout <= 0 {
			timeout = defaultEngineHandshakeTimeout
		}
		ec.SetReadDeadline(time.Now().Add(timeout))
		return
	}
	l.start(ec)
}

// start begins serving ec's Conn: OnOpen, then the bytes that arrived
// with the handshake.
func (l *eventLoop) start(ec *engineConn) {
	c := ec.c
	// The handshake counts as hearing from the peer: the liveness check
	// pings no connection before it has been quiet for an interval.
	c.markHeard()
	ec.h.OnOpen(c)
	if c.rb != nil {
		pending := c.rbuf[c.rpos:c.rend]
		err := ec.consume(pending)
		putBuffer(c.rb)
		c.rb, c.rbuf, c.rpos, c.rend = nil, nil, 0, 0
		if err != nil {
			l.finish(ec, err)
		}
	}
}

// read reads what the socket has and runs it through the protocol.
func (l *eventLoop) read(ec *engineConn) {
	n, err := syscall.Read(ec.fd, l.buf)
	for err == syscall.EINTR {
		n, err = syscall.Read(ec.fd, l.buf)
	}
	if err == syscall.EAGAIN {
		return
	}
	if ec.hs != nil {
		if n > 0 {
			l.handshake(ec, l.buf[:n])
		} else {
			l.finish(ec, nil)
		}
		return
	}
	if n > 0 {
		if err := ec.consume(l.buf[:n]); err != nil {
			l.finish(ec, err)
		}
		return
	}
	c := ec.c
	if c.readErr == nil {
		if ec.closedByApp() {
			c.endRead(net.ErrClosed)
		} else if err != nil {
			c.readFailed(&net.OpError{Op: "read", Net: "tcp", Source: ec.LocalAddr(), Addr: ec.RemoteAddr(), Err: err})
		} else {
			c.readFailed(io.EOF)
		}
	}
	l.finish(ec, c.readErr)
}

// finish ends ec: it leaves the loop, its socket is closed, and OnClose
// learns err.
func (l *eventLoop) finish(ec *engineConn, err error) {
	if l.conn(ec.fd) != ec {
		return
	}
	l.conns[ec.fd] = nil
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, ec.fd, nil)
	if ec.c == nil {
		// Still in the handshake: there is no Conn to tell about it.
		ec.closeFD()
		ec.release()
		return
	}
	if !ec.c.closed.Swap(true) {
		ec.c.markWriteClosed()
	}
	ec.closeFD()
	ec.release()
	ec.h.OnClose(ec.c, err)
}

// shutdown ends every connection of the stopping loop and its own
// descriptors.
func (l *eventLoop) shutdown(err error) {
	l.mu.Lock()
	l.stop = true
	adds := l.adds
	l.adds = nil
	l.mu.Unlock()
	for _, ec := range adds {
		ec.closeFD()
		if ec.c != nil {
			ec.h.OnClose(ec.c, err)
		}
	}
	for _, ec := range l.conns {
		if ec == nil {
			continue
		}
		c := ec.c
		if c == nil {
			l.finish(ec, err)
			continue
		}
		if c.readErr == nil {
			c.endRead(err)
		}
		// Best effort: a close frame the socket takes now.
		c.writeControl(CloseMessage, FormatCloseMessage(CloseGoingAway, ""), time.Now().Add(closeWriteWait))
		l.finish(ec, err)
	}
	l.closeFDs()
}
