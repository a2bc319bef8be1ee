package websocket

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"time"
)

// A compact DEFLATE (RFC 1951) encoder for permessage-deflate (RFC 7692).
//
// compress/flate cannot serve the sending side: a flate.Writer holds about
// 1 MB whether or not it is in use and cannot be reset onto a dictionary,
// so context takeover would pin that much per connection. This encoder
// splits its state in three:
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
//     timer drops it once the deflater has gone between one and two
//     seconds (deflateIdleAfter) without a message; the next message
//     rebuilds it from the history. TestDeflateHeldMemory measures both
//     states.
//   - used only inside compress and returned to a sync.Pool before it
//     returns (deflateWork: the index of a message compressed without
//     takeover, the token buffer, frequency and code tables; about
//     200 KiB, shared by all connections that are not compressing at that
//     instant).
//
// Matching is LZ77 over a 4-byte hash. Positions are kept as uint16
// residues of the stream offset, so the persistent tables need no
// rebasing; a position is only a hint, and every candidate is checked for
// a distance of 1..min(2^windowBits, history available) and then compared
// byte by byte, so a stale, aliased or (in pooled memory) foreign entry can
// cost time but never produce a wrong back-reference. Levels 1 and 2 keep
// no chains: level 1 probes one head per position, level 2 a bucket of the
// two most recent positions with the hash and, while its match is shorter
// than 8, the next position too (a one-step lazy evaluation), which on the
// 4 KiB JSON of the benchmarks takes the ratio from 0.264 to 0.243 for
// about 50% more time. At levels 3 and up a chain is followed only while its
// link slot cannot have been reused (distance below the chain table's
// size), so with takeover the chains reach the last W/4 bytes and the
// heads the whole history.
// The message and the history ring are both read in place (a match may run
// from the ring into the message), so the only copy is of the message's
// tail into the ring afterwards.

const (
	deflateMinWindowBits = 8
	deflateMaxWindowBits = 15
	deflateMinMatch      = 3
	deflateMaxMatch      = 258
	// deflateHashMaxBits sizes the pooled head table of a deflater
	// without takeover, and bounds a held one (windowBits-1). Pooled, the
	// table costs memory per compressing goroutine, not per connection;
	// at 15 bits, level 1 on 4 KiB JSON is 3% faster than at 14 (fewer
	// false candidates) and 15% faster than at 12.
	deflateHashMaxBits = 15
	deflateHashMul     = 0x9e3779b1
	// deflateIndexHead is how many positions after its first a match
	// enters in the head table at levels 1 and 2 (see matchFast).
	deflateIndexHead = 8
	// deflateIndexHead1 is deflateIndexHead at level 1, which extends
	// matches backwards and so needs fewer positions entered.
	deflateIndexHead1 = 4
	// deflateBlockTokens is how many tokens a block gathers before it is
	// written: large enough that a dynamic table pays for itself, small
	// enough to follow changes in the data of a large message.
	deflateBlockTokens = 1 << 14
	// deflateFarLen3 is the distance beyond which a 3-byte match costs
	// more than the three literals it replaces.
	deflateFarLen3 = 4096
	// compress/flate's special levels.
	deflateHuffmanOnly = -2
	deflateDefaultLvl  = -1
	deflateNoCompress  = 0
)

// deflateIdleAfter is how long a deflater with context takeover must go
// without compressing (between one and two of it) before it drops its
// match index. Rebuilding the index from 28 KiB of history costs about as
// much as compressing an 8 KiB message, so the period keeps that to at
// most once a second for a connection that sends rarely.
const deflateIdleAfter = time.Second

// deflateParams are the match finder's settings for one level.
type deflateParams struct {
	chain int  // candidates examined per position along hash chains; 1: no chains
	ways  int  // chain 1 only: positions a hash bucket keeps (1 or 2)
	nice  int  // a match this long ends the search
	lazy  int  // 0: greedy; else look one position ahead while the match is shorter than this
	good  int  // chains only: with a lazy match this long, search a quarter of chain
	skip  bool // greedy only: stride faster through bytes that do not match
}

