//go:build linux

package websocket

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

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
	other  *[2]net.Addr     // local and remote when not TCP
	hs     *engineHandshake // while the Engine's own handshake is read (Serve)

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
	pinged bool // the liveness check sent a ping and has heard nothing since

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

// attach makes ec the network connection of c, to be served with h.
func (ec *engineConn) attach(c *Conn, h EventHandler) {
	ec.c, ec.h = c, h
	c.conn = ec
	// The buffer-free wait of read_unix.go is the loop's job now; its
	// hold on a closed net.Conn would only pin memory.
	c.idle = nil
	if c.inflate != nil {
		c.inflate.SetInput(ec.nextCompressed)
	}
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
	ec.msg, ec.msgN = ec.appendTo(ec.msg, ec.msgN, p)
}

// appendTo appends p to buf, which holds n bytes, growing it as
// messageCap says.
func (ec *engineConn) appendTo(buf *buffer, n int, p []byte) (*buffer, int) {
	if buf == nil || len(buf.b)-n < len(p) {
		nb := getBuffer(ec.messageCap(n + len(p)))
		if buf != nil {
			copy(nb.b, buf.b[:n])
			putBuffer(buf)
		}
		buf = nb
	}
	return buf, n + copy(buf.b[n:], p)
}

// messageCap is the size of a buffer for a message of which n bytes have
// arrived: when the current frame is the message's last, its end, as far
// as trustFactor times n plus a read buffer's worth trusts the peer's
// word, as trustedLen does for the blocking reader (so a 1 MiB message
// whose first 64 KiB read has arrived is allocated once, and a header
// alone buys a few KiB);
// otherwise twice n, so that copying stays linear however the peer
// fragments.
func (ec *engineConn) messageCap(n int) int {
	c := ec.c
	want := 2 * int64(n)
	if c.frameFinal {
		want = int64(n) + c.frameLeft
	}
	return int(max(min(want, int64(trustFactor*n+c.readBufSize)), int64(n), minMessageGrowth))
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
	ec.z, ec.zN = ec.appendTo(ec.z, ec.zN, p)
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
	mt := int(c.msgType)
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
	if ec.hs != nil && ec.hs.buf != nil {
		putBuffer(ec.hs.buf)
		ec.hs.buf = nil
	}
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
	if ec.c != nil && ec.c.inflate != nil {
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
	if ec.fdClosed || ec.out == nil {
		// Nothing queued: a readiness report that crossed the last
		// flush.
		return
	}
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
		// Dropped, not kept for the next deadline: most connections
		// have one only during the handshake, and an idle connection
		// should not pay a timer (about 100 bytes) for it. A callback
		// already under way finds no deadline and does nothing.
		if ec.timer != nil {
			ec.timer.Stop()
			ec.timer = nil
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

// keepAliveExpired hands the expiry of the Conn's keepalive to the loop,
// which owns the read side, as an expired read deadline is.
func (ec *engineConn) keepAliveExpired() { ec.deadlineFired() }

// deadlinePassed reports whether the read deadline is set and past (it may
// have been moved since the timer fired).
func (ec *engineConn) deadlinePassed() bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return ec.deadline != 0 && time.Now().UnixNano() >= ec.deadline
}

var _ net.Conn = (*engineConn)(nil)
