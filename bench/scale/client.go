package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clientConn is one raw WebSocket client connection: the handshake by
// hand, frames read and written directly, so the client process stays
// small and its cost out of the server's figures.
type clientConn struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(addr string) (*clientConn, error) {
	nc, err := net.Dial("tcp", addr)
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
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	return &clientConn{nc: nc, br: br}, nil
}

// readFrame reads one unmasked server frame and returns its payload.
func (c *clientConn) readFrame() ([]byte, error) {
	var h [10]byte
	if _, err := io.ReadFull(c.br, h[:2]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, h[2:4]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		if _, err := io.ReadFull(c.br, h[2:10]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(h[2:10])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(c.br, p)
	return p, err
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

func runClient(addr string, n int) error {
	start := time.Now()
	conns := make([]*clientConn, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 64)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialRaw(addr)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	fmt.Printf("seconds=%.3f\n", time.Since(start).Seconds())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "arm":
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
			fmt.Printf("ok=%d seconds=%.3f\n", ok.Load(), time.Since(t0).Seconds())
		case "quit":
			fmt.Println("bye")
			return nil
		}
	}
	return in.Err()
}
