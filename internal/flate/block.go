package flate

import (
	"math"
	"math/bits"
	"sync"
)

// Gathering a message's tokens into blocks, and choosing how each block
// is coded (RFC 1951 sections 3.2.3 to 3.2.7).

// A token is a match or a run of literals.
const (
	matchFlag = 1 << 31 // set in a token that is a (length, distance) pair
	lenShift  = 15      // a match token holds length-3 above this shift, distance-1 below
	distMask  = 1<<lenShift - 1
)

// encodeWork is the working memory of one Compress call, pooled.
type encodeWork struct {
	blockCoder
	bw  bitWriter
	msg []byte
	// tokens are the pending block's matches (matchFlag set) and
	// runs of literals (a count); nsym counts the symbols they stand
	// for, each literal one, which bounds a block.
	tokens      []uint32
	nsym        int
	blockStart  int // first byte of msg covered by the pending tokens
	storedStart int // first byte of msg held back to be stored
	// prev is the chain table in use: the Encoder's own with takeover,
	// else prevBuf.
	prev    []uint16
	prevBuf [1 << maxWindowBits]uint16
	// head is the hash-head table of an Encoder without takeover.
	head [1 << hashMaxBits]uint16
}

var workPool sync.Pool

// literals adds msg[from:to] as literal tokens: runs, each a count of the
// bytes in it (the bytes themselves are read again from msg when the
// block is written).
func (w *encodeWork) literals(from, to int) {
	for from < to {
		k := min(to-from, blockTokens-w.nsym)
		for _, b := range w.msg[from : from+k] {
			w.litFreq[b]++
		}
		w.tokens = append(w.tokens, uint32(k))
		w.nsym += k
		from += k
		if w.nsym == blockTokens {
			w.flushBlock(from)
		}
	}
}

// emit adds the literals msg[lit:i] and then a match of length bytes at
// distance dist, and returns where the match ends.
func (w *encodeWork) emit(lit, i, length, dist int) (end int) {
	w.literals(lit, i)
	end = i + length
	w.match(length, dist, end)
	return end
}

// match adds a back-reference; end is the first byte after it.
func (w *encodeWork) match(length, dist, end int) {
	w.tokens = append(w.tokens, matchFlag|uint32(length-minMatch)<<lenShift|uint32(dist-1))
	w.litFreq[257+int(lenSym[length-minMatch])]++
	w.distFreq[distSym(uint32(dist-1))]++
	w.nsym++
	if w.nsym == blockTokens {
		w.flushBlock(end)
	}
}