// deflateLevelParams maps compress/flate levels 1..9 (index 0 is unused;
// DefaultCompression is 6).
var deflateLevelParams = [10]deflateParams{
	1: {chain: 1, ways: 1, nice: deflateMaxMatch, skip: true},
	2: {chain: 1, ways: 2, nice: deflateMaxMatch, lazy: 8, skip: true},
	3: {chain: 8, nice: 64},
	4: {chain: 8, nice: 32, lazy: 16, good: 8},
	5: {chain: 16, nice: 64, lazy: 32, good: 8},
	6: {chain: 32, nice: 128, lazy: 128, good: 8},
	7: {chain: 64, nice: 128, lazy: 128, good: 16},
	8: {chain: 256, nice: deflateMaxMatch, lazy: 258, good: 32},
	9: {chain: 1024, nice: deflateMaxMatch, lazy: 258, good: 32},
}

// A deflater compresses messages for one direction of one connection. It
// is not safe for concurrent use; the connection's write lock serialises
// it.
type deflater struct {
	wsize    int // 2^windowBits: no back-reference reaches farther
	hsize    int // size of the history ring, 7/8 of wsize
	hashBits uint
	level    int
	params   deflateParams
	takeover bool

	// pos is the stream offset of the next byte, modulo 2^16 (the
	// residue all positions are kept as); with takeover, hist[rpos] is
	// where that byte will go in the ring.
	pos     uint16
	rpos    int
	histLen int    // bytes of history that matches may use
	hist    []byte // ring of the last hsize bytes; only with takeover

	// mu guards the match index against the idle timer, which drops it
	// (compress holds mu throughout). Only with takeover; without it the
	// index is pooled.
	mu   sync.Mutex
	head []uint16 // hash heads (buckets of params.ways at levels 1 and 2)
	// prev[p&(len(prev)-1)] is the previous position with the same hash as
	// p; only at levels that chain.
	prev     []uint16
	prevBits uint
	timer    *time.Timer
	idle     time.Duration // the timer's period: deflateIdleAfter (tests shorten it)
	armed    bool          // the timer is set (or its function running)
	used     bool          // a message was compressed since the timer was last set
}

// newDeflater returns a deflater whose back-references stay within
// 2^windowBits bytes (windowBits 8..15; out-of-range values are clamped)
// at the given compress/flate level (-2 HuffmanOnly, -1 default, 0 stored
// only, 1 fastest .. 9 best; other values mean default). With
// contextTakeover, each message may refer to the previous ones, and the
// deflater keeps the history between messages; without it, it keeps
// nothing and each message stands alone. No memory beyond the struct is
// allocated until the first compress.
func newDeflater(windowBits int, level int, contextTakeover bool) *deflater {
	windowBits = min(max(windowBits, deflateMinWindowBits), deflateMaxWindowBits)
	d := &deflater{
		wsize:    1 << windowBits,
		hsize:    1<<windowBits - 1<<windowBits>>3,
		takeover: contextTakeover,
		hashBits: deflateHashMaxBits,
		idle:     deflateIdleAfter,
	}
	if contextTakeover {
		d.hashBits = uint(windowBits - 1)
		d.prevBits = uint(windowBits - 2)
	}
	d.setLevel(level)
	return d
}

// setLevel changes the compression level for the following messages; the
// history is kept, so it may be called between any two messages.
func (d *deflater) setLevel(level int) {
	if level < deflateHuffmanOnly || level > 9 || level == deflateDefaultLvl {
		level = 6
	}
	d.level = level
	if level > 0 {
		d.params = deflateLevelParams[level]
	}
}

// windowBits returns the window the deflater stays within, as a base-2
// logarithm.
func (d *deflater) windowBits() int { return bits.Len(uint(d.wsize)) - 1 }

