package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsforge/websocket"
)

// counters are the run's totals, updated by every goroutine.
type counters struct {
	sent, sentBytes         atomic.Int64 // client messages whose write returned nil
	sentBy                  [4]atomic.Int64
	echoed, echoedBytes     atomic.Int64 // client messages that came back (intact or not)
	verified                atomic.Int64 // ... and matched byte for byte, in order
	pushes, pushesOK        atomic.Int64 // server 'P' messages received, verified
	bcasts, bcastsOK        atomic.Int64 // server 'B' (shared PreparedMessage) received, verified
	corrupted               atomic.Int64
	lost, disordered        atomic.Int64 // per-writer sequence gaps; duplicates or going back
	drainLost               atomic.Int64 // unanswered at a graceful close after draining
	drains                  atomic.Int64 // graceful closes whose no-loss check ran
	pings, pongs            atomic.Int64 // client pings sent, pongs matching them received
	srvPings, srvPongs      atomic.Int64
	srvEchoed, srvEchoBytes atomic.Int64
	srvPushes               atomic.Int64
	toggles                 atomic.Int64 // EnableWriteCompression / SetCompressionLevel calls
	dials, compressedDials  atomic.Int64
	firstDials              atomic.Int64 // dials of each slot's first connection
	reconnects              atomic.Int64
	active, peakActive      atomic.Int64 // client connections open now, at most
	panics                  atomic.Int64
	unexpected              atomic.Int64 // client session failures no plan explains
	knownIssue              atomic.Int64 // client sessions lost to the control frame timeout issue
	lingeringClose          atomic.Int64 // server CloseGracefully calls that outlived their connection
	maxLinger               atomic.Int64 // ... by at most this long (ns)
	srvFailures             atomic.Int64 // server-side errors that mean a client or library bug
}

var stats counters

var sendIndex = map[byte]int{sendWrite: 0, sendStream: 1, sendReadFrom: 2, sendPrepared: 3}

// tally counts occurrences of short descriptions.
type tally struct {
	mu sync.Mutex
	m  map[string]int64
}

func (t *tally) add(key string) {
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]int64)
	}
	t.m[key]++
	t.mu.Unlock()
}

// String lists the entries, most frequent first.
func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if t.m[keys[i]] != t.m[keys[j]] {
			return t.m[keys[i]] > t.m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n    %-58s %d", k, t.m[k])
	}
	return b.String()
}

var (
	// Every error any client goroutine met, as "where: kind". Most are
	// the expected fallout of a drop; the session's first error decides
	// whether the session failed (see session.noteErr).
	clientErrs tally
	// Why sessions ended: the planned drop or close, or the error that
	// ended them and whether a plan explains it.
	sessionEnds tally
	// Errors no plan explains; each also counted in stats.unexpected.
	unexpectedErrs tally
	// Errors met by the server's handlers and pushers.
	serverErrs tally
	// Sessions lost to the known issue (see markPoisoned).
	knownIssue tally
)

// poisoned holds the connections, by slot<<32|gen, where a control frame
// written automatically under a fixed 1-second deadline (a pong, or a
// close answering the peer's) timed out while both directions were
// congested. In the socket, the library keeps that timeout as the
// connection's permanent write error, so every later write fails with
// "i/o timeout" long before its own deadline; a close reply that times out
// waiting for the write lock is simply not sent, and the peer's
// CloseGracefully waits in vain. README.md describes it and its
// reproduction. It is counted apart from the unexpected errors, so that a
// soak still tells other failures from it.
var poisoned sync.Map

func markPoisoned(slot, gen uint32, where string) {
	poisoned.LoadOrStore(uint64(slot)<<32|uint64(gen), where)
}

func poisonedBy(slot, gen uint32) (string, bool) {
	v, ok := poisoned.Load(uint64(slot)<<32 | uint64(gen))
	if !ok {
		return "", false
	}
	return v.(string), true
}

var digits = regexp.MustCompile(`[0-9]+`)

