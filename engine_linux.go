//go:build linux

package websocket

import (
	"fmt"
	"io"
	"net"
	"net/netip"
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
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("websocket: an Engine serves plain TCP or Unix connections, not %T", c.conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// A duplicate of the descriptor survives closing the net.Conn, which
	// takes the original out of the runtime's poller.
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
		return cerr
	}
	if err != nil {
		return err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return err
	}
	l := e.loops[int(e.next.Add(1))%len(e.loops)]
	ec := &engineConn{fd: fd, loop: l, c: c, h: h}
	ec.setAddrs(c.conn.LocalAddr(), c.conn.RemoteAddr())
	c.conn.Close()
	c.conn = ec
	// The buffer-free wait of read_unix.go is the loop's job now; its
	// hold on the closed net.Conn would only pin memory.
	c.idle = nil
	if c.inflate != nil {
		c.inflate.SetInput(ec.nextCompressed)
	}
	if !l.add(ec) {
		ec.closeFD()
		return ErrEngineClosed
	}
	return nil
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
		n, err := syscall.EpollWait(l.epfd, l.events, -1)
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
		if l.conn(ec.fd) == ec && ec.deadlinePassed() {
			c := ec.c
			c.endRead(errReadTimeout)
			c.closeNet()
			l.finish(ec, errReadTimeout)
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
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(ec.fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, ec.fd, &ev); err != nil {
		ec.closeFD()
		ec.h.OnClose(ec.c, err)
		return
	}
	if ec.fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*engineConn, ec.fd+1-len(l.conns)+len(l.conns)/2)...)
	}
	l.conns[ec.fd] = ec
	c := ec.c
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
		ec.h.OnClose(ec.c, err)
	}
	for _, ec := range l.conns {
		if ec == nil {
			continue
		}
		c := ec.c
		if c.readErr == nil {
			c.endRead(err)
		}
		// Best effort: a close frame the socket takes now.
		c.writeControl(CloseMessage, FormatCloseMessage(CloseGoingAway, ""), time.Now().Add(closeWriteWait))
		l.finish(ec, err)
	}
	l.closeFDs()
}

// engineConn is the net.Conn under a Conn served by an Engine: reads come
// from its loop, writes go straight to the socket or to a queue the loop
// drains.
type engineConn struct {
	fd     int
	loop   *eventLoop
	c      *Conn
	h      EventHandler
	local  netip.AddrPort
	remote netip.AddrPort
	other  *[2]net.Addr // local and remote when not TCP

	// Used by the loop's goroutine only: the bytes of an incomplete frame
	// header (or control frame), and the message being assembled when it
	// spans reads or frames.
	partial *buffer
	msg     *buffer
	msgN    int
	// A compressed message's payload, gathered whole before it is
	// inflated into msg; zGiven once the decoder has been handed it.
	z      *buffer
	zN     int
	zGiven bool
	inData bool // a data frame's header has been applied; its payload is being read

	// mu guards the write queue and the socket's state against the loop.
	mu       sync.Mutex
	out      *buffer
	outStart int
	outEnd   int
	wantOut  bool // EPOLLOUT is armed
	closing  bool // Close was called: shut the socket down once out is written
	shut     bool
	fdClosed bool
	timer    *time.Timer
	deadline int64 // the read deadline, unixNano; 0: none
}

// engineServed marks the net.Conn of a Conn that an Engine serves.
func (ec *engineConn) engineServed() {}

// consume runs the bytes b that arrived through the protocol core,
// delivering each message that ends in them. It returns the error that
// ended the read side, if one did.
func (ec *engineConn) consume(b []byte) error {
	c := ec.c
	if ec.partial != nil {
		// The start of a frame header arrived before: it is at most
		// maxFrameHeaderSize+maxControlPayload bytes, so joining the two
		// copies little.
		p := ec.partial
		ec.partial = nil
		err := ec.consumeJoined(p, b)
		if ec.partial != p {
			putBuffer(p)
		}
		return err
	}
	for c.readErr == nil {
		switch {
		case !ec.inData:
			if len(b) == 0 {
				return nil
			}
			h, ctrl, n, need, err := c.decodeFrame(b)
			if err != nil {
				return err
			}
			if need > 0 {
				ec.partial = getBuffer(maxFrameHeaderSize + maxControlPayload)
				ec.partial.b = ec.partial.b[:copy(ec.partial.b, b)]
				return nil
			}
			b = b[n:]
			if ec.inData, err = c.applyFrame(&h, ctrl); err != nil {
				return err
			}
		case c.frameLeft > 0:
			if len(b) == 0 {
				return nil
			}
			p := b[:min(int64(len(b)), c.frameLeft)]
			b = b[len(p):]
			c.payloadArrived(p)
			if err := ec.payload(p); err != nil {
				return err
			}
		default:
			if err := ec.endFrame(); err != nil {
				return err
			}
		}
	}
	return c.readErr
}

