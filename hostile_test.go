package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// The hostile-input suite attacks a Conn the way a peer out to hurt it
// would: lengths that overflow, fragmentation patterns, floods, malformed
// handshakes and extension negotiations, compression bombs and corrupt
// streams, peers that vanish mid-frame or never read. Every case runs
// against a server Conn (in both handler styles) and, where the attack
// makes sense from a server, a client Conn from the Dialer. For each it
// checks:
//
//   - what the RFC asks: the close code the attacker receives (or the HTTP
//     status), and the typed error the application's read loop ends with;
//   - that no panic reaches the application's goroutine: with the read
//     loop in a goroutine of its own (gorilla's chat example) a panic
//     would end the whole process;
//   - that the bytes allocated and the CPU time used stay within a
//     constant plus a multiple of the bytes the attacker sent;
//   - that no goroutine is left behind.
//
// The bounds hold on a loaded 2-core machine under the race detector, yet
// the quadratic cost that 16-byte fragments once had (1 MiB: 1.3 GiB
// allocated, 2 s of CPU) fails them many times over.
//
// Costs are read from process-wide counters (runtime.MemStats, the
// process's CPU time), so these tests do not run in parallel, and all
// input is built before the measurement starts.
//
// Under -short the heaviest cases shrink (fewer pings and empty
// continuations, shorter waits for writes that cannot finish) or skip
// (handshake requests over 1 MiB), each saying so.

// readLoopStyle is how the application under attack runs its read loop.
type readLoopStyle struct {
	name string
	// separate: the handler starts the read loop in a goroutine and
	// returns, as gorilla's chat example does.
	separate bool
}

var readLoopStyles = []readLoopStyle{{"handler", false}, {"goroutine", true}}

// attackedApp is the application under attack.
type attackedApp struct {
	limit    int64 // SetReadLimit; 0 for none
	compress bool  // negotiate permessage-deflate
	reader   bool  // NextReader and io.Copy instead of ReadMessage
	echo     bool  // echo every message (else discard)
	// write, if set, replaces the read loop: the application writes
	// (to a peer that may not read) and returns what that gave.
	write func(c *Conn) error
}

func (a attackedApp) run(c *Conn) error {
	if a.write != nil {
		return a.write(c)
	}
	if a.limit > 0 {
		c.SetReadLimit(a.limit)
	}
	for {
		if a.reader {
			mt, r, err := c.NextReader()
			if err != nil {
				return err
			}
			if !a.echo {
				if _, err := io.Copy(io.Discard, r); err != nil {
					return err
				}
				continue
			}
			w, err := c.NextWriter(mt)
			if err != nil {
				io.Copy(io.Discard, r)
				continue
			}
			_, err = io.Copy(w, r)
			w.Close()
			if err != nil {
				return err
			}
			continue
		}
		mt, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if a.echo {
			c.WriteMessage(mt, p)
		}
	}
}

// attackedSide is the role of the Conn under attack.
type attackedSide struct {
	name   string
	server bool
	style  readLoopStyle
	engine bool // served by an Engine's event loop
}

// attackedSides are the server Conn in both handler styles, the server
// Conn served by an Engine, and the client Conn (whose read loop always
// has a goroutine of its own).
var attackedSides = []attackedSide{
	{"server/handler", true, readLoopStyles[0], false},
	{"server/goroutine", true, readLoopStyles[1], false},
	{"server/engine", true, readLoopStyle{}, true},
	{"client", false, readLoopStyle{}, false},
}

// start puts a Conn running app on side opposite a raw attacker, the
// handshake done. The Conn is closed as soon as app returns, as a program
// would.
func (side attackedSide) start(t *testing.T, app attackedApp) *rawPeer {
	t.Helper()
	o := rawOptions{compress: app.compress, separate: side.style.separate, closeOnReturn: true}
	if side.engine {
		e, err := NewEngine(EngineOptions{Loops: 1})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		o.serve = func(w http.ResponseWriter, r *http.Request, results chan<- appResult) {
			u := Upgrader{EnableCompression: app.compress}
			// The Engine hands the handler whole messages whether the
			// app reads with NextReader or ReadMessage.
			h := engineEcho{quiet: !app.echo, results: results}
			if app.limit > 0 {
				h.setup = func(c *Conn) { c.SetReadLimit(app.limit) }
			}
			if _, err := e.Upgrade(&u, w, r, nil, h); err != nil {
				results <- appResult{err: err}
			}
		}
	}
	if side.server {
		return serveRawWith(t, app.run, o)
	}
	return dialRawWith(t, app.run, o)
}

// attackCost is what an attack cost the process.
type attackCost struct {
	alloc int64         // bytes allocated
	cpu   time.Duration // CPU time; negative where it cannot be read
}

// measureCost runs f and returns the bytes allocated and the CPU time
// used by the whole process meanwhile.
func measureCost(f func()) attackCost {
	// Earlier work's garbage is collected now, not on this bill.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPUTime()
	f()
	cpu1 := processCPUTime()
	runtime.ReadMemStats(&after)
	c := attackCost{alloc: int64(after.TotalAlloc - before.TotalAlloc), cpu: -1}
	if cpu0 >= 0 && cpu1 >= 0 {
		c.cpu = cpu1 - cpu0
	}
	return c
}

// costBudget bounds the cost of an attack of n bytes: base plus perByte
// times n, for allocation and for CPU time. The CPU bounds are for a run
// without the race detector and are multiplied by raceSlowdown under it.
type costBudget struct {
	allocBase    int64
	allocPerByte int64
	cpuBase      time.Duration
	cpuPerByte   time.Duration // per KiB: nanoseconds are too coarse
}

// defaultCostBudget suits attacks whose honest cost is framing,
// unmasking, validating and a copy or two of the data: 1 MiB of
// allocation plus 24 bytes per byte sent, 40 ms of CPU plus 20 µs per KiB.
// Measured on a 2-core VM, 1 MiB sent as 16-byte fragments and echoed
// costs 1.5 bytes allocated per byte sent and 7-20 ms of CPU (150-220 ms
// under the race detector); with the quadratic growth it once had, 728
// bytes per byte and 0.3-0.5 s (15 s), which fails both bounds: the
// allocation one by 30 times, the CPU one by 6 to 9.
var defaultCostBudget = costBudget{
	allocBase:    1 << 20,
	allocPerByte: 24,
	cpuBase:      40 * time.Millisecond,
	cpuPerByte:   20 * time.Microsecond,
}

// raceSlowdown is how much more CPU the race detector may take: about 20
// times for the framing loops measured above.
const raceSlowdown = 25

