package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsforge/websocket"
)

// The client side: -conns slots, each holding one connection at a time and
// redialling when it is dropped, until the run ends. A connection (a
// session) runs -writers writer goroutines and one reader goroutine; the
// slot's own goroutine coordinates the session's end.

type client struct {
	cfg     *config
	corpus  *corpus
	dialSem chan struct{} // bounds concurrent dials
	runEnd  chan struct{} // closed when the run's time is up
	slots   sync.WaitGroup
	// One WriteBufferPool per buffer size, shared by the connections that
	// use one, as the library's documentation asks.
	pools map[int]*sync.Pool
	// bigBufs holds message buffers above smallBuf, so that thousands of
	// writers do not each keep a megabyte between their rare large
	// messages; readBufs the stream readers' scratch space. Free lists
	// rather than sync.Pools: under the race detector every fresh large
	// allocation costs page faults in its shadow memory, and sync.Pools
	// are emptied at every GC.
	bigBufs  freeList[[]byte]
	readBufs freeList[[smallBuf]byte]
	// smallServerBuf marks the server variants with 512-byte write buffers.
	smallServerBuf []bool
}

// freeList is a bounded stack of reusable objects.
type freeList[T any] struct{ c chan *T }

func newFreeList[T any](n int) freeList[T] { return freeList[T]{c: make(chan *T, n)} }

func (f freeList[T]) get() *T {
	select {
	case v := <-f.c:
		return v
	default:
		return new(T)
	}
}

func (f freeList[T]) put(v *T) {
	select {
	case f.c <- v:
	default:
	}
}

// empty drops what the list holds, so that the heap measured at the end
// is the library's and the runtime's, not the soak's spare buffers.
func (f freeList[T]) empty() {
	for {
		select {
		case <-f.c:
		default:
			return
		}
	}
}

const smallBuf = 64 << 10

func newClient(cfg *config, c *corpus) *client {
	cl := &client{
		cfg:     cfg,
		corpus:  c,
		dialSem: make(chan struct{}, cfg.dialConc),
		runEnd:  make(chan struct{}),
		pools:   map[int]*sync.Pool{512: {}, 4096: {}},
		// Enough for the large messages in flight at once.
		bigBufs:  newFreeList[[]byte](32),
		readBufs: newFreeList[[smallBuf]byte](256),
	}
	for _, u := range upgraderVariants() {
		cl.smallServerBuf = append(cl.smallServerBuf, u.WriteBufferSize == 512)
	}
	return cl
}

func (cl *client) ended() bool {
	select {
	case <-cl.runEnd:
		return true
	default:
		return false
	}
}

// runSlot keeps one connection up until the run ends.
func (cl *client) runSlot(slot uint32) {
	defer cl.slots.Done()
	defer guard("client slot")
	for gen := uint32(0); !cl.ended(); gen++ {
		if gen > 0 {
			stats.reconnects.Add(1)
		}
		cl.session(slot, gen)
	}
}

type session struct {
	cl        *client
	slot, gen uint32
	params    connParams
	dialer    websocket.Dialer
	conn      *websocket.Conn
	// compressed: permessage-deflate was negotiated. streamRead: the reader
	// uses NextReader and reads in pieces instead of ReadMessage.
	compressed, streamRead bool
	// maxSize is the largest message this session sends (see choose).
	maxSize int

	// serverDropAt is when the server will drop the connection, if it was
	// asked to (zero otherwise). The server counts from its upgrade, which
	// comes after this, so an error seen later may be the planned drop.
	serverDropAt time.Time
	// closing names the client's own planned end, once one has begun.
	// Errors from then on are its expected fallout.
	closing atomic.Pointer[string]
	// failed: an error no plan explains was already counted for this
	// session; later errors are its fallout.
	failed atomic.Bool
	// known: the failure was the known issue (see markPoisoned).
	known atomic.Bool

	// tokens[w] holds one token per message of writer w sent and not yet
	// echoed: a window that bounds what is in flight, and that the
	// graceful close watches drain.
	tokens     []chan struct{}
	stopW      chan struct{} // closed: writers stop before their next message
	stopOnce   sync.Once
	writers    sync.WaitGroup
	readerDone chan struct{}
	drainReq   chan struct{} // a writer asks for a drained graceful close
	progress   chan struct{} // the reader returned a token

	// Reader-owned: the next sequence number expected from each writer, and
	// of the server's pushes.
	expect  []uint64
	pushSeq uint64
	pingN   atomic.Int64
	// lastSent[w] is writer w's last message written, for failure reports.
	lastSent []atomic.Pointer[sentInfo]
	// readerEnded is when the reader returned (unix nanoseconds; 0 before).
	readerEnded atomic.Int64
}