// payload takes p, the next unmasked bytes of the current data frame.
func (ec *engineConn) payload(p []byte) error {
	c := ec.c
	if c.msgCompressed {
		return ec.appendCompressed(p)
	}
	if err := c.received(p); err != nil {
		return err
	}
	if ec.msgN == 0 && c.frameLeft == 0 && c.frameFinal {
		// The whole message arrived in one read: deliver it in place.
		ec.inData = false
		return ec.deliver(p)
	}
	ec.appendMessage(p)
	return nil
}

// endFrame ends the current data frame, whose payload has all arrived,
// and delivers the message if the frame was its last.
func (ec *engineConn) endFrame() error {
	ec.inData = false
	if !ec.c.frameFinal {
		return nil
	}
	if ec.c.msgCompressed {
		if err := ec.inflateMessage(); err != nil {
			return err
		}
	}
	return ec.deliver(nil)
}

// consumeJoined consumes the incomplete frame start p followed by b: it
// moves bytes from b into p until the frame's decoded part is whole, then
// goes on with the rest of b.
func (ec *engineConn) consumeJoined(p *buffer, b []byte) error {
	head := p.b
	for {
		_, _, _, need, err := ec.c.decodeFrame(head)
		if err != nil {
			return err
		}
		if need == 0 {
			break
		}
		if len(b) == 0 {
			ec.partial = p
			p.b = head
			return nil
		}
		k := min(need-len(head), len(b))
		head = append(head, b[:k]...)
		b = b[k:]
	}
	buf := p.b[:len(head)]
	ec.partial = nil
	if err := ec.consume(buf); err != nil {
		return err
	}
	return ec.consume(b)
}

// appendMessage adds p to the message being assembled, growing its pooled
// buffer geometrically: memory follows the bytes that arrived, never a
// length a header announced.
func (ec *engineConn) appendMessage(p []byte) {
	if ec.msg == nil {
		ec.msg = getBuffer(max(minMessageGrowth, 2*len(p)))
	} else if len(ec.msg.b)-ec.msgN < len(p) {
		nb := getBuffer(max(2*len(ec.msg.b), ec.msgN+len(p)))
		copy(nb.b, ec.msg.b[:ec.msgN])
		putBuffer(ec.msg)
		ec.msg = nb
	}
	ec.msgN += copy(ec.msg.b[ec.msgN:], p)
}

// appendCompressed gathers p, the next bytes of a compressed message. The
// read limit bounds inflated bytes, which come later; the compressed ones
// are held to twice it (plus a little), past which no DEFLATE stream of
// an acceptable message goes.
func (ec *engineConn) appendCompressed(p []byte) error {
	c := ec.c
	if c.readLimit > 0 && int64(ec.zN+len(p)) > 2*c.readLimit+1024 {
		return c.fail(CloseMessageTooBig, "", ErrReadLimit)
	}
	if ec.z == nil {
		ec.z = getBuffer(max(minMessageGrowth, 2*len(p)))
	} else if len(ec.z.b)-ec.zN < len(p) {
		nb := getBuffer(max(2*len(ec.z.b), ec.zN+len(p)))
		copy(nb.b, ec.z.b[:ec.zN])
		putBuffer(ec.z)
		ec.z = nb
	}
	ec.zN += copy(ec.z.b[ec.zN:], p)
	return nil
}

// nextCompressed is the decoder's input: the gathered message, once.
func (ec *engineConn) nextCompressed() ([]byte, error) {
	if ec.zGiven || ec.z == nil {
		return nil, io.EOF
	}
	ec.zGiven = true
	return ec.z.b[:ec.zN], nil
}