func (b costBudget) check(t *testing.T, sent int64, c attackCost) {
	t.Helper()
	if b == (costBudget{}) {
		b = defaultCostBudget
	}
	maxAlloc := b.allocBase + b.allocPerByte*sent
	assert.LessOrEqual(t, c.alloc, maxAlloc, "bytes allocated for %d bytes received (%.1f per byte)", sent, float64(c.alloc)/float64(max(sent, 1)))
	if c.cpu < 0 {
		return
	}
	maxCPU := b.cpuBase + time.Duration(float64(b.cpuPerByte)*float64(sent)/1024)
	if flatetest.RaceEnabled() {
		maxCPU *= raceSlowdown
	}
	assert.LessOrEqual(t, c.cpu, maxCPU, "CPU time for %d bytes received", sent)
}

// attackOutcome is what an attack must end with.
type attackOutcome struct {
	// peerCode is the close code the attacker must receive; 0 means the
	// connection must end without a close frame.
	peerCode int
	// kind and code say how the read loop must end: "close" (a
	// *CloseError with code), "protocol" (a *ProtocolError with code),
	// "limit" (ErrReadLimit), or "timeout" (a net.Error that timed out).
	kind string
	code int
	// echoed, if positive, is the number of data payload bytes the
	// attacker must receive.
	echoed int64
}

func (o attackOutcome) check(t *testing.T, res appResult, d rawDrained) {
	t.Helper()
	require.Nil(t, res.panicked, "panic in the application's goroutine (with the read loop in a goroutine of its own, the process would die):\n%s", res.stack)
	err := res.err
	switch o.kind {
	case "close":
		var ce *CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, o.code, ce.Code, "close code the application sees (%v)", err)
	case "protocol":
		var pe *ProtocolError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, o.code, pe.Code, "close code of the ProtocolError (%v)", err)
		assert.True(t, strings.HasPrefix(pe.Error(), "websocket: "), pe.Error())
	case "limit":
		require.ErrorIs(t, err, ErrReadLimit)
	case "net":
		var oe *net.OpError
		require.ErrorAs(t, err, &oe)
	case "timeout":
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout(), "want a timeout, got %v", err)
	default:
		t.Fatalf("unknown outcome kind %q", o.kind)
	}
	if d != (rawDrained{}) || o.peerCode != 0 {
		assert.Equal(t, o.peerCode, d.closeCode, "close code the attacker received (reading ended by %v)", d.err)
	}
	if o.echoed > 0 {
		assert.Equal(t, o.echoed, d.data, "data bytes echoed")
	}
}

// attackCase is one attack.
type attackCase struct {
	name string
	app  attackedApp
	// build returns the attacker's bytes for a peer (they depend on its
	// masking); it runs before the measurement.
	build func(p *rawPeer) []byte
	// after, if set, runs once the bytes are written, still measured:
	// for attacks that end by going away.
	after  func(p *rawPeer)
	noRead bool // the attacker never reads
	want   attackOutcome
	budget costBudget
	// serverOnly: the attack needs a masking client (or a server Conn).
	serverOnly bool
}

// runAttacks runs every case on every side, one at a time.
func runAttacks(t *testing.T, cases []attackCase) {
	for _, side := range attackedSides {
		for _, tc := range cases {
			if tc.serverOnly && !side.server {
				continue
			}
			// An Engine's writes never block: a writing app's attacks
			// (a peer that never reads) are TestEngineWriteQueueFull's.
			if side.engine && tc.app.write != nil {
				continue
			}
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				runAttack(t, side, tc)
			})
		}
	}
}

func runAttack(t *testing.T, side attackedSide, tc attackCase) {
	base := runtime.NumGoroutine()
	t.Run("attack", func(t *testing.T) {
		p := side.start(t, tc.app)
		attack := tc.build(p)
		var res appResult
		var d rawDrained
		var writeErr error
		cost := measureCost(func() {
			if !tc.noRead {
				p.drain()
			}
			writeErr = p.write(attack)
			if tc.after != nil {
				tc.after(p)
			}
			res, d = p.wait()
		})
		if writeErr != nil && tc.want.peerCode == 0 {
			// The Conn may close while a vanishing attack is
			// still being written; nothing else may cut it short.
			t.Logf("attack write: %v", writeErr)
		}
		tc.want.check(t, res, d)
		tc.budget.check(t, p.sent, cost)
		t.Logf("%d bytes sent: %d bytes allocated (%.2f per byte), CPU %v", p.sent, cost.alloc, float64(cost.alloc)/float64(max(p.sent, 1)), cost.cpu)
	})
	checkNoGoroutineLeak(t, base)
}

// checkNoGoroutineLeak checks that the goroutine count is back to base once the
// connections of a case are closed.
func checkNoGoroutineLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	n := runtime.NumGoroutine()
	for n > base && time.Now().Before(deadline) {
		// Closed connections' goroutines end on their own; nothing
		// signals it.
		<-time.After(5 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// Attack builders.

// fragmentedMessage returns a builder of a message of total bytes of fill,
// sent as op and continuation frames of size bytes, then the frames in
// after. between, if set, goes after every fragment but the last. The
// middle fragments encode alike, so they are encoded once.
func fragmentedMessage(op byte, total, size int, fill byte, between []rawFrame, after ...rawFrame) func(p *rawPeer) []byte {
	return func(p *rawPeer) []byte {
		payload := bytes.Repeat([]byte{fill}, size)
		mid := append(p.encode(rawFrame{op: opContinuation, payload: payload}), p.encode(between...)...)
		n := (total + size - 1) / size // fragments
		b := append(p.encode(rawFrame{op: op, payload: payload}), p.encode(between...)...)
		if n > 2 {
			b = append(b, bytes.Repeat(mid, n-2)...)
		}
		last := total - (n-1)*size
		b = append(b, p.encode(rawFrame{op: opContinuation, fin: true, payload: payload[:last]})...)
		return append(b, p.encode(after...)...)
	}
}

// deflatePayload returns payload compressed as one permessage-deflate
// message: raw DEFLATE, sync-flushed, without the final 00 00 ff ff.
func deflatePayload(payload []byte, level int) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		panic(err)
	}
	w.Write(payload)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		panic("sync flush did not end in 00 00 ff ff")
	}
	return out[:len(out)-4]
}

// attackerClose is the attacker's normal close, after an attack that the
// Conn must survive.
var attackerClose = rawClose(CloseNormalClosure, "bye")

// attackerVanishes ends the attacker's side of the stream: the peer has
// vanished.
func attackerVanishes(p *rawPeer) {
	p.conn.(*net.TCPConn).CloseWrite()
}

