package main

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// ponger answers the server's pings on every connection while the client
// otherwise sleeps: one epoll instance and one goroutine for all of them,
// as a client holding a million connections must (a goroutine reading
// each would cost more memory than the server under test). It reads a
// connection's socket directly, so it stops before the client reads
// frames itself (broadcast, final echo).
type ponger struct {
	epfd    int
	stop    atomic.Bool
	done    sync.WaitGroup
	pongs   atomic.Int64
	partial atomic.Int64 // reads that ended inside a frame
}

func startPonger() (*ponger, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &ponger{epfd: epfd}
	p.done.Add(1)
	go p.run()
	return p, nil
}

// add has the ponger answer c's pings from now on: from its connection,
// since the server may ping it before the client has opened the rest.
func (p *ponger) add(c *clientConn) error {
	rc, err := c.nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	rc.Control(func(s uintptr) { fd = int(s) })
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (p *ponger) run() {
	defer p.done.Done()
	events := make([]syscall.EpollEvent, 256)
	buf := make([]byte, 4096)
	for !p.stop.Load() {
		// A timeout, so that stop is seen within 100 ms.
		n, err := syscall.EpollWait(p.epfd, events, 100)
		if err != nil {
			continue
		}
		for _, ev := range events[:n] {
			m, err := syscall.Read(int(ev.Fd), buf)
			if err != nil || m <= 0 {
				// Gone or nothing: leave it to the final echo to
				// count; stop watching it.
				syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(ev.Fd), nil)
				continue
			}
			p.answer(int(ev.Fd), buf[:m])
		}
	}
}

// answer writes a pong for each ping in b, the frames a read returned.
func (p *ponger) answer(fd int, b []byte) {
	for len(b) >= 2 {
		op, n := b[0]&0x0f, int(b[1]&0x7f)
		if n > 125 || len(b) < 2+n {
			// A data frame (none is sent while the client sleeps) or a
			// cut one: not expected; counted.
			p.partial.Add(1)
			return
		}
		if op == 0x9 {
			syscall.Write(fd, pongFrame(b[2:2+n]))
			p.pongs.Add(1)
		}
		b = b[2+n:]
	}
	if len(b) > 0 {
		p.partial.Add(1)
	}
}

// close stops the ponger and waits for it.
func (p *ponger) close() {
	p.stop.Store(true)
	p.done.Wait()
	syscall.Close(p.epfd)
}

// pongFrame is a masked pong carrying payload.
func pongFrame(payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	f := make([]byte, 6, 6+len(payload))
	f[0], f[1] = 0x8a, 0x80|byte(len(payload))
	copy(f[2:], key[:])
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}
