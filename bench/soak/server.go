package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsforge/websocket"
)

// The server: net/http and websocket.Upgrader in this process, echoing every
// data message with its type and bytes. The client picks, per connection
// and through the query string, the Upgrader variant, the echo style, how
// often the server pings and pushes messages of its own, and whether and how
// the server drops the connection.

// upgraderVariants are the server configurations a connection can ask for.
// The first two serve connections without compression (the second has
// compression enabled, but those clients do not offer it); the others
// negotiate permessage-deflate with different options. Shared
// WriteBufferPools make connections hand write buffers to each other.
func upgraderVariants() []*websocket.Upgrader {
	pool512 := &sync.Pool{}
	return []*websocket.Upgrader{
		{},
		{EnableCompression: true, ReadBufferSize: 512, WriteBufferSize: 512, WriteBufferPool: pool512},
		// Compressing variants.
		{EnableCompression: true},
		{EnableCompression: true, Compression: websocket.CompressionOptions{
			ServerNoContextTakeover: true, ClientNoContextTakeover: true, Threshold: -1}},
		{EnableCompression: true, Compression: websocket.CompressionOptions{
			ClientMaxWindowBits: 9, ServerMaxWindowBits: 10, Level: 1}},
		{EnableCompression: true, WriteBufferSize: 512, WriteBufferPool: pool512, Compression: websocket.CompressionOptions{
			Level: -2}},
		{EnableCompression: true, ReadBufferSize: 512, Compression: websocket.CompressionOptions{
			ServerNoContextTakeover: true, Level: 9, Threshold: 256}},
	}
}

const plainVariants = 2 // upgraderVariants()[:2] do not compress

type server struct {
	cfg       *config
	corpus    *corpus
	upgraders []*websocket.Upgrader
	// broadcast holds PreparedMessages shared by every server connection,
	// as a broadcaster would: concurrent WritePreparedMessage calls on
	// connections with different compression parameters, all reading the
	// same cached frames.
	broadcast []*websocket.PreparedMessage
	handlers  sync.WaitGroup
	active    atomic.Int64
}

func newServer(cfg *config, c *corpus) *server {
	s := &server{cfg: cfg, corpus: c, upgraders: upgraderVariants()}
	for i := 0; i < 16; i++ {
		// Sizes from a header's worth to 64 KiB, text and binary.
		size := min(hdrLen+(1<<i)*2-2, cfg.maxSize)
		h := header{kind: kindBroadcast, typ: "TB"[i%2], method: sendPrepared, seq: uint64(i), length: size}
		data := appendMessage(nil, c, cfg.seed, &h)
		mt := websocket.BinaryMessage
		if h.text() {
			mt = websocket.TextMessage
		}
		pm, err := websocket.NewPreparedMessage(mt, data)
		if err != nil {
			panic(err)
		}
		s.broadcast = append(s.broadcast, pm)
	}
	return s
}

// connParams is what the client asks of the server for one connection.
type connParams struct {
	slot, gen uint32
	variant   int
	echo      string        // "msg", "copy" or "chunk"
	pushEvery time.Duration // mean interval between pushes; 0: none
	pingEvery time.Duration
	dropAfter time.Duration // 0: the server does not drop the connection
	dropKind  string        // "graceful", "close" or "mid"
}

func (p *connParams) query() string {
	return "/echo?slot=" + strconv.FormatUint(uint64(p.slot), 10) +
		"&gen=" + strconv.FormatUint(uint64(p.gen), 10) +
		"&v=" + strconv.Itoa(p.variant) +
		"&echo=" + p.echo +
		"&push=" + strconv.FormatInt(p.pushEvery.Milliseconds(), 10) +
		"&ping=" + strconv.FormatInt(p.pingEvery.Milliseconds(), 10) +
		"&drop=" + strconv.FormatInt(p.dropAfter.Milliseconds(), 10) +
		"&dk=" + p.dropKind
}