// declared is a frame header that announces n payload bytes and sends
// the payload given.
func declared(op byte, fin bool, n uint64, payload []byte) rawFrame {
	return rawFrame{op: op, fin: fin, declare: true, declLen: n, payload: payload}
}

// The attacks.

// outcomeVanished is the outcome of an attack that ends with the peer
// gone: no close frame either way, and CloseAbnormalClosure.
var outcomeVanished = attackOutcome{kind: "close", code: CloseAbnormalClosure}

// outcomeFailed is the outcome of an attack the Conn fails with code.
func outcomeFailed(code int) attackOutcome {
	if code == CloseMessageTooBig {
		return attackOutcome{peerCode: code, kind: "limit"}
	}
	return attackOutcome{peerCode: code, kind: "protocol", code: code}
}

// outcomeSurvived is the outcome of an attack the Conn must see through to
// the attacker's normal close, echoing echoed bytes on the way.
func outcomeSurvived(echoed int64) attackOutcome {
	return attackOutcome{peerCode: CloseNormalClosure, kind: "close", code: CloseNormalClosure, echoed: echoed}
}

func frames(fs ...[]rawFrame) func(p *rawPeer) []byte {
	return func(p *rawPeer) []byte {
		var all []rawFrame
		for _, f := range fs {
			all = append(all, f...)
		}
		return p.encode(all...)
	}
}

func one(f ...rawFrame) []rawFrame { return f }