func (s *session) describe() string {
	wb := s.dialer.WriteBufferSize
	pool := ""
	if s.dialer.WriteBufferPool != nil {
		pool = "+pool"
	}
	c := "off"
	if s.compressed {
		o := s.dialer.Compression
		c = fmt.Sprintf("on(level %d, threshold %d, client bits %d takeover %v, server bits %d takeover %v)",
			o.Level, o.Threshold, o.ClientMaxWindowBits, !o.ClientNoContextTakeover, o.ServerMaxWindowBits, !o.ServerNoContextTakeover)
	}
	return fmt.Sprintf("slot %d gen %d: server variant %d echo %s, client wbuf %d%s rbuf %d streamRead %v, compression %s",
		s.slot, s.gen, s.params.variant, s.params.echo, wb, pool, s.dialer.ReadBufferSize, s.streamRead, c)
}

type sentInfo struct {
	h  header
	at time.Time
}

// progressReport says, per writer, what was echoed and what was last
// written: for a failure that may have swallowed messages.
func (s *session) progressReport() string {
	var b strings.Builder
	for w := range s.lastSent {
		fmt.Fprintf(&b, "; writer %d: %d unechoed", w, len(s.tokens[w]))
		if li := s.lastSent[w].Load(); li != nil {
			fmt.Fprintf(&b, ", last written seq %d (%d bytes, type %c, method %c) %v ago",
				li.h.seq, li.h.length, li.h.typ, li.h.method, time.Since(li.at).Round(time.Millisecond))
		}
	}
	return b.String()
}

// explained reports whether an error now is the fallout of a planned end.
func (s *session) explained() bool {
	return s.closing.Load() != nil || (!s.serverDropAt.IsZero() && !time.Now().Before(s.serverDropAt))
}

// setClosing records the client's planned end; false if one already began.
func (s *session) setClosing(kind string) bool {
	return s.closing.CompareAndSwap(nil, &kind)
}

// noteErr counts an error. The first one in a session that no plan
// explains fails the run, unless the connection had been poisoned by the
// known issue (see markPoisoned); the errors it causes in the session's
// other goroutines are counted only by kind.
func (s *session) noteErr(where string, err error) {
	s.fail(where+": "+classify(err), err)
}

func (s *session) fail(k string, err error) {
	by, poisoned := poisonedBy(s.slot, s.gen)
	if poisoned {
		k += " (after the " + by + " timed out)"
	}
	clientErrs.add(k)
	if s.explained() || !s.failed.CompareAndSwap(false, true) {
		return
	}
	s.count(k, by, poisoned, err)
}

// anomaly records a failure that is not an error value. Unlike an error, it
// fails the run even after a planned end began.
func (s *session) anomaly(what string) {
	by, poisoned := poisonedBy(s.slot, s.gen)
	s.failed.Store(true)
	s.count(what, by, poisoned, nil)
}

func (s *session) count(k, by string, poisoned bool, err error) {
	if poisoned {
		s.known.Store(true)
		stats.knownIssue.Add(1)
		knownIssue.add(by)
		logLimited("known issue", "known issue: %s [%s]", k, s.describe())
		return
	}
	stats.unexpected.Add(1)
	unexpectedErrs.add(k)
	if strings.Contains(k, "timeout") {
		// Whatever held this connection up is probably still holding
		// it: every goroutine's stack, once per run, for the post-mortem.
		dumpGoroutines(fmt.Sprintf("timeout-slot%d-gen%d", s.slot, s.gen))
	}
	detail := k
	if err != nil {
		detail += ": " + err.Error()
	}
	if s.lastSent != nil {
		detail += s.progressReport()
	}
	logLimited("unexpected "+k, "UNEXPECTED %s [%s, conn %p]", detail, s.describe(), s.conn)
}