func parseParams(r *http.Request) (connParams, error) {
	q := r.URL.Query()
	num := func(k string) int64 {
		v, _ := strconv.ParseInt(q.Get(k), 10, 64)
		return v
	}
	p := connParams{
		slot:      uint32(num("slot")),
		gen:       uint32(num("gen")),
		variant:   int(num("v")),
		echo:      q.Get("echo"),
		pushEvery: time.Duration(num("push")) * time.Millisecond,
		pingEvery: time.Duration(num("ping")) * time.Millisecond,
		dropAfter: time.Duration(num("drop")) * time.Millisecond,
		dropKind:  q.Get("dk"),
	}
	if p.pingEvery <= 0 {
		p.pingEvery = 15 * time.Second
	}
	return p, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer guard("server handler")
	p, _ := parseParams(r)
	label("server handler", p.slot, p.gen)
	if p.variant < 0 || p.variant >= len(s.upgraders) {
		http.Error(w, "bad variant", http.StatusBadRequest)
		return
	}
	conn, err := s.upgraders[p.variant].Upgrade(w, r, nil)
	if err != nil {
		serverErrs.add("upgrade: " + classify(err))
		stats.srvFailures.Add(1)
		return
	}
	// The echo streams through NextWriter while the pusher writes from a
	// goroutine of its own: declare it, or gorilla's rule (the next
	// message closes a writer left open) could close an echo caught
	// between two of its writes.
	conn.EnableConcurrentWriters()
	s.handlers.Add(1)
	s.active.Add(1)
	defer func() {
		s.active.Add(-1)
		s.handlers.Done()
	}()

	timeout := s.cfg.timeout
	conn.SetReadLimit(int64(s.cfg.maxSize) + hdrLen)
	// The gorilla pattern: a pong answering the server's ping extends the
	// read deadline, so an idle but healthy client is not timed out.
	conn.SetPongHandler(func(string) error {
		stats.srvPongs.Add(1)
		return conn.SetReadDeadline(time.Now().Add(timeout))
	})

	// The pusher writes concurrently with the echo loop: pings, messages
	// of its own, and the planned drop. It must be gone before the handler
	// returns, or goroutines would outlive their connection.
	done := make(chan struct{})
	var readEnded atomic.Int64 // unix nanoseconds
	var pusher sync.WaitGroup
	pusher.Add(1)
	go func() {
		defer pusher.Done()
		label("server pusher", p.slot, p.gen)
		s.push(conn, &p, done, &readEnded)
	}()
	defer func() {
		close(done)
		conn.Close()
		pusher.Wait()
	}()

	// What the default close handler does (answer with the same code,
	// waiting at most a second), plus noting a reply that could not go out
	// in time: the client's CloseGracefully then waits in vain (see
	// markPoisoned).
	conn.SetCloseHandler(func(code int, text string) error {
		err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			k := classify(err)
			serverErrs.add("close reply: " + k)
			if k == "timeout" || k == "write lock timeout" {
				markPoisoned(p.slot, p.gen, "server's close reply")
			}
		}
		return nil
	})

	var err2 error
	switch p.echo {
	case "copy", "chunk":
		err2 = s.echoStream(conn, &p)
	default:
		err2 = s.echoMessages(conn, &p)
	}
	readEnded.Store(time.Now().UnixNano())
	s.noteErr("read", err2, time.Time{}, &p)
}

// noteErr counts an error met by the server in an operation begun at
// started (zero for reads). Those a departing client explains (EOF, reset,
// its close frame) are expected. A socket write timeout long before the
// operation's own deadline is the sticky error of an earlier 1-second
// control frame write (the library's pong or close): the known issue
// described in README.md, counted apart. The rest fail the run.
func (s *server) noteErr(where string, err error, started time.Time, p *connParams) {
	if err == nil {
		return
	}
	k := classify(err)
	if k == "timeout" && !started.IsZero() && time.Since(started) < s.cfg.timeout/2 {
		k = "timeout long before the deadline"
		serverErrs.add(where + ": " + k)
		markPoisoned(p.slot, p.gen, "server "+where)
		return
	}
	serverErrs.add(where + ": " + k)
	if isFailureOnServer(err) {
		stats.srvFailures.Add(1)
		logLimited("server "+k, "server %s: %v (slot %d gen %d)", where, err, p.slot, p.gen)
		if k == "timeout" {
			dumpGoroutines(fmt.Sprintf("server-timeout-slot%d-gen%d", p.slot, p.gen))
		}
	}
}