// lengthAttacks announce lengths up to 2^63-1, alone, summed over
// fragments and on compressed frames: the Conn must neither allocate what
// is announced nor compute a size that overflows.
func lengthAttacks() []attackCase {
	const huge = 1<<63 - 1
	some := bytes.Repeat([]byte("x"), 1000)
	text := bytes.Repeat([]byte("abcdefgh"), 8<<10) // 64 KiB: fills an inflater's window
	compressedHuge := func(fin bool) rawFrame {
		f := declared(opBinary, fin, huge, deflatePayload(text, flate.BestSpeed))
		f.rsv = rsv1Bit
		return f
	}
	// Incompressible, so that the inflater's estimate of the rest takes
	// its least ratio, 4: with 2^62 announced, 4 times that wraps.
	noise := make([]byte, 40<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	compressedNoise := declared(opBinary, true, 1<<62, deflatePayload(noise, flate.BestSpeed))
	compressedNoise.rsv = rsv1Bit
	echo := attackedApp{echo: true}
	limited := attackedApp{echo: true, limit: 1 << 20}
	return []attackCase{
		// The frame of issue 13: FIN clear, 2^63-1 bytes.
		{name: "unfinished frame of 2^63-1 bytes", app: echo, build: frames(one(declared(opBinary, false, huge, some))), after: attackerVanishes, want: outcomeVanished},
		{name: "unfinished frame of 2^63-1 bytes, NextReader", app: attackedApp{echo: true, reader: true}, build: frames(one(declared(opBinary, false, huge, some))), after: attackerVanishes, want: outcomeVanished},
		{name: "final frame of 2^63-1 bytes", app: echo, build: frames(one(declared(opBinary, true, huge, some))), after: attackerVanishes, want: outcomeVanished},
		{name: "unfinished text frame of 2^63-1 bytes", app: echo, build: frames(one(declared(opText, false, huge, some))), after: attackerVanishes, want: outcomeVanished},
		{name: "unfinished frame of 2^63-1 bytes, limit", app: limited, build: frames(one(declared(opBinary, false, huge, some))), want: outcomeFailed(CloseMessageTooBig)},
		{name: "continuation of 2^63-1 bytes", app: echo, build: frames(one(rawF(opBinary, false, "0123456789"), declared(opContinuation, true, huge, some))), after: attackerVanishes, want: outcomeVanished},
		{name: "continuation of 2^63-1 bytes, limit", app: limited, build: frames(one(rawF(opBinary, false, "0123456789"), declared(opContinuation, true, huge, some))), want: outcomeFailed(CloseMessageTooBig)},
		{name: "length with the top bit set", app: echo, build: frames(one(declared(opBinary, false, 1<<63, nil))), want: outcomeFailed(CloseProtocolError)},
		{name: "length of 1 in 64 bits", app: echo, build: frames(one(rawFrame{op: opBinary, fin: true, form: 64, payload: []byte("x")})), want: outcomeFailed(CloseProtocolError)},
		{name: "ping of 2^63-1 bytes", app: echo, build: frames(one(declared(opPing, true, huge, some))), want: outcomeFailed(CloseProtocolError)},
		{name: "close of 2^63-1 bytes", app: echo, build: frames(one(declared(opClose, true, huge, some))), want: outcomeFailed(CloseProtocolError)},
		{name: "compressed final frame of 2^63-1 bytes", app: attackedApp{echo: true, compress: true}, build: frames(one(compressedHuge(true))), after: attackerVanishes, want: outcomeVanished},
		{name: "compressed unfinished frame of 2^63-1 bytes", app: attackedApp{echo: true, compress: true}, build: frames(one(compressedHuge(false))), after: attackerVanishes, want: outcomeVanished},
		{name: "compressed final frame of 2^63-1 bytes, NextReader", app: attackedApp{echo: true, compress: true, reader: true}, build: frames(one(compressedHuge(true))), after: attackerVanishes, want: outcomeVanished},
		{name: "compressed final frame of 2^62 bytes, incompressible", app: attackedApp{echo: true, compress: true}, build: frames(one(compressedNoise)), after: attackerVanishes, want: outcomeVanished},
		{name: "compressed final frame of 2^63-1 bytes, limit", app: attackedApp{echo: true, compress: true, limit: 1 << 20}, build: frames(one(compressedHuge(true))), after: attackerVanishes, want: outcomeVanished},
	}
}

func TestHostileLengths(t *testing.T) {
	runAttacks(t, lengthAttacks())
}

// fragmentationAttacks send messages cut into tiny fragments, empty
// ones and fragments between pings: the cost must stay linear in the
// bytes sent.
func fragmentationAttacks() []attackCase {
	const mib = 1 << 20
	nEmpty := 1_000_000
	if testing.Short() {
		nEmpty = 100_000
	}
	empties := func(p *rawPeer) []byte {
		b := p.encode(rawF(opBinary, false, "x"))
		empty := p.encode(rawFrame{op: opContinuation})
		b = append(b, bytes.Repeat(empty, nEmpty)...)
		return append(b, p.encode(rawF(opContinuation, true, "y"), attackerClose)...)
	}
	pingBudget := costBudget{allocBase: 1 << 20, allocPerByte: 24, cpuBase: 100 * time.Millisecond, cpuPerByte: 400 * time.Microsecond}
	ping := []rawFrame{{op: opPing, fin: true, payload: bytes.Repeat([]byte{'i'}, 125)}}
	return []attackCase{
		// Issue 13's second finding: 1.3 GiB allocated and 2 s of CPU.
		{name: "1 MiB in 16-byte fragments", app: attackedApp{echo: true}, build: fragmentedMessage(opBinary, mib, 16, 'a', nil, attackerClose), want: outcomeSurvived(mib)},
		{name: "1 MiB in 16-byte fragments, NextReader", app: attackedApp{echo: true, reader: true}, build: fragmentedMessage(opBinary, mib, 16, 'a', nil, attackerClose), want: outcomeSurvived(mib)},
		{name: "1 MiB text in 16-byte fragments", app: attackedApp{echo: true}, build: fragmentedMessage(opText, mib, 16, 'a', nil, attackerClose), want: outcomeSurvived(mib)},
		{name: "2 MiB in 16-byte fragments, limit 1 MiB", app: attackedApp{echo: true, limit: mib}, build: fragmentedMessage(opBinary, 2*mib, 16, 'a', nil), want: outcomeFailed(CloseMessageTooBig)},
		{name: "256 KiB in 1-byte fragments", app: attackedApp{echo: true}, build: fragmentedMessage(opText, 256<<10, 1, 'b', nil, attackerClose), want: outcomeSurvived(256 << 10)},
		{name: "a million empty continuations", app: attackedApp{echo: true}, build: empties, want: outcomeSurvived(2)},
		{name: "a million empty continuations, NextReader", app: attackedApp{echo: true, reader: true}, build: empties, want: outcomeSurvived(2)},
		{name: "fragments between pings", app: attackedApp{echo: true}, build: fragmentedMessage(opBinary, 256<<10, 16, 'p', ping, attackerClose), want: outcomeSurvived(256 << 10), budget: pingBudget},
		{name: "1 MiB in 4 KiB fragments", app: attackedApp{echo: true}, build: fragmentedMessage(opBinary, mib, 4<<10, 'c', nil, attackerClose), want: outcomeSurvived(mib)},
	}
}

func TestHostileFragmentation(t *testing.T) {
	runAttacks(t, fragmentationAttacks())
}

// floodAttacks send pings to a Conn whose pongs it never reads, and
// keeps talking after its close.
func floodAttacks() []attackCase {
	nPings := 50_000
	if testing.Short() {
		nPings = 5_000
	}
	pings := func(p *rawPeer) []byte {
		ping := p.encode(rawFrame{op: opPing, fin: true, payload: bytes.Repeat([]byte{'p'}, 125)})
		return append(bytes.Repeat(ping, nPings), p.encode(attackerClose)...)
	}
	// Each ping costs a pong, a system call: budgeted as such.
	pingBudget := costBudget{allocBase: 1 << 20, allocPerByte: 24, cpuBase: 100 * time.Millisecond, cpuPerByte: 400 * time.Microsecond}
	var afterClose []rawFrame
	afterClose = append(afterClose, attackerClose)
	for range 10_000 {
		afterClose = append(afterClose, attackerClose, rawF(opPing, true, "after"), rawF(opBinary, true, "after"), rawF(opContinuation, false, "x"))
	}
	return []attackCase{
		// Once the pongs fill the socket, one waits out its deadline and
		// makes writes fail; reading goes on.
		{name: "pings while never reading", app: attackedApp{echo: true}, build: pings, noRead: true, want: attackOutcome{kind: "close", code: CloseNormalClosure}, budget: pingBudget},
		{name: "pings", app: attackedApp{echo: true}, build: pings, want: outcomeSurvived(0), budget: pingBudget},
		{name: "closes and more after close", app: attackedApp{echo: true}, build: frames(afterClose), want: outcomeSurvived(0)},
	}
}

func TestHostileFloods(t *testing.T) {
	runAttacks(t, floodAttacks())
}

// compressionAttacks send compressed bombs, corrupt streams and
// compressed messages cut into tiny fragments.
func compressionAttacks() []attackCase {
	const mib = 1 << 20
	compressed := func(op byte, payload []byte) rawFrame {
		return rawFrame{op: op, fin: true, rsv: rsv1Bit, payload: payload}
	}
	bomb64 := deflatePayload(make([]byte, 64*mib), flate.BestCompression)
	bomb16 := deflatePayload(make([]byte, 16*mib), flate.BestCompression)
	text := bytes.Repeat([]byte(`{"id":12345,"name":"wsforge","tags":["a","b"]} `), 4000)
	deflated := deflatePayload(text, flate.BestSpeed)
	var tiny []rawFrame
	for i, b := range deflated {
		f := rawFrame{op: opContinuation, fin: i == len(deflated)-1, payload: []byte{b}}
		if i == 0 {
			f.op, f.rsv = opText, rsv1Bit
		}
		tiny = append(tiny, f)
	}
	corruptAfterValid := append(append([]byte(nil), deflated[:len(deflated)/2]...), bytes.Repeat([]byte{0xff}, 64)...)
	// A bomb is cheap to send: its cost is bounded by the inflated size,
	// at most 1032 bytes per byte of DEFLATE, read into a result that
	// grows by four at a time.
	bombBudget := costBudget{allocBase: 2 * mib, allocPerByte: 6 * 1032, cpuBase: 2 * time.Second, cpuPerByte: 0}
	return []attackCase{
		{name: "64 MiB bomb, limit 1 MiB", app: attackedApp{echo: true, compress: true, limit: mib}, build: frames(one(compressed(opBinary, bomb64))), want: outcomeFailed(CloseMessageTooBig), budget: bombBudget},
		{name: "64 MiB bomb, limit 1 MiB, NextReader", app: attackedApp{compress: true, limit: mib, reader: true}, build: frames(one(compressed(opBinary, bomb64))), want: outcomeFailed(CloseMessageTooBig), budget: bombBudget},
		{name: "16 MiB bomb, no limit", app: attackedApp{compress: true}, build: frames(one(compressed(opBinary, bomb16)), one(attackerClose)), want: outcomeSurvived(0), budget: bombBudget},
		{name: "corrupt stream", app: attackedApp{echo: true, compress: true}, build: frames(one(compressed(opBinary, bytes.Repeat([]byte{0xff}, 100)))), want: outcomeFailed(CloseInvalidFramePayloadData)},
		{name: "corrupt after valid blocks", app: attackedApp{echo: true, compress: true}, build: frames(one(compressed(opText, corruptAfterValid))), want: outcomeFailed(CloseInvalidFramePayloadData)},
		{name: "corrupt stream, NextReader", app: attackedApp{compress: true, reader: true}, build: frames(one(compressed(opBinary, bytes.Repeat([]byte{0xfe}, 100)))), want: outcomeFailed(CloseInvalidFramePayloadData)},
		{name: "stream with a final block then more", app: attackedApp{echo: true, compress: true}, build: frames(one(compressed(opBinary, append([]byte{0x03, 0x00}, deflated...)))), want: outcomeFailed(CloseInvalidFramePayloadData)},
		{name: "compressed text, 1-byte fragments", app: attackedApp{echo: true, compress: true}, build: frames(tiny, one(attackerClose)), want: outcomeSurvived(-1), budget: bombBudget},
		{name: "compressed text, 1-byte fragments, NextReader", app: attackedApp{echo: true, compress: true, reader: true}, build: frames(tiny, one(attackerClose)), want: outcomeSurvived(-1), budget: bombBudget},
		{name: "RSV1 without negotiation", app: attackedApp{echo: true}, build: frames(one(compressed(opBinary, deflated))), want: outcomeFailed(CloseProtocolError)},
		{name: "RSV1 on a ping", app: attackedApp{echo: true, compress: true}, build: frames(one(compressed(opPing, []byte{0x02, 0x00}))), want: outcomeFailed(CloseProtocolError)},
		{name: "RSV1 on a continuation", app: attackedApp{echo: true, compress: true}, build: frames(one(rawF(opBinary, false, "a"), compressed(opContinuation, deflated))), want: outcomeFailed(CloseProtocolError)},
	}
}

func TestHostileCompression(t *testing.T) {
	runAttacks(t, compressionAttacks())
}

// vanishAttacks end the connection in the middle of every part of a
// frame: the Conn reports CloseAbnormalClosure and keeps nothing.
func vanishAttacks() []attackCase {
	cut := func(f rawFrame, n int) func(p *rawPeer) []byte {
		return func(p *rawPeer) []byte { return p.encode(f)[:n] }
	}
	big := rawFrame{op: opBinary, fin: true, payload: make([]byte, 100000)}
	text := rawFrame{op: opText, fin: false, payload: []byte("héllo")}
	compressed := rawFrame{op: opText, fin: true, rsv: rsv1Bit, payload: deflatePayload(bytes.Repeat([]byte("hello "), 10000), flate.BestSpeed)}
	reset := func(p *rawPeer) {
		p.conn.(*net.TCPConn).SetLinger(0)
		p.conn.Close()
	}
	return []attackCase{
		{name: "after one header byte", app: attackedApp{echo: true}, build: cut(big, 1), after: attackerVanishes, want: outcomeVanished},
		{name: "in the extended length", app: attackedApp{echo: true}, build: cut(big, 5), after: attackerVanishes, want: outcomeVanished},
		{name: "in the masking key", app: attackedApp{echo: true}, build: cut(big, 11), after: attackerVanishes, want: outcomeVanished, serverOnly: true},
		{name: "in the payload", app: attackedApp{echo: true}, build: cut(big, 5000), after: attackerVanishes, want: outcomeVanished},
		{name: "in the payload, NextReader", app: attackedApp{echo: true, reader: true}, build: cut(big, 5000), after: attackerVanishes, want: outcomeVanished},
		{name: "between fragments", app: attackedApp{echo: true}, build: frames(one(text)), after: attackerVanishes, want: outcomeVanished},
		{name: "in a control frame", app: attackedApp{echo: true}, build: cut(rawF(opPing, true, "ping payload"), 9), after: attackerVanishes, want: outcomeVanished},
		{name: "in a compressed message", app: attackedApp{echo: true, compress: true}, build: cut(compressed, 20), after: attackerVanishes, want: outcomeVanished},
		{name: "reset in the payload", app: attackedApp{echo: true}, build: cut(big, 5000), after: reset, noRead: true, want: attackOutcome{kind: "net"}},
	}
}

func TestHostileVanish(t *testing.T) {
	runAttacks(t, vanishAttacks())
}

// neverReadsAttacks write to a peer that never reads: a write
// deadline ends a blocked write with a timeout, and writes fail from then
// on; nothing is left blocked.
func neverReadsAttacks() []attackCase {
	big := make([]byte, 32<<20)
	// stuck is how long a write waits for the peer that never reads;
	// any wait ends the same way, so -short waits less.
	stuck := 200 * time.Millisecond
	if testing.Short() {
		stuck = 50 * time.Millisecond
	}
	writeStuck := func(write func(c *Conn) error) attackedApp {
		return attackedApp{write: func(c *Conn) error {
			c.SetWriteDeadline(time.Now().Add(stuck))
			var err error
			for err == nil {
				err = write(c)
			}
			// A timed-out write leaves the stream corrupt: later writes
			// fail at once.
			if err2 := c.WriteMessage(BinaryMessage, []byte("later")); err2 == nil {
				return errors.New("a write after a timed-out one succeeded")
			}
			return err
		}}
	}
	return []attackCase{
		{name: "WriteMessage", app: writeStuck(func(c *Conn) error { return c.WriteMessage(BinaryMessage, big) }), build: frames(), noRead: true, want: attackOutcome{kind: "timeout"}, budget: costBudget{allocBase: 64 << 20, cpuBase: 2 * time.Second}},
		{name: "NextWriter", app: writeStuck(func(c *Conn) error {
			w, err := c.NextWriter(TextMessage)
			if err != nil {
				return err
			}
			for err == nil {
				_, err = w.Write(bytes.Repeat([]byte("stuck "), 1000))
			}
			w.Close()
			return err
		}), build: frames(), noRead: true, want: attackOutcome{kind: "timeout"}, budget: costBudget{allocBase: 64 << 20, cpuBase: 2 * time.Second}},
		{name: "pings", app: writeStuck(func(c *Conn) error {
			return c.WriteControl(PingMessage, bytes.Repeat([]byte{'p'}, 125), time.Now().Add(stuck))
		}), build: frames(), noRead: true, want: attackOutcome{kind: "timeout"}, budget: costBudget{allocBase: 64 << 20, cpuBase: 2 * time.Second}},
	}
}

func TestHostileNeverReads(t *testing.T) {
	runAttacks(t, neverReadsAttacks())
}

// endlessResponse answers a request (an upgrade, or a proxy's CONNECT) with
// head and then fill, again and again, until the client goes away: a
// response header without end.
func endlessResponse(head, fill string) func(c net.Conn) {
	return func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		chunk := []byte(strings.Repeat(fill, 64<<10/len(fill)))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}
}