// inflateMessage inflates the gathered compressed message into msg,
// passing what comes out through received (read limit, UTF-8) as it
// comes, so a bomb stops at the limit.
func (ec *engineConn) inflateMessage() error {
	c := ec.c
	ec.zGiven = false
	defer func() {
		if ec.z != nil {
			putBuffer(ec.z)
			ec.z, ec.zN = nil, 0
		}
	}()
	for {
		if ec.msg == nil {
			ec.msg = getBuffer(max(minMessageGrowth, 2*ec.zN))
		} else if ec.msgN == len(ec.msg.b) {
			nb := getBuffer(2 * len(ec.msg.b))
			copy(nb.b, ec.msg.b[:ec.msgN])
			putBuffer(ec.msg)
			ec.msg = nb
		}
		n, err := c.inflate.Read(ec.msg.b[ec.msgN:])
		if n > 0 {
			if rerr := c.received(ec.msg.b[ec.msgN : ec.msgN+n]); rerr != nil {
				c.inflate.Abort()
				return rerr
			}
			ec.msgN += n
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return c.inflateFailed(err)
		}
	}
}

// deliver ends the current message and gives it to OnMessage: whole, or,
// when whole is nil, as assembled in ec.msg.
func (ec *engineConn) deliver(whole []byte) error {
	c := ec.c
	mt := c.msgType
	if err := c.finishMessage(); err != nil {
		return err
	}
	data := whole
	if data == nil && ec.msg != nil {
		data = ec.msg.b[:ec.msgN]
	}
	if data == nil {
		data = []byte{}
	}
	ec.h.OnMessage(c, mt, data)
	if ec.msg != nil {
		putBuffer(ec.msg)
		ec.msg, ec.msgN = nil, 0
	}
	if c.readErr == nil && ec.closedByApp() {
		c.endRead(net.ErrClosed)
	}
	return c.readErr
}

// release gives back the buffers of an ended connection. Loop only.
func (ec *engineConn) release() {
	if ec.partial != nil {
		putBuffer(ec.partial)
		ec.partial = nil
	}
	if ec.msg != nil {
		putBuffer(ec.msg)
		ec.msg, ec.msgN = nil, 0
	}
	if ec.z != nil {
		putBuffer(ec.z)
		ec.z, ec.zN = nil, 0
	}
	if ec.c.inflate != nil {
		ec.c.inflate.Abort()
	}
	ec.mu.Lock()
	if ec.out != nil {
		putBuffer(ec.out)
		ec.out = nil
	}
	if ec.timer != nil {
		ec.timer.Stop()
	}
	ec.mu.Unlock()
}

// Read is not used: a loop reads the socket.
func (ec *engineConn) Read([]byte) (int, error) { return 0, errEngineRead }

// Write writes b to the socket at once, as far as the socket takes it,
// and queues the rest for the loop. It never blocks.
func (ec *engineConn) Write(b []byte) (int, error) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.fdClosed || ec.closing {
		return 0, net.ErrClosed
	}
	written := 0
	if ec.outEnd == ec.outStart {
		for len(b) > 0 {
			n, err := syscall.Write(ec.fd, b)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				break
			}
			if err != nil {
				return written, &net.OpError{Op: "write", Net: "tcp", Source: ec.LocalAddr(), Addr: ec.RemoteAddr(), Err: err}
			}
			written += n
			b = b[n:]
		}
		if len(b) == 0 {
			return written, nil
		}
	}
	// The bound is on what was queued before: a single message larger
	// than it still goes (the application holds it in memory anyway),
	// and the queue stays within the bound plus one write.
	if ec.outEnd-ec.outStart > ec.loop.e.opts.MaxQueuedBytes {
		return written, ErrWriteQueueFull
	}
	ec.enqueue(b)
	if !ec.wantOut {
		ec.wantOut = true
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLOUT, Fd: int32(ec.fd)}
		syscall.EpollCtl(ec.loop.epfd, syscall.EPOLL_CTL_MOD, ec.fd, &ev)
	}
	return written + len(b), nil
}

// enqueue appends b to the write queue. ec.mu is held.
func (ec *engineConn) enqueue(b []byte) {
	queued := ec.outEnd - ec.outStart
	if ec.out == nil || len(ec.out.b)-ec.outEnd < len(b) {
		size := queued + len(b)
		if ec.out != nil && len(ec.out.b) >= size {
			copy(ec.out.b, ec.out.b[ec.outStart:ec.outEnd])
		} else {
			nb := getBuffer(max(2*size, 4096))
			if ec.out != nil {
				copy(nb.b, ec.out.b[ec.outStart:ec.outEnd])
				putBuffer(ec.out)
			}
			ec.out = nb
		}
		ec.outStart, ec.outEnd = 0, queued
	}
	ec.outEnd += copy(ec.out.b[ec.outEnd:], b)
}