// flushBlock writes the pending tokens, which cover msg[blockStart:end].
// Blocks best stored are held back and merged with the following ones, so
// that incompressible data costs 5 bytes per 65535 and not per block.
func (w *encodeWork) flushBlock(end int) {
	pending := w.blockStart - w.storedStart
	stored := w.bw.storedBits(pending+end-w.blockStart) - w.bw.storedBits(pending)
	if pending == 0 {
		stored = w.bw.storedBits(end - w.blockStart)
	}
	if typ := w.planBlock(stored); typ == blockStored {
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
func (w *encodeWork) flushStored() {
	if w.storedStart < w.blockStart {
		w.bw.writeStored(w.msg[w.storedStart:w.blockStart])
		w.storedStart = w.blockStart
	}
}

// blockCoder holds the statistics of the block being gathered and the codes
// chosen for it.
type blockCoder struct {
	litFreq  [numLit]uint32
	distFreq [numDist]uint32

	litLen   [numLit]uint8
	litCode  [numLit]uint16
	distLen  [numDist]uint8
	distCode [numDist]uint16
	clFreq   [numCL]uint32
	clLen    [numCL]uint8
	clCode   [numCL]uint16
	sorted   [2 * numLit]uint64 // codeLengths' scratch
	weights  [numLit]uint32     // codeLengths' scratch
	seq      [numLit + numDist]uint8
	// rle is the code-length sequence as code-length symbols, each with
	// its repeat count's extra bits above bit 5.
	rle         [numLit + numDist]uint16
	nrle        int
	nlit, ndist int
	nclen       int
	codedBits   int // size of the block planBlock chose, if not stored
}

// planBlock returns the type of block (blockStored, blockFixed or
// blockDynamic) that codes the gathered tokens in the fewest bits, given
// that storing their bytes instead costs storedBits. It counts the
// end-of-block symbol in, and builds the dynamic codes when they are
// chosen.
func (h *blockCoder) planBlock(storedBits int) int {
	h.litFreq[eob]++
	extra := 0
	for code, f := range h.litFreq[257:] {
		extra += int(f) * int(lenExtra[code])
	}
	for code, f := range h.distFreq[:] {
		extra += int(f) * int(distExtra[code])
	}
	fixed := 3 + extra
	for sym, f := range h.litFreq[:] {
		fixed += int(f) * int(fixedLitLen[sym])
	}
	for _, f := range h.distFreq[:] {
		fixed += int(f) * 5
	}
	// Building the dynamic codes costs more than coding a small block;
	// skip it when even an estimate from below of their size loses to the
	// fixed codes, the rule for the few tokens of a message that mostly
	// refers to the previous ones.
	dynamic := fixed
	if 3+extra+h.dynamicLowerBound() < fixed {
		dynamic = 3 + extra + h.buildDynamic()
	}
	switch {
	case storedBits <= fixed && storedBits <= dynamic:
		return blockStored
	case dynamic < fixed:
		h.codedBits = dynamic
		return blockDynamic
	}
	h.codedBits = fixed
	return blockFixed
}

func (h *blockCoder) clearFreq() {
	h.litFreq = [numLit]uint32{}
	h.distFreq = [numDist]uint32{}
}

// dynamicLowerBound estimates from below the bits of a dynamic block for
// the gathered frequencies, block header and extra bits aside: the
// entropy of the symbols (no prefix code does better), the fixed fields of
// the table header, and for the code-length sequence two bits per used
// symbol and min(2*run, 5) per run of unused symbols between used ones (a
// code-length code rarely averages under two bits; a repeat code has
// at least 3 extra bits). Only the code-length part is not a strict bound,
// so a block may get the fixed codes when a dynamic table would have saved
// a few bits.
func (h *blockCoder) dynamicLowerBound() int {
	bound := 5 + 5 + 4 + 3*4
	for _, freq := range [2][]uint32{h.litFreq[:], h.distFreq[:]} {
		total, ent, gap := uint32(0), 0, 0
		for _, f := range freq {
			if f == 0 {
				gap++
				continue
			}
			bound += 2 + min(2*gap, 5)
			gap = 0
			total += f
			ent -= int(f) * log2Fixed(f)
		}
		if total != 0 {
			ent += int(total) * log2Fixed(total)
			// Each log2Fixed may fall short by log2(1+1/256) (1.5 units);
			// the entropy is taken as at most that much lower per symbol.
			bound += max(0, ent-2*int(total)) >> 8
		}
	}
	return bound
}

// log2Fixed returns log2(x) in 1/256 units for x >= 1, rounded down to
// within log2(1+1/256).
func log2Fixed(x uint32) int {
	l := bits.Len32(x) - 1
	var m uint32
	if l >= 8 {
		m = x >> (l - 8)
	} else {
		m = x << (8 - l)
	}
	return l<<8 + int(log2Frac[m-256])
}

// log2Frac[i] is log2(1+i/256) in 1/256 units, rounded down.
var log2Frac = func() (t [256]uint8) {
	for i := range t {
		t[i] = uint8(math.Log2(1+float64(i)/256) * 256)
	}
	return t
}()

// buildDynamic computes the dynamic codes for the gathered frequencies and
// returns the bits a dynamic block would take, block header aside.
func (h *blockCoder) buildDynamic() int {
	codeLengths(h.litFreq[:], h.litLen[:], maxCodeLen, h.sorted[:], h.weights[:])
	codeLengths(h.distFreq[:], h.distLen[:], maxCodeLen, h.sorted[:], h.weights[:])
	h.nlit = numLit
	for h.nlit > 257 && h.litLen[h.nlit-1] == 0 {
		h.nlit--
	}
	h.ndist = numDist
	for h.ndist > 1 && h.distLen[h.ndist-1] == 0 {
		h.ndist--
	}
	n := copy(h.seq[:], h.litLen[:h.nlit])
	n += copy(h.seq[n:], h.distLen[:h.ndist])
	h.runLengths(h.seq[:n])
	codeLengths(h.clFreq[:], h.clLen[:], maxCLBits, h.sorted[:], h.weights[:])
	h.nclen = numCL
	for h.nclen > 4 && h.clLen[codeLenOrder[h.nclen-1]] == 0 {
		h.nclen--
	}

	size := 5 + 5 + 4 + 3*h.nclen
	size += 2*int(h.clFreq[16]) + 3*int(h.clFreq[17]) + 7*int(h.clFreq[18])
	for sym, f := range h.clFreq[:] {
		size += int(f) * int(h.clLen[sym])
	}
	for sym, f := range h.litFreq[:] {
		size += int(f) * int(h.litLen[sym])
	}
	for sym, f := range h.distFreq[:] {
		size += int(f) * int(h.distLen[sym])
	}
	return size
}

// runLengths encodes the code-length sequence seq with the repeat symbols
// 16 (previous length 3-6 times), 17 (zero 3-10 times) and 18 (zero
// 11-138 times) into h.rle, counting the symbols in h.clFreq.
func (h *blockCoder) runLengths(seq []uint8) {
	h.clFreq = [numCL]uint32{}
	h.nrle = 0
	put := func(sym, extra int) {
		h.rle[h.nrle] = uint16(sym | extra<<5)
		h.nrle++
		h.clFreq[sym]++
	}
	for i := 0; i < len(seq); {
		l := seq[i]
		run := 1
		for i+run < len(seq) && seq[i+run] == l {
			run++
		}
		i += run
		if l == 0 {
			for run >= 11 {
				r := min(run, 138)
				put(18, r-11)
				run -= r
			}
			if run >= 3 {
				put(17, run-3)
				run = 0
			}
		} else {
			put(int(l), 0)
			run--
			for run >= 3 {
				r := min(run, 6)
				put(16, r-3)
				run -= r
			}
		}
		for ; run > 0; run-- {
			put(int(l), 0)
		}
	}
}
