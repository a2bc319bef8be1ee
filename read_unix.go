//go:build unix

package websocket

import (
	"io"
	"net"
	"os"
	"syscall"
)

// Waiting for a peer without holding a read buffer.
//
// A connection blocked between messages would otherwise pin its read
// buffer for as long as the peer stays quiet. On unix sockets the wait goes
// through syscall.RawConn: the runtime's poller parks the goroutine until
// the socket is readable, and only then is a buffer taken from the pool
// and the bytes read with one read(2). A read that finds nothing gives the
// buffer back before parking again.
//
// Errors keep the shape net.Conn.Read gives them, so that a program sees
// the same error whichever way the bytes were waited for: a *net.OpError
// with Op "read" whose Err is what net would report (os.ErrDeadlineExceeded,
// net.ErrClosed, an *os.SyscallError for "read"), and io.EOF unwrapped.

// idleReader holds what the raw read callback needs; the callback is a
// method value made once per connection, so a wait allocates nothing.
type idleReader struct {
	raw  syscall.RawConn
	fn   func(fd uintptr) bool
	n    int
	err  error
	conn *Conn
}

// initIdleRead enables buffer-free waits when netConn exposes its file
// descriptor (plain TCP and unix sockets; not TLS).
func (c *Conn) initIdleRead() {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.idle = &idleReader{raw: raw, conn: c}
	c.idle.fn = c.idle.read
}

// read is the RawConn callback: it reports false to wait for readability.
func (ir *idleReader) read(fd uintptr) bool {
	c := ir.conn
	if c.rb == nil {
		c.rb = getBuffer(c.readBufSize)
		c.rbuf = c.rb.b
	}
	for {
		ir.n, ir.err = syscall.Read(int(fd), c.rbuf[c.rend:])
		if ir.err != syscall.EINTR {
			break
		}
	}
	if ir.err == syscall.EAGAIN {
		if c.rpos == c.rend {
			c.releaseReadBuf()
		}
		return false
	}
	return true
}

// fillIdle reads into an empty, released read buffer, waiting without one.
// It reports done false when this connection cannot wait that way.
func (c *Conn) fillIdle() (done bool, err error) {
	ir := c.idle
	if ir == nil {
		return false, nil
	}
	ir.n, ir.err = 0, nil
	if err := ir.raw.Read(ir.fn); err != nil {
		return true, asReadError(err)
	}
	if ir.err != nil {
		return true, c.readSyscallError(ir.err)
	}
	if ir.n <= 0 {
		return true, io.EOF
	}
	c.rend += ir.n
	return true, nil
}

// asReadError gives an error of RawConn.Read the Op that net.Conn.Read
// gives the same failure: net reports a deadline or a closed connection met
// in RawConn.Read as a *net.OpError with Op "raw-read". The *net.OpError is
// the one net allocated for this call, so it is changed in place.
func asReadError(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Op == "raw-read" {
		oe.Op = "read"
	}
	return err
}

// readSyscallError wraps an error of read(2) made in the RawConn callback
// as net.Conn.Read wraps it: "read tcp LOCAL->REMOTE: read: connection
// reset by peer". The network name is the local address's ("tcp" for a
// connection dialed as "tcp4" too, where net would say "tcp4").
func (c *Conn) readSyscallError(err error) error {
	if _, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError("read", err)
	}
	laddr := c.conn.LocalAddr()
	var network string
	if laddr != nil {
		network = laddr.Network()
	}
	return &net.OpError{Op: "read", Net: network, Source: laddr, Addr: c.conn.RemoteAddr(), Err: err}
}
