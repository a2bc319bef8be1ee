package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clientConn is one raw WebSocket client connection: the handshake by
// hand, frames read and written directly, so the client process stays
// small and its cost out of the server's figures.
type clientConn struct {
	nc net.Conn
	br *bufio.Reader
}

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (not in package
// syscall): bind to a source address but leave the port to connect, which
// then only needs it unique per destination. Without it, bind searches
// for a port free on the address, a search that grows with every
// connection already made: 19,000 connections took 20 times longer.
const ipBindAddressNoPort = 24

// dialRaw dials addr from the local address src (any when nil). The
// client's own TCP keepalive is off: the clients stand in for peers on
// other machines, and the probes under test are the server's.
func dialRaw(addr string, src net.Addr) (*clientConn, error) {
	d := net.Dialer{LocalAddr: src, KeepAlive: -1, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
		})
		return err
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 512)
	if err := readSwitch(br); err != nil {
		nc.Close()
		return nil, err
	}
	return &clientConn{nc: nc, br: br}, nil
}

// readSwitch reads the handshake's response up to its blank line and
// checks its status; the headers are the server's business here, and
// net/http's parser would cost the client more CPU than the server it
// measures.
func readSwitch(br *bufio.Reader) error {
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 101 ")) {
			return fmt.Errorf("handshake: %q", bytes.TrimSpace(line))
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
	}
}

// readFrame reads one unmasked server frame and returns its payload,
// answering and skipping pings (and skipping pongs) on the way.
func (c *clientConn) readFrame() ([]byte, error) {
	for {
		op, p, err := c.readAnyFrame()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x9:
			if _, err := c.nc.Write(pongFrame(p)); err != nil {
				return nil, err
			}
		case 0xa:
		default:
			return p, nil
		}
	}
}

// readAnyFrame reads one unmasked server frame.
func (c *clientConn) readAnyFrame() (byte, []byte, error) {
	var h [10]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[2:4]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(c.br, h[2:10]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(c.br, p)
	return h[0] & 0x0f, p, err
}

// writeText writes a small masked text frame.
func (c *clientConn) writeText(s string) error {
	key := [4]byte{1, 2, 3, 4}
	f := []byte{0x81, 0x80 | byte(len(s)), key[0], key[1], key[2], key[3]}
	for i := 0; i < len(s); i++ {
		f = append(f, s[i]^key[i%4])
	}
	_, err := c.nc.Write(f)
	return err
}

// runClient opens n connections to addr, from the source addresses in
// srcIPs (comma-separated, taken in turn; any when empty).
func runClient(addr, srcIPs string, n int) error {
	var srcs []net.Addr
	if srcIPs != "" {
		for _, ip := range strings.Split(srcIPs, ",") {
			srcs = append(srcs, &net.TCPAddr{IP: net.ParseIP(ip)})
		}
	}
	// Until the client reads frames itself, the ponger answers the
	// server's pings.
	pg, err := startPonger()
	if err != nil {
		return err
	}
	start := time.Now()
	conns := make([]*clientConn, n)
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var src net.Addr
			if len(srcs) > 0 {
				src = srcs[i%len(srcs)]
			}
			c, err := dialRaw(addr, src)
			if err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
				return
			}
			conns[i] = c
			if err := pg.add(c); err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err) })
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	fmt.Printf("seconds=%.3f\n", time.Since(start).Seconds())
	var pongs, partial int64
	stopPonger := func() {
		if pg != nil {
			pg.close()
			pongs, partial = pg.pongs.Load(), pg.partial.Load()
			pg = nil
		}
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "arm":
			stopPonger()
			var last atomic.Int64
			var got sync.WaitGroup
			for _, c := range conns {
				got.Add(1)
				go func(c *clientConn) {
					defer got.Done()
					if _, err := c.readFrame(); err == nil {
						t := nowNanos()
						for {
							old := last.Load()
							if t <= old || last.CompareAndSwap(old, t) {
								break
							}
						}
					}
				}(c)
			}
			fmt.Println("armed")
			got.Wait()
			fmt.Printf("last=%d\n", last.Load())
		case "echo":
			stopPonger()
			t0 := time.Now()
			var ok atomic.Int64
			var done sync.WaitGroup
			for _, c := range conns {
				done.Add(1)
				go func(c *clientConn) {
					defer done.Done()
					c.nc.SetDeadline(time.Now().Add(time.Minute))
					if c.writeText("echo") != nil {
						return
					}
					if p, err := c.readFrame(); err == nil && string(p) == "echo" {
						ok.Add(1)
					}
				}(c)
			}
			done.Wait()
			fmt.Printf("ok=%d seconds=%.3f pongs=%d partial=%d\n", ok.Load(), time.Since(t0).Seconds(), pongs, partial)
		case "stats":
			fmt.Printf("rss=%d cpu=%.3f\n", rssBytes(), cpuSeconds())
		case "quit":
			fmt.Println("bye")
			return nil
		}
	}
	return in.Err()
}