// reset forgets the history, so the next message refers to nothing before
// it (used between messages without context takeover). Memory already
// held is kept for reuse.
func (d *deflater) reset() {
	d.histLen = 0
}

// heldBytes reports the memory the deflater holds between messages, beyond
// its struct (and the timer of a deflater with takeover).
func (d *deflater) heldBytes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cap(d.hist) + 2*cap(d.head) + 2*cap(d.prev)
}

// compress appends the compressed form of msg to dst and returns it. The
// output ends with a sync flush (an empty stored block) from which the
// trailing 00 00 ff ff has been removed, as RFC 7692 section 7.2.1 asks of
// a message payload; no block has BFINAL set. An empty msg yields the
// single byte 0x00. msg is not retained. With context takeover the
// message becomes history for the next one, otherwise the history stays
// empty.
func (d *deflater) compress(dst, msg []byte) []byte {
	if d.takeover {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.markUsed()
	}
	w, _ := deflateWorkPool.Get().(*deflateWork)
	if w == nil {
		w = &deflateWork{tokens: make([]uint32, 0, deflateBlockTokens)}
	}
	w.bw = huffBitWriter{out: dst}
	w.msg = msg
	w.blockStart, w.storedStart = 0, 0

	if !d.takeover {
		d.histLen = 0
	}
	switch {
	case len(msg) == 0:
	case d.level == deflateNoCompress:
		w.bw.writeStored(msg)
	case d.level == deflateHuffmanOnly:
		w.literals(0, len(msg))
	default:
		head := w.head[:1<<d.hashBits]
		w.prev = w.prevBuf[:min(d.wsize, len(w.prevBuf))]
		if d.takeover {
			if d.hist == nil {
				d.hist = make([]byte, d.hsize)
			}
			if d.head == nil || (d.prev == nil && d.params.chain > 1) {
				d.buildIndex()
			}
			head, w.prev = d.head, d.prev
		}
		switch {
		case d.params.chain == 1 && d.params.ways == 1:
			d.matchFast1(w, head)
		case d.params.chain == 1:
			d.matchFast(w, head)
		case d.params.lazy > 0:
			d.matchLazy(w, head)
		default:
			d.matchGreedy(w, head)
		}
	}
	if w.nsym > 0 {
		w.flushBlock(len(msg))
	}
	w.flushStored()
	w.bw.syncFlush()
	dst = w.bw.out
	d.remember(msg)

	w.bw = huffBitWriter{}
	w.msg, w.prev = nil, nil
	deflateWorkPool.Put(w)
	return dst
}

// markUsed records a message for the idle timer, setting it if it is not
// set. d.mu is held.
func (d *deflater) markUsed() {
	d.used = true
	if d.armed {
		return
	}
	d.armed = true
	if d.timer == nil {
		d.timer = time.AfterFunc(d.idle, d.idleTick)
	} else {
		d.timer.Reset(d.idle)
	}
}

// idleTick runs on the idle timer. A deflater that compressed since the
// timer was set is active: it looks again a period later. One that did
// not drops its match index; the timer stays unset until the next message.
func (d *deflater) idleTick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.used {
		d.used = false
		d.timer.Reset(d.idle)
		return
	}
	d.armed = false
	d.head, d.prev = nil, nil
}

// close stops the idle timer and drops the match index, for a connection
// that will send no more.
func (d *deflater) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
	d.armed, d.used = false, false
	d.head, d.prev = nil, nil
}