// TestHostileDialerEndlessHeader checks that a server (or proxy) streaming
// header bytes without end fails the dial once MaxResponseHeaderBytes have
// been read, without waiting for HandshakeTimeout and without holding more
// than a few times the limit in memory; and that a large response within
// the limit still succeeds.
func TestHostileDialerEndlessHeader(t *testing.T) {
	const status = "HTTP/1.1 101 Switching Protocols\r\n"
	fields := startRawServer(t, nil, endlessResponse(status, "X-Filler: 0123456789abcdef0123456789abcdef\r\n"))
	line := startRawServer(t, nil, endlessResponse(status+"X-Long: ", "0123456789abcdef"))
	status1 := startRawServer(t, nil, endlessResponse("HTTP/1.1 101 ", "Switching"))
	proxy := startRawServer(t, nil, endlessResponse("HTTP/1.1 200 OK\r\n", "Via: 0123456789abcdef0123456789abcdef\r\n"))
	tests := []struct {
		name  string
		url   string
		limit int64 // Dialer.MaxResponseHeaderBytes
		proxy bool
	}{
		{"endless fields, default limit", "ws://" + fields.addr + "/", 0, false},
		{"endless fields, 64 KiB", "ws://" + fields.addr + "/", 64 << 10, false},
		{"endless field line", "ws://" + line.addr + "/", 0, false},
		{"endless status line", "ws://" + status1.addr + "/", 0, false},
		{"endless CONNECT response", "ws://example.com/", 0, true},
		{"endless CONNECT response, 64 KiB", "ws://example.com/", 64 << 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Dialer{HandshakeTimeout: 2 * testWait, MaxResponseHeaderBytes: tt.limit}
			if tt.proxy {
				d.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy.addr})
			}
			limit := tt.limit
			if limit == 0 {
				limit = http.DefaultMaxHeaderBytes
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			ws, resp, err := d.Dial(tt.url, nil)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrResponseHeaderTooLarge)
			assert.Contains(t, err.Error(), strconv.FormatInt(limit, 10))
			assert.Nil(t, ws)
			assert.Nil(t, resp)
			// The header read is held (as strings in a map) and read
			// ahead in 4 KiB; the rest is the dial's own garbage.
			allocated := int64(after.TotalAlloc - before.TotalAlloc)
			assert.Less(t, allocated, 8*limit+1<<20, "bytes allocated by the dial")
		})
	}

	t.Run("large response within the limit", func(t *testing.T) {
		big := strings.Repeat("x", 60<<10)
		s := startRawServer(t, nil, handshakeHandler(nil, func(req *http.Request) []byte {
			return acceptResponse(req, "X-Big: "+big+"\r\n", unmaskedFrame(opText, []byte("hi")))
		}))
		d := Dialer{HandshakeTimeout: testWait, MaxResponseHeaderBytes: 64 << 10}
		ws, resp, err := d.Dial("ws://"+s.addr+"/", nil)
		require.NoError(t, err)
		defer ws.Close()
		assert.Equal(t, big, resp.Header.Get("X-Big"))
		mt, p, err := ws.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, TextMessage, mt)
		assert.Equal(t, "hi", string(p))
	})
}