func (s *session) stopWriters() { s.stopOnce.Do(func() { close(s.stopW) }) }

// pause waits d, or less if the writers are told to stop (then false).
func (s *session) pause(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-s.stopW:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopW:
		return false
	}
}

// choose draws the session's configuration from its own seed, so that a
// failing session's setup can be reproduced from (seed, slot, gen).
func (cl *client) choose(slot, gen uint32) *session {
	cfg := cl.cfg
	rng := prng{s: seedOf(cfg.seed, purposeSession, uint64(slot), uint64(gen))}
	s := &session{cl: cl, slot: slot, gen: gen}
	s.compressed = rng.chance(cfg.compress)
	nv := len(upgraderVariants())
	s.params = connParams{
		slot:      slot,
		gen:       gen,
		variant:   rng.n(plainVariants),
		echo:      []string{"msg", "copy", "chunk"}[rng.n(3)],
		pushEvery: cfg.pushEvery,
		pingEvery: cfg.pingEvery,
	}
	if s.compressed {
		s.params.variant = plainVariants + rng.n(nv-plainVariants)
	}
	if cfg.drop > 0 && rng.chance(0.05) {
		// Spread over twice the run, so that about half happen, evenly
		// over the run.
		s.params.dropAfter = time.Second + time.Duration(rng.float()*float64(2*cfg.duration))
		s.params.dropKind = []string{"graceful", "close", "mid"}[rng.n(3)]
	}
	s.streamRead = rng.n(2) == 0
	d := &s.dialer
	d.HandshakeTimeout = cfg.timeout
	// 512-byte write buffers make a streamed message many fragments.
	d.WriteBufferSize = []int{0, 512, 512, 4096, 64 << 10}[rng.n(5)]
	d.ReadBufferSize = []int{0, 512, 16 << 10}[rng.n(3)]
	if p := cl.pools[d.WriteBufferSize]; p != nil && rng.n(2) == 0 {
		d.WriteBufferPool = p
	}
	// With a 512-byte write buffer on either side, a compressed megabyte
	// streamed through NextWriter becomes 2048 frames, each compressed on
	// its own and each a round of wake-ups through both ends: tens of
	// seconds under the race detector on a loaded two-core machine, during
	// which the connection's other writers wait for it and would hit
	// their deadline. Such sessions keep to 128 KiB, still a few hundred
	// fragments.
	s.maxSize = cfg.maxSize
	if d.WriteBufferSize == 512 || cl.smallServerBuf[s.params.variant] {
		s.maxSize = min(s.maxSize, 128<<10)
	}
	if s.compressed {
		d.EnableCompression = true
		o := &d.Compression
		o.ClientNoContextTakeover = rng.n(3) == 0
		o.ServerNoContextTakeover = rng.n(4) == 0
		if rng.n(2) == 0 {
			o.ClientMaxWindowBits = rng.between(8, 15)
		}
		if rng.n(3) == 0 {
			o.ServerMaxWindowBits = rng.between(9, 15)
		}
		o.Level = []int{0, 0, 1, 2, 5, 9, -2}[rng.n(7)]
		o.Threshold = []int{0, 0, -1, 300}[rng.n(4)]
	}
	return s
}

