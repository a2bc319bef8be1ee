package websocket

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// WebSocket over HTTP/2 (RFC 8441), server side.
//
// A client that knows the server sent SETTINGS_ENABLE_CONNECT_PROTOCOL
// opens a WebSocket as one stream of an HTTP/2 connection: an extended
// CONNECT request (":method CONNECT", ":protocol websocket") that the
// server answers with 200, after which the stream's DATA frames carry
// the WebSocket frames both ways. Nothing is hijacked: the request body
// is the input and the ResponseWriter, flushed after every write, the
// output, so the stream lives only as long as the handler that upgraded
// it runs.

// isExtendedConnect reports whether r is an HTTP/2 extended CONNECT
// request (RFC 8441 section 4), whatever protocol it asks for.
func isExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor == 2 && r.Method == http.MethodConnect && r.Header.Get(":protocol") != ""
}

// checkRequestH2 is checkRequest for an extended CONNECT: RFC 8441
// section 5 keeps Sec-WebSocket-Version, the subprotocol and extension
// fields and the origin, and drops Connection, Upgrade and the key.
func (u *Upgrader) checkRequestH2(r *http.Request, responseHeader http.Header) (status int, reason string) {
	if !asciiEqualFold(r.Header.Get(":protocol"), "websocket") {
		return http.StatusBadRequest, "websocket: the client is not using the websocket protocol: ':protocol' pseudo-header is not websocket"
	}
	return u.checkVersionAndOrigin(r, responseHeader)
}

// upgradeH2 upgrades an extended CONNECT stream: it answers 200 with the
// negotiated subprotocol and extensions, flushed at once, and returns a
// Conn reading from the request body and writing through w.
func (u *Upgrader) upgradeH2(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	if status, reason := u.checkRequestH2(r, responseHeader); status != 0 {
		return u.fail(w, r, status, reason)
	}
	subprotocol := u.selectSubprotocol(r, responseHeader)
	pmd, extensions, pmdOK, err := u.negotiateCompression(r)
	if err != nil {
		return u.fail(w, r, http.StatusInternalServerError, err.Error())
	}

	h := w.Header()
	forEachResponseField(responseHeader, func(k, v string) {
		h.Add(k, string(appendFieldValue(nil, v)))
	})
	if subprotocol != "" {
		h.Set("Sec-Websocket-Protocol", string(appendFieldValue(nil, subprotocol)))
	}
	if extensions != "" {
		h.Set("Sec-Websocket-Extensions", extensions)
	}

	rc := http.NewResponseController(w)
	// The http.Server's timeouts are per stream on HTTP/2 and would
	// reset the WebSocket's stream when they passed.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	if u.HandshakeTimeout > 0 {
		rc.SetWriteDeadline(time.Now().Add(u.HandshakeTimeout))
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("websocket: writing handshake response: %w", err)
	}
	if u.HandshakeTimeout > 0 {
		rc.SetWriteDeadline(time.Time{})
	}

	s := newH2Stream(w, rc, r)
	c := newConn(s, true, u.ReadBufferSize, u.WriteBufferSize, u.WriteBufferPool, nil)
	c.subprotocol = subprotocol
	if pmdOK {
		c.extensions = extensions
		c.enableCompression(pmd, &u.Compression)
	}
	return c, nil
}

// h2Stream is the net.Conn of a Conn upgraded over HTTP/2: one stream of
// the client's HTTP/2 connection.
//
// HTTP/2's own deadlines (http.ResponseController's) reset the stream
// when they pass, so a timed-out read could never be retried; the read
// deadline here is the stream's own instead: a pump goroutine reads the
// request body, and Read waits for its chunks, the deadline or Close.
// The write deadline is handed to the ResponseController only while a
// write is under way, where passing it must break the stream anyway
// (the peer holds part of what was written); a write that starts past
// its deadline fails without sending, as on a socket.
type h2Stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	body  io.ReadCloser
	local net.Addr
	peer  net.Addr

	closeOnce sync.Once
	closed    chan struct{}

	// The read side: the pump sends a chunk of its buffer on data and
	// waits on consumed until Read has copied all of it out (rest).
	pumpOnce sync.Once
	data     chan []byte
	consumed chan struct{}
	rerr     error // why the pump stopped; written before data is closed
	rest     []byte
	rdl      netDeadline

	// The write side. dmu guards writing and wdl, so that a deadline
	// set during a write reaches the ResponseController at once.
	wmu     sync.Mutex
	dmu     sync.Mutex
	writing bool
	wdl     time.Time
}

// h2PumpSize is the pump's buffer: one chunk of request body at a time.
const h2PumpSize = 16 << 10