// flush writes what is queued, when epoll says the socket takes more.
func (ec *engineConn) flush() {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	for ec.outStart < ec.outEnd {
		n, err := syscall.Write(ec.fd, ec.out.b[ec.outStart:ec.outEnd])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			return
		}
		if err != nil {
			// The read side sees the broken socket and ends the
			// connection; the queue is dropped.
			ec.outStart = ec.outEnd
			break
		}
		ec.outStart += n
	}
	putBuffer(ec.out)
	ec.out, ec.outStart, ec.outEnd = nil, 0, 0
	ec.wantOut = false
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(ec.fd)}
	syscall.EpollCtl(ec.loop.epfd, syscall.EPOLL_CTL_MOD, ec.fd, &ev)
	if ec.closing {
		ec.shutdownLocked()
	}
}

// Close shuts the socket down once what is queued has been written; the
// loop then sees the end and finishes the connection.
func (ec *engineConn) Close() error {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if ec.closing || ec.fdClosed {
		return nil
	}
	ec.closing = true
	if ec.outStart == ec.outEnd {
		ec.shutdownLocked()
	}
	return nil
}

func (ec *engineConn) shutdownLocked() {
	if !ec.shut && !ec.fdClosed {
		ec.shut = true
		syscall.Shutdown(ec.fd, syscall.SHUT_RDWR)
	}
}

func (ec *engineConn) closedByApp() bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return ec.closing
}

// closeFD closes the socket. Loop only, after it left epoll.
func (ec *engineConn) closeFD() {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if !ec.fdClosed {
		ec.fdClosed = true
		syscall.Close(ec.fd)
	}
}

// setAddrs records the connection's addresses: a TCP one compactly, as
// the *net.TCPAddr values net keeps would cost a few hundred bytes per
// idle connection; any other kind as it is.
func (ec *engineConn) setAddrs(local, remote net.Addr) {
	lt, ok1 := local.(*net.TCPAddr)
	rt, ok2 := remote.(*net.TCPAddr)
	if ok1 && ok2 {
		ec.local, ec.remote = lt.AddrPort(), rt.AddrPort()
		return
	}
	ec.other = &[2]net.Addr{local, remote}
}

// LocalAddr returns the local address: for TCP a new *net.TCPAddr, as
// net.Conn's would be (callers may type-assert it).
func (ec *engineConn) LocalAddr() net.Addr {
	if ec.other != nil {
		return ec.other[0]
	}
	return net.TCPAddrFromAddrPort(ec.local)
}

// RemoteAddr returns the peer's address, as LocalAddr does.
func (ec *engineConn) RemoteAddr() net.Addr {
	if ec.other != nil {
		return ec.other[1]
	}
	return net.TCPAddrFromAddrPort(ec.remote)
}

// SetDeadline sets the read deadline; writes never block, so they need
// none.
func (ec *engineConn) SetDeadline(t time.Time) error { return ec.SetReadDeadline(t) }

// SetWriteDeadline is accepted and has no effect: writes never block.
func (ec *engineConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline arms the read deadline: if it passes before it is moved
// or cleared, the loop ends the connection with a timeout error, as a
// blocking read would fail. A timer, not a goroutine, waits for it.
func (ec *engineConn) SetReadDeadline(t time.Time) error {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ec.deadline = unixNano(t)
	if t.IsZero() {
		if ec.timer != nil {
			ec.timer.Stop()
		}
		return nil
	}
	d := time.Until(t)
	if ec.timer == nil {
		ec.timer = time.AfterFunc(d, ec.deadlineFired)
	} else {
		ec.timer.Reset(d)
	}
	return nil
}

func (ec *engineConn) deadlineFired() {
	l := ec.loop
	l.mu.Lock()
	l.timeouts = append(l.timeouts, ec)
	l.mu.Unlock()
	l.wakeUp()
}

// deadlinePassed reports whether the read deadline is set and past (it may
// have been moved since the timer fired).
func (ec *engineConn) deadlinePassed() bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return ec.deadline != 0 && time.Now().UnixNano() >= ec.deadline
}

var _ net.Conn = (*engineConn)(nil)