// session dials one connection and runs it until it is dropped, closed or
// the run ends.
func (cl *client) session(slot, gen uint32) {
	cfg := cl.cfg
	s := cl.choose(slot, gen)
	label("client coordinator", slot, gen)

	select {
	case cl.dialSem <- struct{}{}:
	case <-cl.runEnd:
		return
	}
	start := time.Now()
	conn, resp, err := s.dialer.Dial(cfg.url+s.params.query(), nil)
	<-cl.dialSem
	if err != nil {
		if !cl.ended() {
			s.noteErr("dial", err)
			select {
			case <-time.After(time.Second):
			case <-cl.runEnd:
			}
		}
		return
	}
	// Several writers stream through NextWriter at once: see the server.
	conn.EnableConcurrentWriters()
	stats.dials.Add(1)
	if gen == 0 {
		stats.firstDials.Add(1)
	}
	if s.params.dropAfter > 0 {
		s.serverDropAt = start.Add(s.params.dropAfter)
	}
	s.conn = conn
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if got := strings.HasPrefix(ext, "permessage-deflate"); got != s.compressed {
		s.anomaly(fmt.Sprintf("negotiation: compression wanted %v, response %q", s.compressed, ext))
	}
	if s.compressed {
		stats.compressedDials.Add(1)
	}
	n := stats.active.Add(1)
	for p := stats.peakActive.Load(); n > p && !stats.peakActive.CompareAndSwap(p, n); p = stats.peakActive.Load() {
	}
	defer stats.active.Add(-1)

	conn.SetReadLimit(int64(cfg.maxSize) + hdrLen)
	pingPrefix := fmt.Sprintf("ping %d %d ", slot, gen)
	// A ping from the server proves the connection alive: extend the read
	// deadline, and answer as the default handler would. The pong waits
	// at most a second for the writers' lock: the reader must not block
	// behind a writer stuck on a full socket (whose peer may be waiting
	// for this reader to drain its echoes).
	conn.SetPingHandler(func(data string) error {
		conn.SetReadDeadline(time.Now().Add(cfg.timeout))
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			k := classify(err)
			clientErrs.add("pong: " + k)
			if k == "timeout" {
				// In the socket, not waiting for the lock: see
				// markPoisoned.
				markPoisoned(slot, gen, "client's pong")
			}
		}
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	conn.SetPongHandler(func(data string) error {
		if !strings.HasPrefix(data, pingPrefix) {
			stats.corrupted.Add(1)
			logLimited("pong", "CORRUPTED pong payload %q, want prefix %q [%s]", data, pingPrefix, s.describe())
		}
		stats.pongs.Add(1)
		return nil
	})

	s.tokens = make([]chan struct{}, cfg.writers)
	for i := range s.tokens {
		s.tokens[i] = make(chan struct{}, cfg.window)
	}
	s.expect = make([]uint64, cfg.writers)
	s.lastSent = make([]atomic.Pointer[sentInfo], cfg.writers)
	s.stopW = make(chan struct{})
	s.readerDone = make(chan struct{})
	s.drainReq = make(chan struct{}, 1)
	s.progress = make(chan struct{}, 1)

	go s.reader()
	s.writers.Add(cfg.writers)
	for w := 0; w < cfg.writers; w++ {
		go s.writer(w)
	}

	end := "error"
	select {
	case <-s.readerDone:
	case <-s.drainReq:
		end = "drained graceful close"
		s.drainAndClose("drain")
	case <-cl.runEnd:
		end = "end of run (drained graceful close)"
		s.drainAndClose("end of run")
	}
	s.stopWriters()
	conn.Close()
	s.waitGoroutines()

	switch c := s.closing.Load(); {
	case s.known.Load():
		end = "write side lost to a control frame's timeout (known issue)"
	case s.failed.Load():
		end = "unexpected error"
	case end != "error":
	case c != nil:
		end = "client " + *c
	case !s.serverDropAt.IsZero() && time.Now().After(s.serverDropAt):
		end = "server drop: " + s.params.dropKind
	}
	sessionEnds.add(end)
}

// waitGoroutines waits for the session's writers and reader. Every one of
// them is bounded by a deadline once the connection is closed; one that is
// still there long after is a hang, reported with every goroutine's stack.
func (s *session) waitGoroutines() {
	done := make(chan struct{})
	go func() {
		s.writers.Wait()
		<-s.readerDone
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2*s.cl.cfg.timeout + 30*time.Second):
		s.anomaly("session goroutines still running long after Close (hang)")
		dumpGoroutines("hang")
		<-done
	}
}

