package flate

import (
	"encoding/binary"
	"math/bits"
)

// The match finders: LZ77 over a 4-byte hash, one loop per kind of level.
//
// Positions are kept as uint16 residues of the stream offset, so the
// persistent tables need no rebasing; a position is only a hint, and every
// candidate is checked for a distance of 1..min(2^windowBits, history
// available) and then compared byte by byte, so a stale, aliased or (in
// pooled memory) foreign entry can cost time but never produce a wrong
// back-reference. Levels 1 and 2 keep no chains: level 1 probes one head
// per position, level 2 a bucket of the two most recent positions with the
// hash and, while its match is shorter than 8, the next position too (a
// one-step lazy evaluation), which on the 4 KiB JSON of the benchmarks
// takes the ratio from 0.264 to 0.243 for about 50% more time. At levels 3
// and up a chain is followed only while its link slot cannot have been
// reused (distance below the chain table's size), so with takeover the
// chains reach the last W/4 bytes and the heads the whole history.

func load32(b []byte, i int) uint32 {
	return binary.LittleEndian.Uint32(b[i:])
}

// matchLen returns the length of the common prefix of a and b.
func matchLen(a, b []byte) int {
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

// histMatchLen is matchLen for msg[i:i+maxLen] against a candidate
// c < 0 in the history: bytes c..-1 are in the ring, from 0 on in msg.
func (e *Encoder) histMatchLen(msg []byte, c, i, maxLen int) int {
	n := 0
	for n < maxLen {
		p := c + n
		if p >= 0 {
			return n + matchLen(msg[p:p+maxLen-n], msg[i+n:i+maxLen])
		}
		seg := e.hist[e.ringIndex(p):]
		seg = seg[:min(len(seg), -p, maxLen-n)]
		k := matchLen(seg, msg[i+n:i+n+len(seg)])
		n += k
		if k < len(seg) {
			break
		}
	}
	return n
}

// lengthAt returns the length, up to maxLen, of the match for msg[i:] at
// c, an index into msg or, when negative, into the history before it.
func (e *Encoder) lengthAt(msg []byte, c, i, maxLen int) int {
	if c >= 0 {
		return matchLen(msg[c:c+maxLen], msg[i:i+maxLen])
	}
	return e.histMatchLen(msg, c, i, maxLen)
}

// findMatch returns the longest match for msg[i:] that is longer than
// atLeast, or 0, 0. cur is i's position residue and cand the first
// candidate's. rep, the distance of the previous match, is tried too:
// where the data repeats in long runs the hash table may hold no position
// in the run (the greedy stride skips, buckets collide), but the run goes
// on at the same distance.
func (e *Encoder) findMatch(w *encodeWork, i int, cur, cand uint16, rep, chain, nice, atLeast int) (bestLen, bestDist int) {
	msg := w.msg
	maxLen := min(maxMatch, len(msg)-i)
	if atLeast >= maxLen {
		return 0, 0
	}
	nice = min(nice, maxLen)
	maxDist := min(e.wsize, i+e.histLen)
	pmask := len(w.prev) - 1
	best := atLeast
	dist := int(cur - cand)
	if rep != dist && rep != 0 && rep <= maxDist {
		if l := e.lengthAt(msg, i-rep, i, maxLen); l > best {
			best, bestDist = l, rep
			if l >= nice {
				dist = 0
			}
		}
	}
	for dist != 0 && dist <= maxDist {
		// A candidate in the message that differs at msg[i+best] cannot
		// beat best: one byte read spares the whole comparison.
		c := i - dist
		l := 0
		if c < 0 || msg[c+best] == msg[i+best] {
			l = e.lengthAt(msg, c, i, maxLen)
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
	if bestDist == 0 || (best == minMatch && bestDist > farLen3) {
		return 0, 0
	}
	return best, bestDist
}

// matchLevel2 tokenises w.msg without chains (level 2; level 1 has
// matchLevel1): greedy, only matches of four bytes or more taken. Each
// bucket of the head table holds params.ways positions, and a match
// shorter than params.lazy is dropped for a longer one found at the next
// position. As at level 1, a match in the message is extended backwards
// over the literals before it, and the previous match's distance is
// retried only where a match of the longest length ended: retrying it at
// every position, as findMatch does for the higher levels, bought 0.04
// points of ratio (0.2430 -> 0.2426 on the benchmark's 4 KiB JSON with
// takeover) for a tenth of level 2's time.
func (e *Encoder) matchLevel2(w *encodeWork, head []uint16) {
	msg := w.msg
	n := len(msg)
	limit := n - 4
	base := e.pos
	two := e.params.ways == 2
	shift := 32 - e.hashBits
	if two {
		shift++
	}
	lazy := e.params.lazy
	histLen, wsize := e.histLen, e.wsize
	lit := 0
	stride := 32
	for i := 0; i <= limit; {
		length, dist := e.probe(msg, head, i, base+uint16(i), shift, two, uint(min(wsize, i+histLen)))
		if length < 4 {
			i += stride >> 5
			stride++
			continue
		}
		next := i + 1 // first position not yet in the head table
		if length < lazy && i < limit {
			next++
			l, dd := e.probe(msg, head, i+1, base+uint16(i+1), shift, two, uint(min(wsize, i+1+histLen)))
			if l > length {
				i, length, dist = i+1, l, dd
			}
		}
		stride = 32
		i, length = extendBack(msg, i, dist, length, lit)
		end := w.emit(lit, i, length, dist)
		if length == maxMatch {
			if start, stop := e.continueLongest(w, end, dist); start >= 0 {
				i, end, next = start, stop, start+1
			}
		}
		// Enter the first positions the match covers, where a following
		// match most often starts over, and the last three, whose hashes
		// take in the bytes after it. Entering all of them would push the
		// older, more varied candidates out of the table: on the JSON of
		// the benchmarks that costs both time and ratio.
		mid := min(end-3, i+indexHeadLevel2)
		for j := next; j < end && j <= limit; j++ {
			if j == mid && j < end-3 {
				j = end - 4
				continue
			}
			enter(head, load32(msg, j), base+uint16(j), shift, two)
		}
		i, lit = end, end
	}
	w.literals(lit, n)
}

// matchLevel1 is matchLevel2 at level 1: one candidate per bucket, no lazy
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
func (e *Encoder) matchLevel1(w *encodeWork, head []uint16) {
	msg := w.msg
	n := len(msg)
	limit := n - 4
	base := e.pos
	shift := 32 - e.hashBits
	histLen, wsize := e.histLen, e.wsize
	lit := 0
	stride := 32
	for i := 0; i <= limit; {
		x := binary.LittleEndian.Uint32(msg[i:])
		h := (x * hashMul) >> (shift & 31)
		cur := base + uint16(i)
		dist := int(cur - head[h])
		head[h] = cur
		length := 0
		if uint(dist-1) < uint(min(wsize, i+histLen)) {
			if c := i - dist; c >= 0 {
				if binary.LittleEndian.Uint32(msg[c:]) == x {
					maxLen := min(maxMatch, n-i)
					length = 4 + matchLen(msg[c+4:c+maxLen], msg[i+4:i+maxLen])
					i, length = extendBack(msg, i, dist, length, lit)
				}
			} else {
				length = e.fastMatchLen(msg, i, dist, x)
			}
		}
		if length < 4 {
			i += stride >> 5
			stride++
			continue
		}
		stride = 32
		end := w.emit(lit, i, length, dist)
		if length == maxMatch {
			if start, stop := e.continueLongest(w, end, dist); start >= 0 {
				i, end = start, stop
			}
		}
		mid := min(end-3, i+indexHeadLevel1)
		for j := i + 1; j < end && j <= limit; j++ {
			if j == mid && j < end-3 {
				j = end - 4
				continue
			}
			x := binary.LittleEndian.Uint32(msg[j:])
			h := (x * hashMul) >> (shift & 31)
			head[h] = base + uint16(j)
		}
		i, lit = end, end
	}
	w.literals(lit, n)
}

// extendBack extends the match of msg[i:] at distance dist, length
// long, backwards over the literals from lit on, while its source stays in
// msg: it makes up for positions the match finder skipped or whose bucket
// lost them. It returns the match's new start and length.
func extendBack(msg []byte, i, dist, length, lit int) (int, int) {
	for c := i - dist; c > 0 && i > lit && length < maxMatch && msg[c-1] == msg[i-1]; c-- {
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
func (e *Encoder) continueLongest(w *encodeWork, end, dist int) (start, stop int) {
	start, stop = -1, end
	for stop <= len(w.msg)-4 {
		l := e.fastMatchLen(w.msg, stop, dist, binary.LittleEndian.Uint32(w.msg[stop:]))
		if l < 4 {
			break
		}
		start, stop = stop, stop+l
		w.match(l, dist, stop)
		if l < maxMatch {
			break
		}
	}
	return start, stop
}

// enter enters position cur, whose first four bytes are x, in a
// head table without chains (levels 1 and 2).
func enter(head []uint16, x uint32, cur uint16, shift uint, two bool) {
	h := (x * hashMul) >> shift
	if two {
		h <<= 1
		head[h+1] = head[h]
	}
	head[h] = cur
}

// probe enters position i (residue cur) in the head table and returns the
// longest match for msg[i:] among the bucket's candidates. A length below
// 4 means no match. reach bounds the distance.
func (e *Encoder) probe(msg []byte, head []uint16, i int, cur uint16, shift uint, two bool, reach uint) (length, dist int) {
	x := load32(msg, i)
	h := (x * hashMul) >> shift
	var c1 uint16
	if two {
		h <<= 1
		c1 = head[h+1]
		head[h+1] = head[h]
	}
	c0 := head[h]
	head[h] = cur
	if d0 := int(cur - c0); uint(d0-1) < reach {
		length, dist = e.fastMatchLen(msg, i, d0, x), d0
	}
	if two {
		if d1 := int(cur - c1); d1 != dist && uint(d1-1) < reach {
			if l := e.fastMatchLen(msg, i, d1, x); l > length {
				length, dist = l, d1
			}
		}
	}
	return length, dist
}

// fastMatchLen returns the length of the match for msg[i:] at distance
// dist, whose first four bytes are x, or less than 4 when there is none.
func (e *Encoder) fastMatchLen(msg []byte, i, dist int, x uint32) int {
	c := i - dist
	maxLen := min(maxMatch, len(msg)-i)
	if c >= 0 {
		if load32(msg, c) != x {
			return 0
		}
		return 4 + matchLen(msg[c+4:c+maxLen], msg[i+4:i+maxLen])
	}
	r := e.ringIndex(c)
	if r+4 <= len(e.hist) && c <= -4 {
		// The common case, all four bytes in the ring without a wrap:
		// reject a false candidate with one load.
		if load32(e.hist, r) != x {
			return 0
		}
	} else if e.hist[r] != byte(x) {
		return 0
	}
	return e.histMatchLen(msg, c, i, maxLen)
}

// matchGreedy tokenises w.msg taking the longest match at each position
// (level 3).
func (e *Encoder) matchGreedy(w *encodeWork, head []uint16) {
	msg := w.msg
	p := e.params
	n := len(msg)
	limit := n - 4 // last position with four bytes to hash
	base := e.pos
	shift := 32 - e.hashBits
	prev := w.prev
	pmask := len(prev) - 1
	lit := 0
	stride := 32 // stride>>5 is the step after a miss; grows with misses
	rep := 0     // distance of the last match
	for i := 0; i <= limit; {
		cur := base + uint16(i)
		h := (load32(msg, i) * hashMul) >> shift
		cand := head[h]
		head[h] = cur
		prev[int(cur)&pmask] = cand
		length, dist := e.findMatch(w, i, cur, cand, rep, p.chain, p.nice, minMatch-1)
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
		end := w.emit(lit, i, length, dist)
		chainRange(msg, head, prev, base, i+1, min(end, limit+1), shift)
		i, lit = end, end
	}
	w.literals(lit, n)
}

// chainRange enters the positions from..to-1 of msg, which a match
// covers, in the hash heads and chains, so later matches can refer to
// them.
func chainRange(msg []byte, head, prev []uint16, base uint16, from, to int, shift uint) {
	pmask := len(prev) - 1
	for j := from; j < to; j++ {
		c := base + uint16(j)
		h := (load32(msg, j) * hashMul) >> shift
		prev[int(c)&pmask] = head[h]
		head[h] = c
	}
}

// matchLazy tokenises w.msg, deferring each match by one position to see
// whether the next position starts a longer one (zlib's lazy evaluation).
func (e *Encoder) matchLazy(w *encodeWork, head []uint16) {
	msg := w.msg
	p := e.params
	n := len(msg)
	limit := n - 4
	base := e.pos
	shift := 32 - e.hashBits
	prev := w.prev
	pmask := len(prev) - 1
	lit := 0
	prevLen, prevDist := 0, 0 // match starting at i-1, if prevLen > 0
	rep := 0                  // distance of the last match emitted
	for i := 0; i < n; {
		curLen, curDist := 0, 0
		if i <= limit {
			cur := base + uint16(i)
			h := (load32(msg, i) * hashMul) >> shift
			cand := head[h]
			head[h] = cur
			prev[int(cur)&pmask] = cand
			if prevLen < p.lazy {
				chain := p.chain
				if prevLen >= p.good {
					chain >>= 2
				}
				curLen, curDist = e.findMatch(w, i, cur, cand, rep, chain, p.nice, max(prevLen, minMatch-1))
			}
		}
		if prevLen > 0 && curLen == 0 {
			end := w.emit(lit, i-1, prevLen, prevDist)
			rep = prevDist
			chainRange(msg, head, prev, base, i+1, min(end, limit+1), shift)
			i, lit = end, end
			prevLen = 0
			continue
		}
		prevLen, prevDist = curLen, curDist
		i++
	}
	w.literals(lit, n)
}