// httpLimits are the http.Server settings a case sets.
type httpLimits struct {
	MaxHeaderBytes    int
	ReadHeaderTimeout time.Duration
}

// TestHostileServerHandshake sends malformed and oversized upgrade
// requests. An Upgrader relies on net/http for the request itself, and
// inherits its limits: MaxHeaderBytes (1 MiB by default, http.
// DefaultMaxHeaderBytes) bounds the request line and header fields, with
// 431 beyond it and the handler never called; ReadHeaderTimeout (none by
// default: set it) bounds how long a client may take to send them. What
// the Upgrader parses itself (Connection, Upgrade, the key, the version,
// the subprotocol and extension lists) costs time and memory linear in
// those bytes.
func TestHostileServerHandshake(t *testing.T) {
	valid := "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + sampleKey + "\r\nSec-WebSocket-Version: 13\r\n"
	fields := func(name, value string, n int) string {
		return strings.Repeat(name+": "+value+"\r\n", n)
	}
	list := func(elem string, n int) string {
		return strings.TrimSuffix(strings.Repeat(elem+", ", n), ", ")
	}
	tests := []struct {
		name    string
		server  httpLimits
		u       Upgrader
		request string
		status  int // 0: the connection must end with no response
		// inResp and notInResp are what the response header (in
		// canonical form) must and must not contain.
		inResp, notInResp string
	}{
		{name: "2 MiB of header fields", request: valid + fields("X-Filler", strings.Repeat("f", 100), 20000) + "\r\n", status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "a 2 MiB header line", request: valid + "X-Long: " + strings.Repeat("l", 2<<20) + "\r\n\r\n", status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "a 2 MiB request line", request: "GET /" + strings.Repeat("u", 2<<20) + " HTTP/1.1\r\n\r\n", status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "8 KiB over a 4 KiB MaxHeaderBytes", server: httpLimits{MaxHeaderBytes: 4 << 10}, request: valid + fields("X-Filler", strings.Repeat("f", 100), 80) + "\r\n", status: http.StatusRequestHeaderFieldsTooLarge},
		{name: "60,000 small header fields", request: valid + fields("X-A", "b", 60000) + "\r\n", status: http.StatusSwitchingProtocols},
		{name: "12,000 extension offers", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: " + list("permessage-deflate; client_max_window_bits; server_max_window_bits=10", 12000) + "\r\n\r\n", status: http.StatusSwitchingProtocols, inResp: "server_max_window_bits=10"},
		// Offers past the 16th are declined without being parsed.
		{name: "20,000 bad extension offers then a good one", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: " + list("permessage-deflate; server_max_window_bits=99", 20000) + ", permessage-deflate\r\n\r\n", status: http.StatusSwitchingProtocols, notInResp: "permessage-deflate"},
		{name: "15 bad extension offers then a good one", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: " + list("permessage-deflate; server_max_window_bits=99", 15) + ", permessage-deflate\r\n\r\n", status: http.StatusSwitchingProtocols, inResp: "permessage-deflate"},
		{name: "an offer with 40,000 parameters", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: permessage-deflate" + strings.Repeat("; x=1", 40000) + "\r\n\r\n", status: http.StatusSwitchingProtocols, notInResp: "permessage-deflate"},
		{name: "an offer with 20,000 quoted parameters", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: permessage-deflate" + strings.Repeat(`; x="a\\b"`, 20000) + "\r\n\r\n", status: http.StatusSwitchingProtocols, notInResp: "permessage-deflate"},
		{name: "20,000 extension header fields", u: Upgrader{EnableCompression: true}, request: valid + fields("Sec-WebSocket-Extensions", "x-unknown; a=b", 20000) + "\r\n", status: http.StatusSwitchingProtocols, notInResp: "Sec-Websocket-Extensions"},
		{name: "malformed extension header", u: Upgrader{EnableCompression: true}, request: valid + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"1\\\r\n\r\n", status: http.StatusSwitchingProtocols, notInResp: "permessage-deflate"},
		{name: "50,000 subprotocols", u: Upgrader{Subprotocols: []string{"chat"}}, request: valid + "Sec-WebSocket-Protocol: " + list("p", 50000) + ", chat\r\n\r\n", status: http.StatusSwitchingProtocols, inResp: "Sec-Websocket-Protocol: chat"},
		{name: "Sec-WebSocket-Key twice", request: valid + "Sec-WebSocket-Key: " + sampleKey + "\r\n\r\n", status: http.StatusBadRequest},
		{name: "Sec-WebSocket-Version twice", request: valid + "Sec-WebSocket-Version: 13\r\n\r\n", status: http.StatusBadRequest},
		{name: "key of 10,000 bytes", request: strings.Replace(valid, sampleKey, strings.Repeat("A", 10000), 1) + "\r\n", status: http.StatusBadRequest},
		{name: "headers that never end, ReadHeaderTimeout", server: httpLimits{ReadHeaderTimeout: 200 * time.Millisecond}, request: valid + "X-Slow: ", status: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && len(tt.request) > 1<<20 {
				// About half a second each, mostly net/http's wait
				// before it closes a connection it refused.
				t.Skip("-short: a request over 1 MiB; the full suite sends it")
			}
			base := runtime.NumGoroutine()
			called := make(chan struct{}, 1)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				called <- struct{}{}
				c, err := tt.u.Upgrade(w, r, nil)
				if err == nil {
					c.Close()
				}
			}))
			srv.Config.MaxHeaderBytes = tt.server.MaxHeaderBytes
			srv.Config.ReadHeaderTimeout = tt.server.ReadHeaderTimeout
			srv.Config.ErrorLog = nil
			srv.Start()
			defer srv.Close()
			nc, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(testWait))
			request := []byte(tt.request)
			var resp *http.Response
			var readErr error
			cost := measureCost(func() {
				// net/http may answer before it has read everything.
				go nc.Write(request)
				resp, readErr = http.ReadResponse(bufio.NewReader(nc), nil)
			})
			if tt.status == 0 {
				require.Error(t, readErr, "want the connection closed without a response")
				assert.Len(t, called, 0, "the handler was called")
			} else {
				require.NoError(t, readErr)
				assert.Equal(t, tt.status, resp.StatusCode)
				if tt.status == http.StatusRequestHeaderFieldsTooLarge {
					assert.Len(t, called, 0, "the handler was called")
				}
				var b strings.Builder
				resp.Header.Write(&b)
				if tt.inResp != "" {
					assert.Contains(t, b.String(), tt.inResp)
				}
				if tt.notInResp != "" {
					assert.NotContains(t, b.String(), tt.notInResp)
				}
			}
			budget := costBudget{allocBase: 1 << 20, allocPerByte: 16, cpuBase: 300 * time.Millisecond, cpuPerByte: 50 * time.Microsecond}
			budget.check(t, int64(len(request)), cost)
			t.Logf("%d bytes sent: %d bytes allocated (%.2f per byte), CPU %v", len(request), cost.alloc, float64(cost.alloc)/float64(len(request)), cost.cpu)
			nc.Close()
			srv.Close()
			checkNoGoroutineLeak(t, base)
		})
	}
}

