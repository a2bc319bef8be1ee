//go:build unix

package websocket

import (
	"io"
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
		return true, err
	}
	if ir.err != nil {
		return true, ir.err
	}
	if ir.n <= 0 {
		return true, io.EOF
	}
	c.rend += ir.n
	return true, nil
}