// drainAndClose is the client's graceful end with a no-loss check: stop
// the writers, wait for the echo of every message they sent, then run the
// closing handshake.
func (s *session) drainAndClose(kind string) {
	s.stopWriters()
	s.writers.Wait()
	timeout := time.NewTimer(s.cl.cfg.timeout)
	defer timeout.Stop()
	for !s.drained() {
		select {
		case <-s.progress:
		case <-s.readerDone:
			// The reader failed (its error has been counted) or found
			// corruption; the check cannot complete.
			return
		case <-timeout.C:
			if !s.explained() {
				n := s.outstanding()
				stats.drainLost.Add(int64(n))
				s.anomaly(fmt.Sprintf("graceful close: %d messages not echoed within %v", n, s.cl.cfg.timeout))
			}
			return
		}
	}
	stats.drains.Add(1)
	if !s.setClosing(kind) {
		// A writer's drop got there first.
		return
	}
	s.closeGracefully()
}

// closeGracefully runs the closing handshake and accounts for its failure.
func (s *session) closeGracefully() {
	err := s.conn.CloseGracefully(websocket.CloseNormalClosure, "", s.cl.cfg.timeout)
	if err == nil {
		return
	}
	clientErrs.add("close gracefully: " + classify(err))
	if re := s.readerEnded.Load(); re != 0 {
		if late := time.Since(time.Unix(0, re)); late > 2*time.Second {
			// The reader ended without the server's close, and
			// CloseGracefully waited on: the second known issue.
			noteLinger(late)
			return
		}
	}
	if s.serverDropAt.IsZero() || time.Now().Before(s.serverDropAt) {
		s.anomaly("close gracefully: " + classify(err))
	}
}

func (s *session) outstanding() int {
	n := 0
	for _, t := range s.tokens {
		n += len(t)
	}
	return n
}

func (s *session) drained() bool { return s.outstanding() == 0 }

// writer sends bursts of messages of random size, type and write method,
// at most -window of them unechoed at a time; now and then a ping, a
// compression setting change, or the connection's end.
//
// The writers of a session wake at the same instants (their schedules come
// from one seed), so that their bursts overlap and contend for the
// connection, however sparse the traffic of one connection is.
func (s *session) writer(w int) {
	defer s.writers.Done()
	defer guard("client writer")
	label("client writer "+strconv.Itoa(w), s.slot, s.gen)
	cfg := s.cl.cfg
	rng := prng{s: seedOf(cfg.seed, purposeWriter, uint64(s.slot), uint64(s.gen), uint64(w))}
	sched := prng{s: seedOf(cfg.seed, purposeSchedule, uint64(s.slot), uint64(s.gen))}
	var seq uint64
	buf := make([]byte, 0, 4096)
	// Bursts are scheduled, each a random interval after the previous one
	// was due, so that the rate does not drop by the time the writes take.
	// The first is staggered: thousands of fresh connections should not
	// all send together.
	think := float64(cfg.think)
	next := time.Now().Add(time.Duration(sched.float() * think))
	for {
		if !s.pause(time.Until(next)) {
			return
		}
		next = next.Add(time.Duration(sched.exp(think)))
		if now := time.Now(); next.Before(now) {
			// Far behind (slow writes, a full window): no catching up
			// with a longer burst.
			next = now
		}
		for i := rng.between(1, 2*cfg.window); i > 0; i-- {
			if !s.act(w, &seq, &rng, &buf) {
				return
			}
		}
	}
}