// buildIndex allocates the match index the level needs and enters every
// position of the history in it (the last three only reach into the next
// message, and are left out).
func (d *deflater) buildIndex() {
	if d.head == nil {
		d.head = make([]uint16, 1<<d.hashBits)
	}
	chains := d.params.chain > 1
	if chains && d.prev == nil {
		d.prev = make([]uint16, 1<<d.prevBits)
	}
	two := !chains && d.params.ways == 2
	shift := 32 - d.hashBits
	if two {
		shift++
	}
	pmask := len(d.prev) - 1
	for k := d.histLen; k >= 4; k-- {
		r := d.ringIndex(-k)
		var x uint32
		if r+4 <= d.hsize {
			x = deflateLoad32(d.hist, r)
		} else {
			for j := 3; j >= 0; j-- {
				x = x<<8 | uint32(d.hist[(r+j)%d.hsize])
			}
		}
		p := d.pos - uint16(k)
		if !chains {
			deflateEnter(d.head, x, p, shift, two)
			continue
		}
		h := (x * deflateHashMul) >> shift
		d.prev[int(p)&pmask] = d.head[h]
		d.head[h] = p
	}
}

// ringIndex returns where in hist the byte p bytes after the start of the
// current message sits, for -histLen <= p < 0.
func (d *deflater) ringIndex(p int) int {
	r := d.rpos + p
	if r < 0 {
		r += d.hsize
	}
	return r
}

// remember moves msg's tail into the history ring.
func (d *deflater) remember(msg []byte) {
	if d.takeover {
		if d.hist == nil {
			d.hist = make([]byte, d.hsize)
		}
		tail := msg[max(0, len(msg)-d.hsize):]
		r := (d.rpos + len(msg) - len(tail)) % d.hsize
		k := copy(d.hist[r:], tail)
		copy(d.hist, tail[k:])
		d.rpos = (d.rpos + len(msg)) % d.hsize
		d.histLen = min(d.hsize, d.histLen+len(msg))
	}
	d.pos += uint16(len(msg))
}

// deflateWork is the working memory of one compress call, pooled.
type deflateWork struct {
	huffBlock
	bw  huffBitWriter
	msg []byte
	// tokens are the pending block's matches (huffMatchFlag set) and
	// runs of literals (a count); nsym counts the symbols they stand
	// for, each literal one, which bounds a block.
	tokens      []uint32
	nsym        int
	blockStart  int // first byte of msg covered by the pending tokens
	storedStart int // first byte of msg held back to be stored
	// prev is the chain table in use: the deflater's own with takeover,
	// else prevBuf.
	prev    []uint16
	prevBuf [1 << deflateMaxWindowBits]uint16
	// head is the hash-head table of a deflater without takeover.
	head [1 << deflateHashMaxBits]uint16
}

var deflateWorkPool sync.Pool

// literals adds msg[from:to] as literal tokens: runs, each a count of the
// bytes in it (the bytes themselves are read again from msg when the
// block is written).
func (w *deflateWork) literals(from, to int) {
	for from < to {
		k := min(to-from, deflateBlockTokens-w.nsym)
		for _, b := range w.msg[from : from+k] {
			w.litFreq[b]++
		}
		w.tokens = append(w.tokens, uint32(k))
		w.nsym += k
		from += k
		if w.nsym == deflateBlockTokens {
			w.flushBlock(from)
		}
	}
}

// match adds a back-reference; end is the first byte after it.
func (w *deflateWork) match(length, dist, end int) {
	w.tokens = append(w.tokens, huffMatchFlag|uint32(length-deflateMinMatch)<<huffLenShift|uint32(dist-1))
	w.litFreq[257+int(huffLenSym[length-deflateMinMatch])]++
	w.distFreq[huffDistSym(uint32(dist-1))]++
	w.nsym++
	if w.nsym == deflateBlockTokens {
		w.flushBlock(end)
	}
}

// flushBlock writes the pending tokens, which cover msg[blockStart:end].
// Blocks best stored are held back and merged with the following ones, so
// that incompressible data costs 5 bytes per 65535 and not per block.
func (w *deflateWork) flushBlock(end int) {
	pending := w.blockStart - w.storedStart
	stored := w.bw.storedBits(pending+end-w.blockStart) - w.bw.storedBits(pending)
	if pending == 0 {
		stored = w.bw.storedBits(end - w.blockStart)
	}
	if typ := w.planBlock(stored); typ == huffBlockStored {
		w.clearFreq()
	} else {
		w.flushStored()
		w.writeCoded(&w.bw, typ, w.tokens, w.msg[w.blockStart:end])
		w.storedStart = end
	}
	w.tokens = w.tokens[:0]
	w.nsym = 0
	w.blockStart = end
}