func (s *server) echoMessages(conn *websocket.Conn, p *connParams) error {
	for {
		conn.SetReadDeadline(time.Now().Add(s.cfg.timeout))
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		started := time.Now()
		conn.SetWriteDeadline(started.Add(s.cfg.timeout))
		if err := conn.WriteMessage(mt, data); err != nil {
			s.noteErr("echo write", err, started, p)
			return nil
		}
		stats.srvEchoed.Add(1)
		stats.srvEchoBytes.Add(int64(len(data)))
	}
}

// hideReaderFrom and hideWriterTo strip the optional interfaces, so that
// io.CopyBuffer really goes through the buffer: the library's plain
// Read and Write paths instead of its ReadFrom.
type hideWriterTo struct{ io.Reader }
type hideReaderFrom struct{ io.Writer }

// echoStream echoes each message as it arrives, without holding it whole:
// NextReader into NextWriter, with io.Copy (the writer's ReadFrom) or
// through a small buffer of varying size.
func (s *server) echoStream(conn *websocket.Conn, p *connParams) error {
	rng := prng{s: seedOf(s.cfg.seed, purposeServer, uint64(p.slot), uint64(p.gen))}
	buf := make([]byte, 16<<10)
	for {
		conn.SetReadDeadline(time.Now().Add(s.cfg.timeout))
		mt, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		started := time.Now()
		conn.SetWriteDeadline(started.Add(s.cfg.timeout))
		w, err := conn.NextWriter(mt)
		if err != nil {
			s.noteErr("echo write", err, started, p)
			return nil
		}
		var n int64
		if p.echo == "copy" {
			n, err = io.Copy(w, r)
		} else {
			n, err = io.CopyBuffer(hideReaderFrom{w}, hideWriterTo{r}, buf[:1+rng.n(len(buf))])
		}
		if err != nil {
			// The message did not arrive whole, or its echo could not be
			// written (io.Copy does not say which). Closing the
			// connection before the writer keeps the echo's final frame,
			// which would make a truncated message look complete, off
			// the wire.
			conn.Close()
			w.Close()
			s.noteErr("echo copy", fmt.Errorf("%w (after %d bytes of the message)", err, n), started, p)
			return nil
		}
		if err := w.Close(); err != nil {
			s.noteErr("echo write", err, started, p)
			return nil
		}
		stats.srvEchoed.Add(1)
		stats.srvEchoBytes.Add(n)
	}
}

