package flate

import (
	"math/bits"
	"sync"
	"time"
)

// The Encoder splits its state in three:
//
//   - held for the life of a connection with context takeover: the
//     history, a ring of the last H = 7/8 of 2^windowBits bytes sent (28 KiB
//     at windowBits 15). Back-references could reach the whole window; the
//     last eighth is left out because it buys almost nothing (0.2% of
//     ratio on the JSON of the benchmarks) and a 28 KiB ring fits the
//     heap's 28 KiB size class where anything longer takes 32 KiB: so an
//     idle connection at 15-bit windows, with the 32 KiB window it inflates
//     the peer's messages in, stays within 64 KiB.
//   - held only while the connection is active: the match index, a
//     hash-head table of 2^(windowBits-1) uint16 positions (32 KiB at 15)
//     and, at levels 3 and up, a chain table of W/4 links (16 KiB). A
//     timer drops it once the Encoder has gone between one and two
//     seconds (idleAfter) without a message; the next message
//     rebuilds it from the history. TestEncoderHeldMemory measures both
//     states.
//   - used only inside Compress and returned to a sync.Pool before it
//     returns (encodeWork: the index of a message compressed without
//     takeover, the token buffer, frequency and code tables; about
//     200 KiB, shared by all connections that are not compressing at that
//     instant).
//
// Matching (match.go) is LZ77 over a 4-byte hash. The message and the
// history ring are both read in place (a match may run from the ring into
// the message), so the only copy is of the message's tail into the ring
// afterwards.

// Tail is the end of the sync flush that RFC 7692 removes from each
// compressed message and the receiver puts back: the LEN and NLEN of an
// empty stored block. Compress leaves it out of its output; a sender that
// cuts a message into several compressed fragments appends it to each but
// the last, so that the next fragment's data starts on a byte boundary
// after a complete block.
const Tail = "\x00\x00\xff\xff"

const (
	minWindowBits = 8
	maxWindowBits = 15
	// hashMaxBits sizes the pooled head table of an Encoder without
	// takeover, and bounds a held one (windowBits-1). Pooled, the table
	// costs memory per compressing goroutine, not per connection; at 15
	// bits, level 1 on 4 KiB JSON is 3% faster than at 14 (fewer false
	// candidates) and 15% faster than at 12.
	hashMaxBits = 15
	hashMul     = 0x9e3779b1
	// indexHeadLevel2 is how many positions after its first a match
	// enters in the head table at level 2 (see matchLevel2).
	indexHeadLevel2 = 8
	// indexHeadLevel1 is indexHeadLevel2 at level 1, which extends
	// matches backwards and so needs fewer positions entered.
	indexHeadLevel1 = 4
	// blockTokens is how many tokens a block gathers before it is
	// written: large enough that a dynamic table pays for itself, small
	// enough to follow changes in the data of a large message.
	blockTokens = 1 << 14
	// farLen3 is the distance beyond which a 3-byte match costs more
	// than the three literals it replaces.
	farLen3 = 4096
	// compress/flate's special levels.
	levelHuffmanOnly = -2
	levelDefault     = -1
	levelStored      = 0
)

// idleAfter is how long an Encoder with context takeover must go without
// compressing (between one and two of it) before it drops its match
// index. Rebuilding the index from 28 KiB of history costs about as much
// as compressing an 8 KiB message, so the period keeps that to at most
// once a second for a connection that sends rarely.
const idleAfter = time.Second

// levelParams are the match finder's settings for one level.
type levelParams struct {
	chain int  // candidates examined per position along hash chains; 1: no chains
	ways  int  // chain 1 only: positions a hash bucket keeps (1 or 2)
	nice  int  // a match this long ends the search
	lazy  int  // 0: greedy; else look one position ahead while the match is shorter than this
	good  int  // chains only: with a lazy match this long, search a quarter of chain
	skip  bool // greedy only: stride faster through bytes that do not match
}

// levels maps compress/flate levels 1..9 (index 0 is unused;
// DefaultCompression is 6).
var levels = [10]levelParams{
	1: {chain: 1, ways: 1, nice: maxMatch, skip: true},
	2: {chain: 1, ways: 2, nice: maxMatch, lazy: 8, skip: true},
	3: {chain: 8, nice: 64},
	4: {chain: 8, nice: 32, lazy: 16, good: 8},
	5: {chain: 16, nice: 64, lazy: 32, good: 8},
	6: {chain: 32, nice: 128, lazy: 128, good: 8},
	7: {chain: 64, nice: 128, lazy: 128, good: 16},
	8: {chain: 256, nice: maxMatch, lazy: 258, good: 32},
	9: {chain: 1024, nice: maxMatch, lazy: 258, good: 32},
}

