package main

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	wsforge "github.com/wsforge/websocket"
)

// BenchmarkUpgrade measures what a library's Upgrade call itself costs,
// with no network, no HTTP parsing and no scheduler: the request is parsed
// once, and the response writer hands out a connection that discards what
// is written. Set against the handshake suite's server µs per upgrade
// (accept, net/http, the upgrade, the close), it shows how little of a real
// handshake the library controls.
//
//	cd bench && go test -run '^$' -bench Upgrade -benchmem
func BenchmarkUpgrade(b *testing.B) {
	raw := "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader([]byte(raw))))
	if err != nil {
		b.Fatal(err)
	}
	libs := []struct {
		name    string
		upgrade func(w http.ResponseWriter) error
	}{
		{"wsforge", func(w http.ResponseWriter) error {
			var up wsforge.Upgrader
			c, err := up.Upgrade(w, req, nil)
			if err == nil {
				c.Close()
			}
			return err
		}},
		{"gorilla", func(w http.ResponseWriter) error {
			var up gorilla.Upgrader
			c, err := up.Upgrade(w, req, nil)
			if err == nil {
				c.Close()
			}
			return err
		}},
	}
	for _, lib := range libs {
		b.Run(lib.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				w := &hijackWriter{header: http.Header{}}
				if err := lib.upgrade(w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// hijackWriter is an http.ResponseWriter and http.Hijacker whose
// connection discards writes and has nothing to read.
type hijackWriter struct {
	header http.Header
	conn   nullConn
	rw     *bufio.ReadWriter
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}

func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// net/http's bufio pools are refilled only by connections that end
	// unhijacked, so under upgrades every connection gets fresh 4 KiB
	// buffers.
	w.rw = bufio.NewReadWriter(bufio.NewReaderSize(&w.conn, 4096), bufio.NewWriterSize(&w.conn, 4096))
	return &w.conn, w.rw, nil
}

type nullConn struct{}

func (*nullConn) Read([]byte) (int, error)         { return 0, net.ErrClosed }
func (*nullConn) Write(p []byte) (int, error)      { return len(p), nil }
func (*nullConn) Close() error                     { return nil }
func (*nullConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (*nullConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (*nullConn) SetDeadline(time.Time) error      { return nil }
func (*nullConn) SetReadDeadline(time.Time) error  { return nil }
func (*nullConn) SetWriteDeadline(time.Time) error { return nil }