// TestHostileDialer answers a Dialer's handshake with malformed and
// oversized responses: the dial fails with a clear error at a cost
// linear in what was sent, or succeeds and the Conn then fails the
// garbage that follows.
func TestHostileDialer(t *testing.T) {
	accept := func(extra string, tail []byte) func(req *http.Request) []byte {
		return func(req *http.Request) []byte { return acceptResponse(req, extra, tail) }
	}
	tests := []struct {
		name     string
		d        Dialer
		respond  func(req *http.Request) []byte
		wantErr  error // nil: the dial succeeds and the first read fails with 1002
		wantResp bool  // the response comes back with the error
	}{
		{name: "20,000 extension elements", d: Dialer{EnableCompression: true}, respond: accept("Sec-WebSocket-Extensions: "+strings.TrimSuffix(strings.Repeat("permessage-deflate, ", 20000), ", ")+"\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "15,000 extension header fields", d: Dialer{EnableCompression: true}, respond: accept(strings.Repeat("Sec-WebSocket-Extensions: permessage-deflate\r\n", 15000), nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "40,000 parameters", d: Dialer{EnableCompression: true}, respond: accept("Sec-WebSocket-Extensions: permessage-deflate"+strings.Repeat("; x=1", 40000)+"\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "window bits 7", d: Dialer{EnableCompression: true}, respond: accept("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=7\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "window bits 99999999999999999999", d: Dialer{EnableCompression: true}, respond: accept("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99999999999999999999\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "client window bits not offered", d: Dialer{EnableCompression: true, Compression: CompressionOptions{ClientMaxWindowBits: 15}}, respond: accept("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8; client_max_window_bits=8\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "unterminated quoted parameter", d: Dialer{EnableCompression: true}, respond: accept("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=\"10\r\n", nil), wantErr: errInvalidCompression, wantResp: true},
		{name: "extension not offered", respond: accept("Sec-WebSocket-Extensions: permessage-deflate\r\n", nil), wantErr: ErrBadHandshake, wantResp: true},
		{name: "20,000 subprotocol fields", d: Dialer{Subprotocols: []string{"chat"}}, respond: accept(strings.Repeat("Sec-WebSocket-Protocol: chat\r\n", 20000), nil), wantErr: ErrBadHandshake, wantResp: true},
		{name: "50,000 subprotocols", d: Dialer{Subprotocols: []string{"chat"}}, respond: accept("Sec-WebSocket-Protocol: "+strings.Repeat("chat, ", 50000)+"chat\r\n", nil), wantErr: ErrBadHandshake, wantResp: true},
		{name: "Sec-WebSocket-Accept twice", respond: accept("Sec-WebSocket-Accept: x\r\n", nil), wantErr: ErrBadHandshake, wantResp: true},
		{name: "refusal with an endless chunked body", respond: func(*http.Request) []byte {
			return append([]byte("HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n"), bytes.Repeat([]byte("1\r\nx\r\n"), 100000)...)
		}, wantErr: ErrBadHandshake, wantResp: true},
		{name: "garbage after the 101", respond: accept("", bytes.Repeat([]byte{0xff}, 100))},
		{name: "masked frame after the 101", respond: accept("", rawF(opText, true, "masked").encode(true))},
		{name: "non-minimal length after the 101", respond: accept("", rawFrame{op: opText, fin: true, form: 16, payload: []byte("x")}.encode(false))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			var sent int64
			s := startRawServer(t, nil, func(c net.Conn) {
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				b := tt.respond(req)
				sent = int64(len(b))
				c.Write(b)
				io.Copy(io.Discard, c)
			})
			d := tt.d
			d.HandshakeTimeout = testWait
			var ws *Conn
			var resp *http.Response
			var err error
			cost := measureCost(func() {
				ws, resp, err = d.Dial("ws://"+s.addr+"/", nil)
			})
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, ws)
				assert.Equal(t, tt.wantResp, resp != nil)
			} else {
				require.NoError(t, err)
				_, _, rerr := ws.ReadMessage()
				var pe *ProtocolError
				require.ErrorAs(t, rerr, &pe)
				assert.Equal(t, CloseProtocolError, pe.Code)
				ws.Close()
			}
			budget := costBudget{allocBase: 1 << 20, allocPerByte: 16, cpuBase: 300 * time.Millisecond, cpuPerByte: 50 * time.Microsecond}
			budget.check(t, sent, cost)
			t.Logf("%d bytes sent: %d bytes allocated (%.2f per byte), CPU %v", sent, cost.alloc, float64(cost.alloc)/float64(max(sent, 1)), cost.cpu)
			s.close()
			checkNoGoroutineLeak(t, base)
		})
	}
}