// An Encoder compresses the messages of one direction of one connection.
// Compress, SetLevel and the accessors must not be called concurrently
// with one another (a connection's write lock serialises them); Close,
// DropIndex and HeldBytes may be called at any time, and the idle timer
// runs on a goroutine of its own (see Close).
type Encoder struct {
	wsize    int // 2^windowBits: no back-reference reaches farther
	hsize    int // size of the history ring, 7/8 of wsize
	hashBits uint
	level    int
	params   levelParams
	takeover bool

	// pos is the stream offset of the next byte, modulo 2^16 (the
	// residue all positions are kept as); with takeover, hist[rpos] is
	// where that byte will go in the ring.
	pos     uint16
	rpos    int
	histLen int    // bytes of history that matches may use
	hist    []byte // ring of the last hsize bytes; only with takeover

	// mu guards the match index against the idle timer, which drops it
	// (Compress holds mu throughout). Only with takeover; without it the
	// index is pooled.
	mu   sync.Mutex
	head []uint16 // hash heads (buckets of params.ways at levels 1 and 2)
	// prev[p&(len(prev)-1)] is the previous position with the same hash as
	// p; only at levels that chain.
	prev     []uint16
	prevBits uint
	timer    *time.Timer
	idle     time.Duration // the timer's period: idleAfter (tests shorten it)
	armed    bool          // the timer is set (or its function running)
	used     bool          // a message was compressed since the timer was last set
}

// NewEncoder returns an Encoder whose back-references stay within
// 2^windowBits bytes (windowBits 8..15; out-of-range values are clamped)
// at the given compress/flate level (-2 HuffmanOnly, -1 default, 0 stored
// only, 1 fastest .. 9 best; other values mean the default, 6). With
// takeover (context takeover), each message may refer to the previous
// ones, and the Encoder keeps the history between messages; without it,
// it keeps nothing and each message stands alone. No memory beyond the
// struct is allocated until the first Compress, and only an Encoder with
// takeover ever starts the idle timer.
func NewEncoder(windowBits, level int, takeover bool) *Encoder {
	windowBits = min(max(windowBits, minWindowBits), maxWindowBits)
	e := &Encoder{
		wsize:    1 << windowBits,
		hsize:    1<<windowBits - 1<<windowBits>>3,
		takeover: takeover,
		hashBits: hashMaxBits,
		idle:     idleAfter,
	}
	if takeover {
		e.hashBits = uint(windowBits - 1)
		e.prevBits = uint(windowBits - 2)
	}
	e.SetLevel(level)
	return e
}

// SetLevel changes the compression level for the following messages, with
// NewEncoder's meaning of level; the history is kept, so it may be called
// between any two messages. It costs a few assignments.
func (e *Encoder) SetLevel(level int) {
	if level < levelHuffmanOnly || level > 9 || level == levelDefault {
		level = 6
	}
	e.level = level
	if level > 0 {
		e.params = levels[level]
	}
}

// Level returns the level in use: SetLevel's (or NewEncoder's) argument,
// with -1 and values out of range made 6.
func (e *Encoder) Level() int { return e.level }

// WindowBits returns the window the Encoder stays within, as a base-2
// logarithm: NewEncoder's argument, clamped to 8..15.
func (e *Encoder) WindowBits() int { return bits.Len(uint(e.wsize)) - 1 }

// Takeover reports whether messages may refer to the previous ones
// (context takeover), as NewEncoder was told.
func (e *Encoder) Takeover() bool { return e.takeover }

// reset forgets the history, so the next message refers to nothing before
// it. Memory already held is kept for reuse.
func (e *Encoder) reset() {
	e.histLen = 0
}

// Forget drops the history, as if no message had been compressed: the
// next message refers to nothing before it. A caller whose compressed
// message never reached the peer calls it, since with context takeover
// the peer's window lacks that message and the next one could otherwise
// refer to it. Output after Forget is valid for any window the peer
// holds. Memory already held is kept for reuse.
func (e *Encoder) Forget() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reset()
}

// HeldBytes reports the memory the Encoder holds between messages, beyond
// its struct (and the timer of an Encoder with takeover): the history
// ring, and the match index unless it has been dropped.
func (e *Encoder) HeldBytes() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return cap(e.hist) + 2*cap(e.head) + 2*cap(e.prev)
}

// Bound returns the most Compress appends for a message of n bytes, with a
// few bytes to spare: the stored form costs 5 bytes per 65535 and the sync
// flush one, and Compress never chooses a coded form that is larger.
func Bound(n int) int {
	return n + 5*(n/65535+1) + 8
}

