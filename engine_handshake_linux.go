//go:build linux

package websocket

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The opening handshake of connections an Engine accepts itself (Serve):
// the loop gathers the request's line and headers, parses them with
// net/http's parser, and runs Upgrader.Upgrade against a ResponseWriter
// that hijacks to the engine's own connection, so that every rule of the
// handshake is the Upgrader's, written once.

const (
	// maxEngineHandshake bounds a request's line and headers.
	maxEngineHandshake = 16 << 10
	// defaultEngineHandshakeTimeout bounds the wait for them when the
	// Upgrader sets no HandshakeTimeout.
	defaultEngineHandshakeTimeout = 10 * time.Second
)

// engineHandshake is a connection's state until its request is read.
type engineHandshake struct {
	u   *Upgrader
	h   EventHandler
	buf *buffer // the request so far
	n   int
}

var headerEnd = []byte("\r\n\r\n")

// handshake takes b, the next bytes of ec's request, and once the request
// is whole upgrades it or answers it with an error.
func (l *eventLoop) handshake(ec *engineConn, b []byte) {
	hs := ec.hs
	if hs.n+len(b) > maxEngineHandshake {
		ec.respond(http.StatusRequestHeaderFieldsTooLarge, nil, nil)
		l.finish(ec, nil)
		return
	}
	if hs.buf == nil || len(hs.buf.b)-hs.n < len(b) {
		nb := getBuffer(min(max(1024, 2*(hs.n+len(b))), maxEngineHandshake))
		if hs.buf != nil {
			copy(nb.b, hs.buf.b[:hs.n])
			putBuffer(hs.buf)
		}
		hs.buf = nb
	}
	hs.n += copy(hs.buf.b[hs.n:], b)
	data := hs.buf.b[:hs.n]
	end := bytes.Index(data, headerEnd)
	if end < 0 {
		return
	}
	end += len(headerEnd)
	// A reader the request's size, not bufio's default 4 KiB: at tens of
	// thousands of handshakes a second that garbage is what sets the
	// process's resident size.
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(data[:end]), end))
	if err != nil {
		ec.respond(http.StatusBadRequest, nil, nil)
		l.finish(ec, nil)
		return
	}
	req.RemoteAddr = ec.RemoteAddr().String()
	w := &handshakeResponse{ec: ec, rest: data[end:], header: http.Header{}}
	c, err := hs.u.Upgrade(w, req, nil)
	// Upgrade copied the bytes that followed the request.
	putBuffer(hs.buf)
	hs.buf = nil
	if err != nil {
		if !w.hijacked {
			ec.respond(w.status, w.header, w.body.Bytes())
		}
		l.finish(ec, nil)
		return
	}
	ec.hs = nil
	ec.attach(c, hs.h)
	l.start(ec)
}

// respond writes an HTTP error response, best effort: it is small, and a
// peer that does not take it loses nothing it could use.
func (ec *engineConn) respond(status int, header http.Header, body []byte) {
	if status == 0 {
		status = http.StatusOK
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	header = header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set("Connection", "close")
	header.Set("Content-Length", strconv.Itoa(len(body)))
	header.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	ec.Write(b.Bytes())
}

// handshakeResponse is the http.ResponseWriter Upgrade gets for a request
// the Engine read itself: hijacking yields the engine's connection, and an
// error response is kept for respond.
type handshakeResponse struct {
	ec       *engineConn
	rest     []byte // bytes that followed the request
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *handshakeResponse) Header() http.Header { return w.header }

func (w *handshakeResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *handshakeResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Hijack returns the engine's connection and a reader that holds the bytes
// which followed the request, buffered, as net/http's would.
func (w *handshakeResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	br := bufio.NewReaderSize(bytes.NewReader(w.rest), max(16, len(w.rest)))
	if len(w.rest) > 0 {
		br.Peek(len(w.rest))
	}
	return w.ec, bufio.NewReadWriter(br, bufio.NewWriterSize(w.ec, 256)), nil
}
