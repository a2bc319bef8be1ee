package websocket

// Fake connections: net.Conns that serve a prepared stream, record what is
// written to them or the deadlines set on them, or fail writes on cue, for
// tests and benchmarks that drive a Conn without a network.

import (
	"bytes"
	"io"
	"net"
	"sync"
	"time"
)

// stubAddr is the address the stub connections report.
type stubAddr struct{}

func (stubAddr) Network() string { return "stub" }
func (stubAddr) String() string  { return "stub" }

// discardConn is a net.Conn whose writes vanish, for measuring the write
// path alone. Reads report io.EOF.
type discardConn struct{}

func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Close() error                     { return nil }
func (discardConn) LocalAddr() net.Addr              { return stubAddr{} }
func (discardConn) RemoteAddr() net.Addr             { return stubAddr{} }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// ringConn is a net.Conn whose reads serve a prebuilt stream of whole
// frames over and over, for measuring the read path alone. Writes (pongs,
// close frames) vanish.
type ringConn struct {
	discardConn
	data []byte
	pos  int
}

func (c *ringConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.pos:])
	c.pos += n
	if c.pos == len(c.data) {
		c.pos = 0
	}
	return n, nil
}

// chunkedConn is a net.Conn whose reads serve data, at most chunk bytes at
// a time (chunk 0: as much as asked), then io.EOF, and which keeps what is
// written to it (written). After Close, reads and writes fail.
type chunkedConn struct {
	discardConn
	mu     sync.Mutex
	data   []byte
	chunk  int
	out    []byte
	closed bool
}

func (c *chunkedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *chunkedConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// written returns what has been written to c.
func (c *chunkedConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out
}

// blockingConn is a net.Conn whose writes block, once armed, until
// released, reporting that one has started.
type blockingConn struct {
	discardConn
	mu       sync.Mutex
	out      bytes.Buffer
	armed    bool
	blocked  chan struct{} // receives when an armed write starts
	released chan struct{} // closed to let writes through
}

func (c *blockingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	armed := c.armed
	c.armed = false
	c.mu.Unlock()
	if armed {
		c.blocked <- struct{}{}
		<-c.released
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// timeoutConn is a net.Conn whose next write, once armed, fails with
// a timeout after writing n bytes of what it was given.
type timeoutConn struct {
	discardConn
	mu    sync.Mutex
	out   bytes.Buffer
	armed bool
	n     int
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed {
		c.armed = false
		n := min(c.n, len(p))
		c.out.Write(p[:n])
		return n, &netError{msg: "i/o timeout", timeout: true}
	}
	return c.out.Write(p)
}

// deadlineConn wraps a net.Conn and records the deadlines set on it: every
// SetDeadline call in order, the read and write deadlines in force, and
// the write deadline in force at each Write.
type deadlineConn struct {
	net.Conn
	mu            sync.Mutex
	deadlines     []time.Time // SetDeadline's arguments
	read, write   time.Time
	writeDeadline []time.Time
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.read, c.write = t, t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.read = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.write = t
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writeDeadline = append(c.writeDeadline, c.write)
	c.mu.Unlock()
	return c.Conn.Write(p)
}
