package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"strings"
	"time"
)

// The common raw client: a minimal RFC 6455 client over a net.Conn, the
// same against every server, so that server CPU is compared under one load.
// Frames are built and masked once per message size and written as they
// are; echoes are parsed only as far as needed to find their end.

var rawMaskKey = [4]byte{0x5a, 0xc3, 0x17, 0x9e}

var errPeerClosed = errors.New("raw client: server sent a close frame")

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
	// extensions is the Sec-WebSocket-Extensions value of the response.
	extensions string
}

// handshakeRequest is written verbatim; the key is fixed because no server
// here cares that it is random. extensions, when not empty, is sent as
// Sec-WebSocket-Extensions.
func handshakeRequest(addr, extensions string) []byte {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: ")
	b.WriteString(addr)
	b.WriteString("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	if extensions != "" {
		b.WriteString("Sec-WebSocket-Extensions: " + extensions + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// rawDial connects and upgrades. bufSize is the size of the read buffer
// kept for the connection's lifetime; br, when not nil, is reset onto the
// connection instead of allocating one.
func rawDial(addr string, req []byte, bufSize int, br *bufio.Reader) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	rc, err := rawUpgrade(c, req, bufSize, br)
	if err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}

func rawUpgrade(c net.Conn, req []byte, bufSize int, br *bufio.Reader) (*rawConn, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(c, bufSize)
	} else {
		br.Reset(c)
	}
	rc := &rawConn{c: c, br: br}
	status, err := br.ReadSlice('\n')
	if err != nil {
		return nil, fmt.Errorf("raw client: reading handshake response: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		return nil, fmt.Errorf("raw client: handshake refused: %q", bytes.TrimSpace(status))
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("raw client: reading handshake response: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return rc, nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(k)), "Sec-WebSocket-Extensions") {
			rc.extensions = string(bytes.TrimSpace(v))
		}
	}
}

// maskedFrame builds one complete client frame (FIN set) around payload,
// masked with rawMaskKey.
func maskedFrame(opcode byte, payload []byte, rsv1 bool) []byte {
	b0 := 0x80 | opcode
	if rsv1 {
		b0 |= 0x40
	}
	f := []byte{b0}
	n := len(payload)
	switch {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, rawMaskKey[:]...)
	start := len(f)
	f = append(f, payload...)
	for i := range f[start:] {
		f[start+i] ^= rawMaskKey[i&3]
	}
	return f
}

// closeFrame is a masked close frame with status 1000.
var closeFrame = maskedFrame(0x8, []byte{0x03, 0xe8}, false)

// makePayload returns size random bytes.
func makePayload(size int) []byte {
	p := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(p)
	return p
}

// readMessage consumes frames up to the end of the next data message and
// returns its total payload length. Pings and pongs are skipped; a close
// frame ends the connection.
func (rc *rawConn) readMessage() (int, error) {
	total := 0
	for {
		h, err := rc.br.Peek(2)
		if err != nil {
			return total, err
		}
		b0, b1 := h[0], h[1]
		hl := 2
		switch b1 & 0x7f {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if b1&0x80 != 0 {
			hl += 4
		}
		h, err = rc.br.Peek(hl)
		if err != nil {
			return total, err
		}
		n := int(b1 & 0x7f)
		switch n {
		case 126:
			n = int(binary.BigEndian.Uint16(h[2:]))
		case 127:
			n = int(binary.BigEndian.Uint64(h[2:]))
		}
		if _, err := rc.br.Discard(hl); err != nil {
			return total, err
		}
		if _, err := rc.br.Discard(n); err != nil {
			return total, err
		}
		op := b0 & 0x0f
		if op == 0x8 {
			return total, errPeerClosed
		}
		if op >= 0x8 {
			continue
		}
		total += n
		if b0&0x80 != 0 {
			return total, nil
		}
	}
}

// closeHard closes without leaving a TIME_WAIT socket behind, so that runs
// with tens of thousands of connections do not exhaust ephemeral ports.
func (rc *rawConn) closeHard() {
	if tc, ok := rc.c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = rc.c.Close()
}

// closeClean sends a close frame, waits for the server's close frame or
// the end of the stream, then closes hard.
func (rc *rawConn) closeClean() {
	if _, err := rc.c.Write(closeFrame); err == nil {
		_ = rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			if _, err := rc.readMessage(); err != nil {
				break
			}
		}
	}
	rc.closeHard()
}