// push runs beside the echo loop of one server connection until done.
func (s *server) push(conn *websocket.Conn, p *connParams, done <-chan struct{}, readEnded *atomic.Int64) {
	defer guard("server pusher")
	rng := prng{s: seedOf(s.cfg.seed, purposeServer, uint64(p.slot), uint64(p.gen), 1)}
	start := time.Now()
	nextPing := start.Add(rng.jitter(p.pingEvery))
	nextPush := time.Time{}
	if p.pushEvery > 0 {
		nextPush = start.Add(time.Duration(rng.exp(float64(p.pushEvery))))
	}
	dropAt := time.Time{}
	if p.dropAfter > 0 {
		dropAt = start.Add(p.dropAfter)
	}
	var seq uint64
	var buf []byte
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := nextPing
		if !nextPush.IsZero() && nextPush.Before(next) {
			next = nextPush
		}
		if !dropAt.IsZero() && dropAt.Before(next) {
			next = dropAt
		}
		timer.Reset(time.Until(next))
		select {
		case <-done:
			return
		case <-timer.C:
		}
		now := time.Now()
		conn.SetWriteDeadline(now.Add(s.cfg.timeout))
		var err error
		switch {
		case !dropAt.IsZero() && !now.Before(dropAt):
			s.drop(conn, p, &rng, readEnded)
			return
		case !now.Before(nextPing):
			nextPing = now.Add(rng.jitter(p.pingEvery))
			err = conn.WriteControl(websocket.PingMessage, []byte("server ping"), now.Add(s.cfg.timeout))
			stats.srvPings.Add(1)
		default:
			nextPush = now.Add(time.Duration(rng.exp(float64(p.pushEvery))))
			if rng.n(3) == 0 {
				err = conn.WritePreparedMessage(s.broadcast[rng.n(len(s.broadcast))])
			} else {
				buf, err = s.pushOwn(conn, p, &rng, seq, buf)
				seq++
			}
			if err == nil {
				stats.srvPushes.Add(1)
			}
			if rng.n(20) == 0 {
				// Write-side setters are documented as safe beside
				// concurrent writes; flip them under load.
				conn.EnableWriteCompression(rng.n(4) != 0)
				conn.SetCompressionLevel(rng.between(-2, 9))
			}
		}
		if err != nil {
			select {
			case <-done:
				// The handler ended the connection under us.
			default:
				s.noteErr("push", err, now, p)
			}
			return
		}
	}
}

// pushOwn sends one 'P' message with the connection's next push sequence
// number, written whole or streamed in pieces.
func (s *server) pushOwn(conn *websocket.Conn, p *connParams, rng *prng, seq uint64, buf []byte) ([]byte, error) {
	size := hdrLen + rng.n(2048)
	if rng.n(10) == 0 {
		size = hdrLen + rng.n(64<<10)
	}
	size = min(size, s.cfg.maxSize)
	h := header{kind: kindPush, typ: "TB"[rng.n(2)], method: sendWrite, conn: p.slot, gen: p.gen, seq: seq, length: size}
	if rng.n(2) == 0 {
		h.method = sendStream
	}
	buf = appendMessage(buf[:0], s.corpus, s.cfg.seed, &h)
	mt := websocket.BinaryMessage
	if h.text() {
		mt = websocket.TextMessage
	}
	conn.SetWriteDeadline(time.Now().Add(s.cfg.timeout))
	if h.method == sendWrite {
		return buf, conn.WriteMessage(mt, buf)
	}
	w, err := conn.NextWriter(mt)
	if err != nil {
		return buf, err
	}
	for rest := buf; len(rest) > 0; {
		n := min(len(rest), 1+rng.n(4096))
		if _, err := w.Write(rest[:n]); err != nil {
			w.Close()
			return buf, err
		}
		rest = rest[n:]
	}
	return buf, w.Close()
}

// drop ends the connection the way the client asked: a closing handshake
// while the handler goroutine is still reading, an abrupt close, or closing
// the TCP connection in the middle of a streamed message.
//
// readEnded is when the handler's read loop ended (0 while it runs).
// CloseGracefully should return once the connection's reader has failed or
// the connection is closed, since the peer's close can no longer be seen;
// one that waits on is counted (a known issue, see README.md).
func (s *server) drop(conn *websocket.Conn, p *connParams, rng *prng, readEnded *atomic.Int64) {
	switch p.dropKind {
	case "graceful":
		err := conn.CloseGracefully(websocket.CloseGoingAway, "server drop", s.cfg.timeout)
		if err != nil {
			serverErrs.add("graceful drop: " + classify(err))
		}
		if re := readEnded.Load(); re != 0 {
			if late := time.Since(time.Unix(0, re)); late > 2*time.Second {
				noteLinger(late)
			}
		}
	case "mid":
		w, err := conn.NextWriter(websocket.BinaryMessage)
		if err == nil {
			w.Write(make([]byte, 1+rng.n(8192)))
			conn.NetConn().Close()
			w.Write(make([]byte, 1+rng.n(8192)))
			w.Close()
		}
		conn.Close()
	default:
		conn.Close()
	}
}