// classify reduces an error to a short kind, so that the report can count
// errors by kind without one entry per port number.
func classify(err error) string {
	var ce *websocket.CloseError
	var pe *websocket.ProtocolError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		s := fmt.Sprintf("close %d", ce.Code)
		if ce.Text != "" && ce.Code != websocket.CloseNormalClosure && ce.Code != websocket.CloseGoingAway {
			s += " (" + ce.Text + ")"
		}
		return s
	case errors.As(err, &pe):
		return "protocol error: " + pe.Reason
	case errors.Is(err, websocket.ErrReadLimit):
		return "read limit"
	case errors.Is(err, websocket.ErrCloseSent):
		return "close sent"
	case errors.Is(err, websocket.ErrBadHandshake):
		return "bad handshake"
	case errors.Is(err, net.ErrClosed):
		return "closed"
	case err.Error() == "websocket: write timeout":
		// The library's own timeout: waiting for another writer's
		// frame or message, before touching the socket.
		return "write lock timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	s := digits.ReplaceAllString(err.Error(), "N")
	if len(s) > 80 {
		s = s[:80]
	}
	return "other: " + s
}

// isFailureOnServer tells the server-side errors that cannot come from a
// client merely going away: the client library sent something invalid, or
// a peer stopped reading or answering for a whole timeout.
func isFailureOnServer(err error) bool {
	var pe *websocket.ProtocolError
	var ne net.Error
	return errors.As(err, &pe) || errors.Is(err, websocket.ErrReadLimit) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// label tags the calling goroutine with its connection and role, so that
// the goroutine dumps written on a hang or timeout say whose each stack is.
func label(role string, slot, gen uint32) {
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(
		"role", role, "slot", strconv.FormatUint(uint64(slot), 10), "gen", strconv.FormatUint(uint64(gen), 10))))
}

// noteLinger counts a CloseGracefully that returned late after its
// connection's reader had ended (the second known issue in README.md).
func noteLinger(late time.Duration) {
	stats.lingeringClose.Add(1)
	for m := stats.maxLinger.Load(); int64(late) > m && !stats.maxLinger.CompareAndSwap(m, int64(late)); m = stats.maxLinger.Load() {
	}
}

var stackDumps atomic.Int64

// guard recovers a panic in the goroutine it is deferred in, counts it and
// prints the stack: a panic anywhere is a failure of the run, but the run
// goes on so that the report still comes out.
func guard(where string) {
	if r := recover(); r != nil {
		stats.panics.Add(1)
		if stackDumps.Add(1) <= 20 {
			fmt.Fprintf(os.Stderr, "soak: PANIC in %s: %v\n%s\n", where, r, debug.Stack())
		}
	}
}

// logLimited prints the first few reports of a kind, so that a systematic
// failure does not drown the terminal.
var logged sync.Map

func logLimited(kind string, format string, args ...any) {
	v, _ := logged.LoadOrStore(kind, new(atomic.Int64))
	if n := v.(*atomic.Int64).Add(1); n <= 10 {
		fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	} else if n == 11 {
		fmt.Fprintf(os.Stderr, "soak: (further %q reports suppressed)\n", kind)
	}
}

// memSample is a goroutine count and heap figures at one instant.
type memSample struct {
	goroutines           int
	heapInuse, heapAlloc uint64
}

// sampleAfterGC collects garbage first, so that the heap figures are live
// data rather than whatever the collector had not reached yet. Two cycles
// also empty sync.Pools (the library's buffer pools among them), whose
// contents survive one.
func sampleAfterGC() memSample {
	runtime.GC()
	runtime.GC()
	return sample()
}

func sample() memSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{goroutines: runtime.NumGoroutine(), heapInuse: ms.HeapInuse, heapAlloc: ms.HeapAlloc}
}

func (s memSample) String() string {
	return fmt.Sprintf("%d goroutines, HeapInuse %s, HeapAlloc %s", s.goroutines, mib(s.heapInuse), mib(s.heapAlloc))
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// peaks tracks the largest figures seen by the sampler.
type peaks struct {
	mu sync.Mutex
	memSample
}

func (p *peaks) update(s memSample) {
	p.mu.Lock()
	p.goroutines = max(p.goroutines, s.goroutines)
	p.heapInuse = max(p.heapInuse, s.heapInuse)
	p.heapAlloc = max(p.heapAlloc, s.heapAlloc)
	p.mu.Unlock()
}

func (p *peaks) get() memSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.memSample
}