func newH2Stream(w http.ResponseWriter, rc *http.ResponseController, r *http.Request) *h2Stream {
	s := &h2Stream{
		w:        w,
		rc:       rc,
		body:     r.Body,
		closed:   make(chan struct{}),
		data:     make(chan []byte),
		consumed: make(chan struct{}, 1),
	}
	s.rdl.passed = make(chan struct{})
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.local = a
	}
	s.peer = remoteAddr(r.RemoteAddr)
	return s
}

// remoteAddr makes a net.Addr of http.Request.RemoteAddr.
func remoteAddr(s string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", s); err == nil {
		return a
	}
	return h2Addr(s)
}

// h2Addr is an address net could not parse, kept as text.
type h2Addr string

func (a h2Addr) Network() string { return "tcp" }
func (a h2Addr) String() string  { return string(a) }

// pump copies the request body to Read, a chunk at a time, until the
// body ends or the stream is closed.
func (s *h2Stream) pump() {
	buf := make([]byte, h2PumpSize)
	for {
		n, err := s.body.Read(buf)
		if n > 0 {
			select {
			case s.data <- buf[:n]:
			case <-s.closed:
				return
			}
			select {
			case <-s.consumed:
			case <-s.closed:
				return
			}
		}
		if err != nil {
			s.rerr = err
			close(s.data)
			return
		}
	}
}

func (s *h2Stream) Read(b []byte) (int, error) {
	if s.isClosed() {
		return 0, net.ErrClosed
	}
	if len(s.rest) == 0 {
		s.pumpOnce.Do(func() { go s.pump() })
		select {
		case chunk, ok := <-s.data:
			if !ok {
				return 0, s.rerr
			}
			s.rest = chunk
		case <-s.rdl.wait():
			return 0, os.ErrDeadlineExceeded
		case <-s.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(b, s.rest)
	s.rest = s.rest[n:]
	if len(s.rest) == 0 {
		s.consumed <- struct{}{}
	}
	return n, nil
}

func (s *h2Stream) Write(b []byte) (n int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return 0, net.ErrClosed
	}
	s.dmu.Lock()
	dl := s.wdl
	if !dl.IsZero() && !time.Now().Before(dl) {
		s.dmu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	s.writing = true
	if !dl.IsZero() {
		s.rc.SetWriteDeadline(dl)
	}
	s.dmu.Unlock()

	err = guardHandler(func() error {
		var err error
		if n, err = s.w.Write(b); err == nil {
			err = s.rc.Flush()
		}
		return err
	})

	s.dmu.Lock()
	s.writing = false
	if !s.wdl.IsZero() {
		s.rc.SetWriteDeadline(time.Time{})
	}
	dl = s.wdl
	s.dmu.Unlock()
	if err != nil {
		if !dl.IsZero() && !time.Now().Before(dl) {
			err = os.ErrDeadlineExceeded
		} else if s.isClosed() {
			err = net.ErrClosed
		}
	}
	return n, err
}

// guardHandler runs f, which uses the ResponseWriter, and turns the
// panic net/http raises when the handler has already returned into
// net.ErrClosed: the stream ended with the handler.
func guardHandler(f func() error) (err error) {
	defer func() {
		if recover() != nil {
			err = net.ErrClosed
		}
	}()
	return f()
}

// Close stops the stream's reads and writes; the handler's return then
// ends the stream, cleanly (END_STREAM, as a TCP FIN would), which a
// handler blocked in a read does at once since its read now fails. The
// HTTP/2 connection and its other streams go on. Ending it from here
// would take RST_STREAM, the abortive close, which would make a browser
// report an unclean close after a completed closing handshake; only a
// write under way is ended that way.
func (s *h2Stream) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		err = nil
		close(s.closed)
		s.body.Close()
		// A write blocked on the peer's flow control would never end:
		// that one stream is reset, its frame being cut anyway.
		s.dmu.Lock()
		if s.writing {
			guardHandler(func() error { return s.rc.SetWriteDeadline(time.Unix(1, 0)) })
		}
		s.dmu.Unlock()
	})
	return err
}

// isWriting reports whether a write is under way.
func (s *h2Stream) isWriting() bool {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	return s.writing
}

func (s *h2Stream) isClosed() bool { return isClosed(s.closed) }

func (s *h2Stream) LocalAddr() net.Addr  { return s.local }
func (s *h2Stream) RemoteAddr() net.Addr { return s.peer }

func (s *h2Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *h2Stream) SetReadDeadline(t time.Time) error {
	s.rdl.set(t)
	return nil
}

func (s *h2Stream) SetWriteDeadline(t time.Time) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	s.wdl = t
	if s.writing {
		guardHandler(func() error { return s.rc.SetWriteDeadline(t) })
	}
	return nil
}