// act performs one writer action; false when the writer must stop.
func (s *session) act(w int, seq *uint64, rng *prng, buf *[]byte) bool {
	cfg := s.cl.cfg
	s.conn.SetWriteDeadline(time.Now().Add(cfg.timeout))
	if rng.chance(cfg.drop) {
		s.drop(w, *seq, rng, *buf)
		return false
	}
	switch k := rng.n(100); {
	case k < 2:
		if err := s.ping(rng); err != nil {
			s.noteErr("ping", err)
			s.conn.Close()
			return false
		}
	case k < 3 && s.compressed:
		s.conn.EnableWriteCompression(rng.n(4) != 0)
		s.conn.SetCompressionLevel(rng.between(-2, 9))
		stats.toggles.Add(1)
	default:
		select {
		case s.tokens[w] <- struct{}{}:
		case <-s.stopW:
			return false
		}
		var err error
		*buf, err = s.send(w, *seq, rng, *buf, false)
		if err != nil {
			s.noteErr("write", err)
			if !s.explained() {
				// A failure: end the session. After a planned end
				// began, leave the connection to whoever is ending
				// it (closing it here would cut a closing handshake
				// short).
				s.conn.Close()
			}
			return false
		}
		*seq++
	}
	return true
}

func (s *session) ping(rng *prng) error {
	payload := fmt.Sprintf("ping %d %d %d", s.slot, s.gen, s.pingN.Add(1))
	stats.pings.Add(1)
	if rng.n(4) == 0 {
		// A control message through NextWriter.
		w, err := s.conn.NextWriter(websocket.PingMessage)
		if err != nil {
			return err
		}
		io.WriteString(w, payload)
		return w.Close()
	}
	return s.conn.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(s.cl.cfg.timeout))
}

// pickSize draws a message size: 80% up to 562 bytes, 16% up to 16 KiB,
// 4% up to a quarter of -maxsize (256 KiB), 0.2% up to -maxsize. Large
// messages cost the most under the race detector (a compressed megabyte
// takes seconds), so they are rare enough not to dominate the run.
func pickSize(rng *prng, maxSize int) int {
	logUniform := func(lo, hi int) int {
		if hi <= lo {
			return lo
		}
		f := float64(lo) * math.Pow(float64(hi)/float64(lo), rng.float())
		return int(f)
	}
	var n int
	switch k := rng.n(1000); {
	case k < 800:
		n = hdrLen + rng.n(512)
	case k < 958:
		n = logUniform(512, 16<<10)
	case k < 998:
		n = logUniform(16<<10, maxSize/4)
	default:
		n = rng.between(maxSize/4, maxSize)
	}
	return max(hdrLen, min(n, maxSize))
}

// send writes message seq of writer w with a randomly chosen write method.
// With dropMid it streams the message and closes the TCP connection under
// the writer half-way through. It returns the buffer for reuse: the next
// message overwrites it at once, so a library that held on to a caller's
// slice past the write would send the wrong bytes and be caught.
func (s *session) send(w int, seq uint64, rng *prng, buf []byte, dropMid bool) ([]byte, error) {
	size := pickSize(rng, s.maxSize)
	h := header{kind: kindClient, typ: "TB"[rng.n(2)], conn: s.slot, gen: s.gen, writer: w, seq: seq, length: size}
	switch k := rng.n(100); {
	case dropMid:
		h.method = sendStream
	case k < 35:
		h.method = sendWrite
	case k < 70:
		h.method = sendStream
	case k < 85:
		h.method = sendReadFrom
	default:
		h.method = sendPrepared
	}
	var big *[]byte
	data := buf[:0]
	if size > smallBuf {
		big = s.cl.bigBufs.get()
		data = (*big)[:0]
	}
	data = appendMessage(data, s.cl.corpus, s.cl.cfg.seed, &h)
	if big != nil {
		*big = data
		defer s.cl.bigBufs.put(big)
	} else {
		buf = data
	}
	mt := websocket.BinaryMessage
	if h.text() {
		mt = websocket.TextMessage
	}

	var err error
	switch h.method {
	case sendWrite:
		err = s.conn.WriteMessage(mt, data)
	case sendStream:
		err = s.stream(mt, data, rng, dropMid)
	case sendReadFrom:
		var wr io.WriteCloser
		wr, err = s.conn.NextWriter(mt)
		if err == nil {
			_, err = io.Copy(wr, &shortReader{p: data, rng: rng})
			if cerr := wr.Close(); err == nil {
				err = cerr
			}
		}
	case sendPrepared:
		// A PreparedMessage keeps its data: give it a copy.
		var pm *websocket.PreparedMessage
		pm, err = websocket.NewPreparedMessage(mt, append([]byte(nil), data...))
		if err == nil {
			err = s.conn.WritePreparedMessage(pm)
		}
	}
	if err == nil {
		stats.sent.Add(1)
		stats.sentBytes.Add(int64(size))
		stats.sentBy[sendIndex[h.method]].Add(1)
		s.lastSent[w].Store(&sentInfo{h: h, at: time.Now()})
	}
	return buf, err
}