// flushStored writes the bytes held back as stored.
func (w *deflateWork) flushStored() {
	if w.storedStart < w.blockStart {
		w.bw.writeStored(w.msg[w.storedStart:w.blockStart])
		w.storedStart = w.blockStart
	}
}

func deflateLoad32(b []byte, i int) uint32 {
	return binary.LittleEndian.Uint32(b[i:])
}

// deflateMatchLen returns the length of the common prefix of a and b.
func deflateMatchLen(a, b []byte) int {
	n := 0
	for len(a)-n >= 8 && len(b)-n >= 8 {
		x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:])
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// histMatchLen is deflateMatchLen for msg[i:i+maxLen] against a candidate
// c < 0 in the history: bytes c..-1 are in the ring, from 0 on in msg.
func (d *deflater) histMatchLen(msg []byte, c, i, maxLen int) int {
	n := 0
	for n < maxLen {
		p := c + n
		if p >= 0 {
			return n + deflateMatchLen(msg[p:p+maxLen-n], msg[i+n:i+maxLen])
		}
		seg := d.hist[d.ringIndex(p):]
		seg = seg[:min(len(seg), -p, maxLen-n)]
		k := deflateMatchLen(seg, msg[i+n:i+n+len(seg)])
		n += k
		if k < len(seg) {
			break
		}
	}
	return n
}

// findMatch returns the longest match for msg[i:] that is longer than
// atLeast, or 0, 0. cur is i's position residue and cand the first
// candidate's. rep, the distance of the previous match, is tried too:
// where the data repeats in long runs the hash table may hold no position
// in the run (the greedy stride skips, buckets collide), but the run goes
// on at the same distance.
func (d *deflater) findMatch(w *deflateWork, i int, cur, cand uint16, rep, chain, nice, atLeast int) (bestLen, bestDist int) {
	msg := w.msg
	maxLen := min(deflateMaxMatch, len(msg)-i)
	if atLeast >= maxLen {
		return 0, 0
	}
	nice = min(nice, maxLen)
	maxDist := min(d.wsize, i+d.histLen)
	pmask := len(w.prev) - 1
	best := atLeast
	dist := int(cur - cand)
	if rep != dist && rep != 0 && rep <= maxDist {
		c := i - rep
		l := 0
		if c >= 0 {
			l = deflateMatchLen(msg[c:c+maxLen], msg[i:i+maxLen])
		} else {
			l = d.histMatchLen(msg, c, i, maxLen)
		}
		if l > best {
			best, bestDist = l, rep
			if l >= nice {
				dist = 0
			}
		}
	}
	for dist != 0 && dist <= maxDist {
		c := i - dist
		l := 0
		if c >= 0 {
			if msg[c+best] == msg[i+best] {
				l = deflateMatchLen(msg[c:c+maxLen], msg[i:i+maxLen])
			}
		} else {
			l = d.histMatchLen(msg, c, i, maxLen)
		}
		if l > best {
			best, bestDist = l, dist
			if l >= nice {
				break
			}
		}
		chain--
		if chain <= 0 || dist >= len(w.prev) {
			break
		}
		// A link that does not lead strictly farther back was never
		// written for this position (pooled memory, a level without
		// chains) or belongs to an older one: the chain ends.
		nd := int(cur - w.prev[int(cur-uint16(dist))&pmask])
		if nd <= dist {
			break
		}
		dist = nd
	}
	if bestDist == 0 || (best == deflateMinMatch && bestDist > deflateFarLen3) {
		return 0, 0
	}
	return best, bestDist
}