// Compress appends the compressed form of msg to dst and returns it. The
// output ends with a sync flush (an empty stored block) from which Tail
// has been removed, as RFC 7692 section 7.2.1 asks of a message payload;
// no block has BFINAL set. An empty msg yields the single byte 0x00. msg
// is not retained. With context takeover the message becomes history for
// the next one, otherwise the history stays empty. It allocates nothing in
// the steady state: its working memory is pooled, and with takeover the
// history and index are the Encoder's.
func (e *Encoder) Compress(dst, msg []byte) []byte {
	if e.takeover {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.markUsed()
	}
	w, _ := workPool.Get().(*encodeWork)
	if w == nil {
		w = &encodeWork{tokens: make([]uint32, 0, blockTokens)}
	}
	w.bw = bitWriter{out: dst}
	w.msg = msg
	w.blockStart, w.storedStart = 0, 0

	if !e.takeover {
		e.histLen = 0
	}
	switch {
	case len(msg) == 0:
	case e.level == levelStored:
		w.bw.writeStored(msg)
	case e.level == levelHuffmanOnly:
		w.literals(0, len(msg))
	default:
		head := w.head[:1<<e.hashBits]
		w.prev = w.prevBuf[:min(e.wsize, len(w.prevBuf))]
		if e.takeover {
			if e.hist == nil {
				e.hist = make([]byte, e.hsize)
			}
			if e.head == nil || (e.prev == nil && e.params.chain > 1) {
				e.buildIndex()
			}
			head, w.prev = e.head, e.prev
		}
		switch {
		case e.params.chain == 1 && e.params.ways == 1:
			e.matchLevel1(w, head)
		case e.params.chain == 1:
			e.matchLevel2(w, head)
		case e.params.lazy > 0:
			e.matchLazy(w, head)
		default:
			e.matchGreedy(w, head)
		}
	}
	if w.nsym > 0 {
		w.flushBlock(len(msg))
	}
	w.flushStored()
	w.bw.syncFlush()
	dst = w.bw.out
	e.remember(msg)

	w.bw = bitWriter{}
	w.msg, w.prev = nil, nil
	workPool.Put(w)
	return dst
}

// markUsed records a message for the idle timer, setting it if it is not
// set. e.mu is held.
func (e *Encoder) markUsed() {
	e.used = true
	if e.armed {
		return
	}
	e.armed = true
	if e.timer == nil {
		e.timer = time.AfterFunc(e.idle, e.idleTick)
	} else {
		e.timer.Reset(e.idle)
	}
}

// idleTick runs on the idle timer. An Encoder that compressed since the
// timer was set is active: it looks again a period later. One that did
// not drops its match index; the timer stays unset until the next message.
func (e *Encoder) idleTick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.used {
		e.used = false
		e.timer.Reset(e.idle)
		return
	}
	e.armed = false
	e.head, e.prev = nil, nil
}

// Close stops the idle timer and drops the match index, for a connection
// that will send no more; the timer's goroutine then never runs again. It
// may be called at any time and more than once. An Encoder used after
// Close still works, and sets the timer again.
func (e *Encoder) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
	}
	e.armed, e.used = false, false
	e.head, e.prev = nil, nil
}

// DropIndex drops the match index now, as the idle timer does after a
// quiet period; the next Compress rebuilds it from the history (the output
// stays as valid, if not byte for byte the same). It may be called at any
// time.
func (e *Encoder) DropIndex() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.used = false
	e.head, e.prev = nil, nil
}

// buildIndex allocates the match index the level needs and enters every
// position of the history in it (the last three only reach into the next
// message, and are left out).
func (e *Encoder) buildIndex() {
	if e.head == nil {
		e.head = make([]uint16, 1<<e.hashBits)
	}
	chains := e.params.chain > 1
	if chains && e.prev == nil {
		e.prev = make([]uint16, 1<<e.prevBits)
	}
	two := !chains && e.params.ways == 2
	shift := 32 - e.hashBits
	if two {
		shift++
	}
	pmask := len(e.prev) - 1
	for k := e.histLen; k >= 4; k-- {
		r := e.ringIndex(-k)
		var x uint32
		if r+4 <= e.hsize {
			x = load32(e.hist, r)
		} else {
			for j := 3; j >= 0; j-- {
				x = x<<8 | uint32(e.hist[(r+j)%e.hsize])
			}
		}
		p := e.pos - uint16(k)
		if !chains {
			enter(e.head, x, p, shift, two)
			continue
		}
		h := (x * hashMul) >> shift
		e.prev[int(p)&pmask] = e.head[h]
		e.head[h] = p
	}
}

// ringIndex returns where in hist the byte p bytes after the start of the
// current message sits, for -histLen <= p < 0.
func (e *Encoder) ringIndex(p int) int {
	r := e.rpos + p
	if r < 0 {
		r += e.hsize
	}
	return r
}

// remember moves msg's tail into the history ring.
func (e *Encoder) remember(msg []byte) {
	if e.takeover {
		if e.hist == nil {
			e.hist = make([]byte, e.hsize)
		}
		tail := msg[max(0, len(msg)-e.hsize):]
		r := (e.rpos + len(msg) - len(tail)) % e.hsize
		k := copy(e.hist[r:], tail)
		copy(e.hist, tail[k:])
		e.rpos = (e.rpos + len(msg)) % e.hsize
		e.histLen = min(e.hsize, e.histLen+len(msg))
	}
	e.pos += uint16(len(msg))
}