// stream writes data through NextWriter in pieces of random size, some
// smaller than a rune, some larger than the write buffer, some through
// WriteString.
func (s *session) stream(mt int, data []byte, rng *prng, dropMid bool) error {
	w, err := s.conn.NextWriter(mt)
	if err != nil {
		return err
	}
	limits := []int{8, 600, 8 << 10, 128 << 10}
	closedMid := false
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1+rng.n(limits[rng.n(len(limits))]))
		if rng.n(4) == 0 && n < 4096 {
			//lint:ignore SA6006 the conversion is the point: it exercises the writer's WriteString.
			_, err = io.WriteString(w, string(rest[:n]))
		} else {
			_, err = w.Write(rest[:n])
		}
		rest = rest[n:]
		if err != nil {
			w.Close()
			return err
		}
		if dropMid && len(rest) <= len(data)/2 {
			dropMid = false
			// If another goroutine is already ending the connection,
			// finish the message normally instead.
			if s.setClosing("NetConn().Close() mid-message") {
				s.conn.NetConn().Close()
				closedMid = true
				// Keep writing: the writes must fail, and Close must
				// release the message lock the other writers wait for.
			}
		}
	}
	err = w.Close()
	if err == nil && closedMid {
		s.anomaly("writer Close returned nil after NetConn().Close() mid-message")
	}
	return err
}

// shortReader hands out its bytes in reads of random, often short,
// lengths, so that the writer's ReadFrom meets partial reads.
type shortReader struct {
	p   []byte
	rng *prng
}

func (r *shortReader) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), len(r.p), 1+r.rng.n([]int{64, 8 << 10, 100 << 10}[r.rng.n(3)]))
	copy(b, r.p[:n])
	r.p = r.p[n:]
	return n, nil
}