// FuzzConnStream feeds arbitrary bytes, as if they followed a completed
// handshake, to a server or client Conn, with or without compression
// negotiated and a read limit, read with ReadMessage or with NextReader
// and small reads. Whatever the bytes:
//   - nothing panics;
//   - the bytes allocated stay within a constant plus a multiple of the
//     input's size (DEFLATE's 1032:1 allowed for when compression is on);
//   - the read ends with a permanent error, and when the Conn failed the
//     connection (a *ProtocolError or ErrReadLimit) the last thing it wrote
//     is a close frame with that code, masked exactly when it is a client.
//
// Its seeds are the hostile suite's attacks, cut to 16 KiB.
func FuzzConnStream(f *testing.F) {
	for _, cases := range [][]attackCase{lengthAttacks(), fragmentationAttacks(), floodAttacks(), compressionAttacks(), vanishAttacks()} {
		for i, tc := range cases {
			for _, isServer := range []bool{true, false} {
				if tc.serverOnly && !isServer {
					continue
				}
				stream := tc.build(&rawPeer{client: isServer})
				if len(stream) > 16<<10 {
					stream = stream[:16<<10]
				}
				f.Add(stream, isServer, tc.app.compress, uint32(tc.app.limit), tc.app.reader, uint8(i))
			}
		}
	}
	f.Fuzz(func(t *testing.T, stream []byte, isServer, compress bool, limit uint32, reader bool, chunk uint8) {
		nc := &chunkedConn{data: stream, chunk: int(chunk % 64)}
		var c *Conn
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c = newConn(nc, isServer, 0, 0, nil, nil)
		if compress {
			c.enableCompression(pmdParams{serverMaxWindowBits: 15, clientMaxWindowBits: 15, serverNoContextTakeover: chunk&64 != 0, clientNoContextTakeover: chunk&64 != 0}, &CompressionOptions{})
		}
		c.SetReadLimit(int64(limit))
		err := streamReadAll(c, reader, int(chunk%32)+1)
		runtime.ReadMemStats(&after)

		perByte := int64(32)
		if compress {
			perByte = 6 * 1032
		}
		alloc := int64(after.TotalAlloc - before.TotalAlloc)
		if bound := 512<<10 + perByte*int64(len(stream)); alloc > bound {
			t.Fatalf("%d bytes of input: %d bytes allocated, more than %d", len(stream), alloc, bound)
		}

		if err == nil {
			t.Fatal("the read ended without an error")
		}
		if _, _, err2 := c.ReadMessage(); err2 != err {
			t.Fatalf("read error %v, then %v: not permanent", err, err2)
		}
		var code int
		var pe *ProtocolError
		switch {
		case errors.As(err, &pe):
			code = pe.Code
		case errors.Is(err, ErrReadLimit):
			code = CloseMessageTooBig
		default:
			return
		}
		got, masked, ok := streamLastClose(nc.written())
		if !ok {
			t.Fatalf("failed with %v, but the last frame written is not a close frame: % x", err, nc.written())
		}
		if got != code || masked == isServer {
			t.Fatalf("failed with %v: close frame with code %d (masked %v) from a server=%v Conn", err, got, masked, isServer)
		}
	})
}

// streamReadAll reads c until an error, with ReadMessage or with
// NextReader and reads of chunk bytes, and returns the error.
func streamReadAll(c *Conn, reader bool, chunk int) error {
	buf := make([]byte, chunk)
	for {
		if !reader {
			if _, _, err := c.ReadMessage(); err != nil {
				return err
			}
			continue
		}
		_, r, err := c.NextReader()
		if err != nil {
			return err
		}
		for err == nil {
			_, err = r.Read(buf)
		}
		if err != io.EOF {
			return err
		}
	}
}

// streamLastClose parses the frames in out, as a peer would read them,
// and reports the code of the last one if it is a close frame, and
// whether it was masked.
func streamLastClose(out []byte) (code int, masked, ok bool) {
	for len(out) >= 2 {
		hl := frameHeaderLen(out[0], out[1])
		if len(out) < hl {
			return 0, false, false
		}
		h, n, perr := parseFrameHeader(out)
		if perr != nil || int64(len(out)-n) < h.length {
			return 0, false, false
		}
		payload := append([]byte(nil), out[n:n+int(h.length)]...)
		out = out[n+int(h.length):]
		if h.masked {
			maskBytes(h.key, 0, payload)
		}
		code, masked, ok = 0, h.masked, h.opcode == opClose && len(payload) >= 2
		if ok {
			code = int(binary.BigEndian.Uint16(payload))
		}
	}
	return code, masked, ok && len(out) == 0
}