// matchFast tokenises w.msg without chains (level 2; level 1 has
// matchFast1): greedy, only matches of four bytes or more taken. Each
// bucket of the head table holds params.ways positions, and a match
// shorter than params.lazy is dropped for a longer one found at the next
// position. As at level 1, a match in the message is extended backwards
// over the literals before it, and the previous match's distance is
// retried only where a match of the longest length ended: retrying it at
// every position, as findMatch does for the higher levels, bought 0.04
// points of ratio (0.2430 -> 0.2426 on the benchmark's 4 KiB JSON with
// takeover) for a tenth of level 2's time.
func (d *deflater) matchFast(w *deflateWork, head []uint16) {
	msg := w.msg
	n := len(msg)
	limit := n - 4
	base := d.pos
	two := d.params.ways == 2
	shift := 32 - d.hashBits
	if two {
		shift++
	}
	lazy := d.params.lazy
	histLen, wsize := d.histLen, d.wsize
	lit := 0
	stride := 32
	for i := 0; i <= limit; {
		length, dist := d.probe(msg, head, i, base+uint16(i), shift, two, uint(min(wsize, i+histLen)))
		if length < 4 {
			i += stride >> 5
			stride++
			continue
		}
		next := i + 1 // first position not yet in the head table
		if length < lazy && i < limit {
			next++
			l, dd := d.probe(msg, head, i+1, base+uint16(i+1), shift, two, uint(min(wsize, i+1+histLen)))
			if l > length {
				i, length, dist = i+1, l, dd
			}
		}
		stride = 32
		i, length = deflateExtendBack(msg, i, dist, length, lit)
		if lit < i {
			w.literals(lit, i)
		}
		end := i + length
		w.match(length, dist, end)
		if length == deflateMaxMatch {
			if start, stop := d.continueLongest(w, end, dist); start >= 0 {
				i, end, next = start, stop, start+1
			}
		}
		// Enter the first positions the match covers, where a following
		// match most often starts over, and the last three, whose hashes
		// take in the bytes after it. Entering all of them would push the
		// older, more varied candidates out of the table: on the JSON of
		// the benchmarks that costs both time and ratio.
		mid := min(end-3, i+deflateIndexHead)
		for j := next; j < end && j <= limit; j++ {
			if j == mid && j < end-3 {
				j = end - 4
				continue
			}
			deflateEnter(head, deflateLoad32(msg, j), base+uint16(j), shift, two)
		}
		i, lit = end, end
	}
	w.literals(lit, n)
}

// matchFast1 is matchFast at level 1: one candidate per bucket, no lazy
// step, and the previous match's distance retried only after a match of
// the longest length, with the probe written out in the loop (a candidate
// in the message is checked and extended here, one in the history through
// fastMatchLen). A match found in the message is extended backwards over
// the literals before it, which makes up for the positions the stride
// skips and for buckets that lost the match's first position. Level 1 is
// the default without context takeover, where its speed is what counts:
// on the benchmark's JSON, retrying the distance at every position bought
// 1% of ratio for an eighth of the time, and a loop of its own saves
// another tenth (written out the same way, level 2 was no faster, its
// time going to loads from the history, so it keeps probe).
func (d *deflater) matchFast1(w *deflateWork, head []uint16) {
	msg := w.msg
	n := len(msg)
	limit := n - 4
	base := d.pos
	shift := 32 - d.hashBits
	histLen, wsize := d.histLen, d.wsize
	lit := 0
	stride := 32
	for i := 0; i <= limit; {
		x := binary.LittleEndian.Uint32(msg[i:])
		h := (x * deflateHashMul) >> (shift & 31)
		cur := base + uint16(i)
		dist := int(cur - head[h])
		head[h] = cur
		length := 0
		if uint(dist-1) < uint(min(wsize, i+histLen)) {
			if c := i - dist; c >= 0 {
				if binary.LittleEndian.Uint32(msg[c:]) == x {
					maxLen := min(deflateMaxMatch, n-i)
					length = 4 + deflateMatchLen(msg[c+4:c+maxLen], msg[i+4:i+maxLen])
					i, length = deflateExtendBack(msg, i, dist, length, lit)
				}
			} else {
				length = d.fastMatchLen(msg, i, dist, x)
			}
		}
		if length < 4 {
			i += stride >> 5
			stride++
			continue
		}
		stride = 32
		if lit < i {
			w.literals(lit, i)
		}
		end := i + length
		w.match(length, dist, end)
		if length == deflateMaxMatch {
			if start, stop := d.continueLongest(w, end, dist); start >= 0 {
				i, end = start, stop
			}
		}
		mid := min(end-3, i+deflateIndexHead1)
		for j := i + 1; j < end && j <= limit; j++ {
			if j == mid && j < end-3 {
				j = end - 4
				continue
			}
			x := binary.LittleEndian.Uint32(msg[j:])
			h := (x * deflateHashMul) >> (shift & 31)
			head[h] = base + uint16(j)
		}
		i, lit = end, end
	}
	w.literals(lit, n)
}