// drop ends the connection from writer w in one of the ways a client goes
// away. Messages still in flight are forgotten, except in the drained
// graceful close, which checks that none was lost.
func (s *session) drop(w int, seq uint64, rng *prng, buf []byte) {
	switch k := rng.n(100); {
	case k < 25:
		if s.setClosing("Close") {
			s.conn.Close()
		}
	case k < 40:
		// SO_LINGER 0: the peer sees a reset instead of a FIN.
		if s.setClosing("Close with RST") {
			if tc, ok := s.conn.NetConn().(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			s.conn.Close()
		}
	case k < 60:
		select {
		case s.tokens[w] <- struct{}{}:
		case <-s.stopW:
			return
		}
		if _, err := s.send(w, seq, rng, buf, true); err != nil {
			s.noteErr("write", err)
		}
		s.conn.Close()
	case k < 75:
		// The closing handshake while the other writers are busy: the
		// close frame may go out between two fragments of their messages.
		if s.setClosing("CloseGracefully without draining") {
			s.closeGracefully()
		}
	default:
		select {
		case s.drainReq <- struct{}{}:
		default:
		}
	}
}

// reader reads and verifies everything the server sends.
func (s *session) reader() {
	defer close(s.readerDone)
	label("client reader", s.slot, s.gen)
	defer func() { s.readerEnded.Store(time.Now().UnixNano()) }()
	defer guard("client reader")
	cfg := s.cl.cfg
	rng := prng{s: seedOf(cfg.seed, purposeReader, uint64(s.slot), uint64(s.gen))}
	v := verifier{c: s.cl.corpus, seed: cfg.seed}
	for {
		s.conn.SetReadDeadline(time.Now().Add(cfg.timeout))
		v.reset()
		var mt int
		var err error
		if s.streamRead {
			mt, err = s.readStream(&v, &rng)
		} else {
			var p []byte
			mt, p, err = s.conn.ReadMessage()
			v.write(p)
		}
		if err != nil {
			s.noteErr("read", err)
			return
		}
		if !s.check(&v, mt) {
			// The stream cannot be trusted any more.
			s.setClosing("corruption found")
			s.conn.Close()
			return
		}
	}
}

// readStream reads one message through NextReader in pieces of random size.
func (s *session) readStream(v *verifier, rng *prng) (int, error) {
	mt, r, err := s.conn.NextReader()
	if err != nil {
		return 0, err
	}
	buf := s.cl.readBufs.get()
	defer s.cl.readBufs.put(buf)
	limits := []int{16, 600, 8 << 10, smallBuf}
	empty := 0
	for {
		n, err := r.Read(buf[:1+rng.n(limits[rng.n(len(limits))])])
		v.write(buf[:n])
		if err == io.EOF {
			return mt, nil
		}
		if err != nil {
			// Say how far into which message the read failed.
			return 0, fmt.Errorf("%w (after %d bytes of %s)", err, v.n, v.describe())
		}
		if n == 0 {
			// io.Reader allows (0, nil) but discourages it; a reader
			// that keeps returning it would spin here forever.
			if empty++; empty == 1000 {
				s.anomaly("message reader returned (0, nil) 1000 times in a row")
				return 0, io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
}

// check accounts for one received message; false if it was damaged, out of
// order or not meant for this connection.
func (s *session) check(v *verifier, mt int) bool {
	h, bad := v.finish(mt)
	if bad == "" {
		switch {
		case h.kind == kindBroadcast:
			if h.conn != 0 || h.gen != 0 || h.writer != 0 || h.seq >= 16 {
				bad = "broadcast header with unexpected fields"
			}
		case h.kind != kindClient && h.kind != kindPush:
			bad = fmt.Sprintf("unknown kind %q", h.kind)
		case h.conn != s.slot || h.gen != s.gen:
			bad = fmt.Sprintf("message of slot %d gen %d", h.conn, h.gen)
		case h.kind == kindClient && h.writer >= len(s.expect):
			bad = fmt.Sprintf("writer %d does not exist", h.writer)
		}
	}
	switch h.kind {
	case kindClient:
		stats.echoed.Add(1)
		stats.echoedBytes.Add(int64(v.n))
	case kindPush:
		stats.pushes.Add(1)
	case kindBroadcast:
		stats.bcasts.Add(1)
	}
	if bad != "" {
		stats.corrupted.Add(1)
		logLimited("corrupted", "CORRUPTED message (type %d, %d bytes, header kind %q method %q writer %d seq %d): %s [%s]",
			mt, v.n, h.kind, h.method, h.writer, h.seq, bad, s.describe())
		return false
	}
	switch h.kind {
	case kindBroadcast:
		stats.bcastsOK.Add(1)
		return true
	case kindPush:
		if h.seq != s.pushSeq {
			return s.sequenceError("server push", h.seq, s.pushSeq)
		}
		s.pushSeq++
		stats.pushesOK.Add(1)
		return true
	}
	stats.verified.Add(1)
	if want := s.expect[h.writer]; h.seq != want {
		return s.sequenceError(fmt.Sprintf("writer %d", h.writer), h.seq, want)
	}
	s.expect[h.writer]++
	select {
	case <-s.tokens[h.writer]:
	default:
		s.anomaly("echo of a message its writer has not counted as sent")
	}
	select {
	case s.progress <- struct{}{}:
	default:
	}
	return true
}

func (s *session) sequenceError(who string, got, want uint64) bool {
	if got > want {
		stats.lost.Add(int64(got - want))
	} else {
		stats.disordered.Add(1)
	}
	logLimited("sequence", "SEQUENCE %s: got message %d, expected %d [%s]", who, got, want, s.describe())
	return false
}