// deflateExtendBack extends the match of msg[i:] at distance dist, length
// long, backwards over the literals from lit on, while its source stays in
// msg: it makes up for positions the match finder skipped or whose bucket
// lost them. It returns the match's new start and length.
func deflateExtendBack(msg []byte, i, dist, length, lit int) (int, int) {
	for c := i - dist; c > 0 && i > lit && length < deflateMaxMatch && msg[c-1] == msg[i-1]; c-- {
		i--
		length++
	}
	return i, length
}

// continueLongest adds the matches at distance dist that continue one of
// the longest length DEFLATE codes, which ended at end: such a match was
// stopped only by that limit and likely goes on (a repeat of something
// long), where the head table may hold none of its positions. It returns
// the start and end of the last match it added, or -1 and end if none.
func (d *deflater) continueLongest(w *deflateWork, end, dist int) (start, stop int) {
	start, stop = -1, end
	for stop <= len(w.msg)-4 {
		l := d.fastMatchLen(w.msg, stop, dist, binary.LittleEndian.Uint32(w.msg[stop:]))
		if l < 4 {
			break
		}
		start, stop = stop, stop+l
		w.match(l, dist, stop)
		if l < deflateMaxMatch {
			break
		}
	}
	return start, stop
}

// deflateEnter enters position cur, whose first four bytes are x, in a
// head table without chains (levels 1 and 2).
func deflateEnter(head []uint16, x uint32, cur uint16, shift uint, two bool) {
	h := (x * deflateHashMul) >> shift
	if two {
		h <<= 1
		head[h+1] = head[h]
	}
	head[h] = cur
}

// probe enters position i (residue cur) in the head table and returns the
// longest match for msg[i:] among the bucket's candidates. A length below
// 4 means no match. reach bounds the distance.
func (d *deflater) probe(msg []byte, head []uint16, i int, cur uint16, shift uint, two bool, reach uint) (length, dist int) {
	x := deflateLoad32(msg, i)
	h := (x * deflateHashMul) >> shift
	var c1 uint16
	if two {
		h <<= 1
		c1 = head[h+1]
		head[h+1] = head[h]
	}
	c0 := head[h]
	head[h] = cur
	if d0 := int(cur - c0); uint(d0-1) < reach {
		length, dist = d.fastMatchLen(msg, i, d0, x), d0
	}
	if two {
		if d1 := int(cur - c1); d1 != dist && uint(d1-1) < reach {
			if l := d.fastMatchLen(msg, i, d1, x); l > length {
				length, dist = l, d1
			}
		}
	}
	return length, dist
}

// fastMatchLen returns the length of the match for msg[i:] at distance
// dist, whose first four bytes are x, or less than 4 when there is none.
func (d *deflater) fastMatchLen(msg []byte, i, dist int, x uint32) int {
	c := i - dist
	maxLen := min(deflateMaxMatch, len(msg)-i)
	if c >= 0 {
		if deflateLoad32(msg, c) != x {
			return 0
		}
		return 4 + deflateMatchLen(msg[c+4:c+maxLen], msg[i+4:i+maxLen])
	}
	r := d.ringIndex(c)
	if r+4 <= len(d.hist) && c <= -4 {
		// The common case, all four bytes in the ring without a wrap:
		// reject a false candidate with one load.
		if deflateLoad32(d.hist, r) != x {
			return 0
		}
	} else if d.hist[r] != byte(x) {
		return 0
	}
	return d.histMatchLen(msg, c, i, maxLen)
}

// matchGreedy tokenises w.msg taking the longest match at each position
// (level 3).
func (d *deflater) matchGreedy(w *deflateWork, head []uint16) {
	msg := w.msg
	p := d.params
	n := len(msg)
	limit := n - 4 // last position with four bytes to hash
	base := d.pos
	shift := 32 - d.hashBits
	prev := w.prev
	pmask := len(prev) - 1
	lit := 0
	stride := 32 // stride>>5 is the step after a miss; grows with misses
	rep := 0     // distance of the last match
	for i := 0; i <= limit; {
		cur := base + uint16(i)
		h := (deflateLoad32(msg, i) * deflateHashMul) >> shift
		cand := head[h]
		head[h] = cur
		prev[int(cur)&pmask] = cand
		length, dist := d.findMatch(w, i, cur, cand, rep, p.chain, p.nice, deflateMinMatch-1)
		if length == 0 {
			if p.skip {
				i += stride >> 5
				stride++
			} else {
				i++
			}
			continue
		}
		stride, rep = 32, dist
		w.literals(lit, i)
		end := i + length
		w.match(length, dist, end)
		for j := i + 1; j < end && j <= limit; j++ {
			c := base + uint16(j)
			h := (deflateLoad32(msg, j) * deflateHashMul) >> shift
			prev[int(c)&pmask] = head[h]
			head[h] = c
		}
		i, lit = end, end
	}
	w.literals(lit, n)
}

// matchLazy tokenises w.msg, deferring each match by one position to see
// whether the next position starts a longer one (zlib's lazy evaluation).
func (d *deflater) matchLazy(w *deflateWork, head []uint16) {
	msg := w.msg
	p := d.params
	n := len(msg)
	limit := n - 4
	base := d.pos
	shift := 32 - d.hashBits
	prev := w.prev
	pmask := len(prev) - 1
	lit := 0
	prevLen, prevDist := 0, 0 // match starting at i-1, if prevLen > 0
	rep := 0                  // distance of the last match emitted
	for i := 0; i < n; {
		curLen, curDist := 0, 0
		if i <= limit {
			cur := base + uint16(i)
			h := (deflateLoad32(msg, i) * deflateHashMul) >> shift
			cand := head[h]
			head[h] = cur
			prev[int(cur)&pmask] = cand
			if prevLen < p.lazy {
				chain := p.chain
				if prevLen >= p.good {
					chain >>= 2
				}
				curLen, curDist = d.findMatch(w, i, cur, cand, rep, chain, p.nice, max(prevLen, deflateMinMatch-1))
			}
		}
		if prevLen > 0 && curLen == 0 {
			start := i - 1
			end := start + prevLen
			w.literals(lit, start)
			w.match(prevLen, prevDist, end)
			rep = prevDist
			for j := i + 1; j < end && j <= limit; j++ {
				c := base + uint16(j)
				h := (deflateLoad32(msg, j) * deflateHashMul) >> shift
				prev[int(c)&pmask] = head[h]
				head[h] = c
			}
			i, lit = end, end
			prevLen = 0
			continue
		}
		prevLen, prevDist = curLen, curDist
		i++
	}
	w.literals(lit, n)
}
