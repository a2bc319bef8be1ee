package websocket

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
)

// Huffman coding and block output for the DEFLATE encoder in deflate.go
// (RFC 1951 sections 3.2.5 to 3.2.7).

const (
	huffNumLit       = 286 // literal/length symbols that may appear in a block
	huffNumDist      = 30  // distance symbols that may appear in a block
	huffNumCL        = 19  // code-length code symbols
	huffMaxBits      = 15  // longest literal/length or distance code
	huffMaxCLBits    = 7   // longest code-length code
	huffEOB          = 256 // end-of-block symbol
	huffStoredMax    = 65535
	huffMatchFlag    = 1 << 31 // set in a token that is a (length, distance) pair
	huffLenShift     = 15      // a match token holds length-3 above this shift, distance-1 below
	huffDistMask     = 1<<huffLenShift - 1
	huffBlockStored  = 0 // BTYPE of a stored block
	huffBlockFixed   = 1 // BTYPE of a block with fixed codes
	huffBlockDynamic = 2 // BTYPE of a block with dynamic codes
)

// huffCLOrder is the order in which code-length code lengths are sent.
var huffCLOrder = [huffNumCL]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// Length symbols 257..285: the shortest length each codes and its number of
// extra bits.
var (
	huffLenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	huffLenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

// Distance symbols 0..29: the shortest distance each codes and its number
// of extra bits.
var (
	huffDistBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	huffDistExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// huffLenSym maps length-3 (0..255) to its length symbol minus 257.
var huffLenSym = func() (t [256]uint8) {
	for code := 0; code < 28; code++ {
		lo := int(huffLenBase[code]) - 3
		for k := lo; k < lo+1<<huffLenExtra[code] && k < 256; k++ {
			t[k] = uint8(code)
		}
	}
	// 258 has a symbol of its own (285) though 284 with 31 in its extra
	// bits would describe it too; RFC 1951 reserves that combination.
	t[255] = 28
	return t
}()

// huffDistSymTab maps distance-1 to its distance symbol: entries below 256
// directly, the rest by (distance-1)>>7 from entry 256 on (the distance
// ranges above 256 are all multiples of 128 wide).
var huffDistSymTab = func() (t [512]uint8) {
	for code := 0; code < 30; code++ {
		lo := int(huffDistBase[code]) - 1
		hi := lo + 1<<huffDistExtra[code]
		for d := lo; d < hi; d++ {
			if d < 256 {
				t[d] = uint8(code)
			} else {
				t[256+d>>7] = uint8(code)
			}
		}
	}
	return t
}()

func huffDistSym(d uint32) uint32 {
	if d < 256 {
		return uint32(huffDistSymTab[d])
	}
	return uint32(huffDistSymTab[256+d>>7])
}

// The fixed codes of RFC 1951 section 3.2.6, bit-reversed for output.
var (
	huffFixedLitLen, huffFixedLitCode = func() (l [288]uint8, c [288]uint16) {
		for i := range l {
			switch {
			case i < 144:
				l[i] = 8
			case i < 256:
				l[i] = 9
			case i < 280:
				l[i] = 7
			default:
				l[i] = 8
			}
		}
		huffCanonical(l[:], c[:])
		return l, c
	}()
	huffFixedDistLen, huffFixedDistCode = func() (l [30]uint8, c [30]uint16) {
		for i := range l {
			l[i] = 5
		}
		huffCanonical(l[:], c[:])
		return l, c
	}()
)

// huffCanonical assigns the canonical codes of RFC 1951 section 3.2.2 to
// code lengths lens, bit-reversed because DEFLATE sends codes from their
// most significant bit while the bit writer fills bytes from the least.
func huffCanonical(lens []uint8, codes []uint16) {
	var count [16]uint16
	for _, l := range lens {
		count[l&15]++
	}
	count[0] = 0
	var next [16]uint16
	code := uint16(0)
	for l := 1; l <= huffMaxBits; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	// Unused symbols keep whatever code they had: it is never sent.
	for sym, l := range lens {
		if l != 0 {
			codes[sym] = bits.Reverse16(next[l&15]) >> (16 - l)
			next[l&15]++
		}
	}
}

// huffLengths sets lens[sym] to the length of sym's code in a prefix code
// for the frequencies freq in which no code is longer than maxBits.
// Symbols of frequency 0 get length 0. The code is always complete and
// has at least two codes, as zlib and compress/flate require of every
// table but an empty distance table: when fewer than two symbols occur,
// symbols 0 and 1 stand in. sorted and weights are scratch of at least
// 2*len(freq) and max(len(freq), 256) entries.
//
// The lengths are those of a Huffman code (computed in place by the
// Moffat–Katajainen method) when that code fits in maxBits; otherwise the
// overlong codes are cut to maxBits and the Kraft sum is brought back to
// exactly one by lengthening the deepest codes shorter than maxBits (and,
// if that overshoots, shortening the deepest codes again), the
// "limit and rebalance" heuristic. Lengths are then handed out in
// frequency order, so a rarer symbol never gets a shorter code.
func huffLengths(freq []uint32, lens []uint8, maxBits int, sorted []uint64, weights []uint32) {
	n := 0
	maxFreq := uint32(0)
	for sym, f := range freq {
		lens[sym] = 0
		if f != 0 {
			sorted[n] = uint64(f)<<16 | uint64(sym)
			n++
			maxFreq = max(maxFreq, f)
		}
	}
	switch n {
	case 0:
		lens[0], lens[1] = 1, 1
		return
	case 1:
		sym := int(sorted[0] & 0xffff)
		lens[sym] = 1
		if sym == 0 {
			lens[1] = 1
		} else {
			lens[0] = 1
		}
		return
	}
	s := huffSortByFreq(sorted[:n], sorted[len(freq):len(freq)+n], maxFreq, weights[:256])

	// Moffat–Katajainen: three passes over the sorted weights, reusing
	// their array for parent pointers and then depths. The weights are
	// copied out so that s keeps the symbols; weights is caller-provided
	// scratch rather than a local array, which would add over a kilobyte
	// to the stack of every goroutine that compresses, and a stack once
	// grown stays grown while its connection idles.
	a := weights[:n]
	for i, v := range s {
		a[i] = uint32(v >> 16)
	}
	a[0] += a[1]
	root, leaf := 0, 2
	for next := 1; next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = uint32(next)
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = uint32(next)
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	avail, used, depth := 1, 0, uint32(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail, used = 2*used, 0
		depth++
	}
	// a[i] is now the code length of s[i]; lengths fall as i grows.

	var count [huffMaxBits + 2]int
	for _, l := range a {
		if int(l) > maxBits {
			l = uint32(maxBits)
		}
		count[l]++
	}
	if int(a[0]) > maxBits {
		huffRebalance(count[:maxBits+1], maxBits)
	}
	i := 0
	for l := maxBits; l >= 1; l-- {
		for c := count[l]; c > 0; c-- {
			lens[s[i]&0xffff] = uint8(l)
			i++
		}
	}
}

// huffSortByFreq sorts the entries freq<<16|sym of s by frequency, and
// equal frequencies by symbol, as they come (s is in symbol order): a
// radix sort on the frequency's bytes, least significant first, one pass
// per byte maxFreq has (usually one or two), which on the few hundred
// symbols of a block is several times faster than a comparison sort and
// has no data-dependent branches. tmp is scratch as long as s, count of
// 256. It returns s or tmp, whichever holds the result.
func huffSortByFreq(s, tmp []uint64, maxFreq uint32, count []uint32) []uint64 {
	count = count[:256]
	for shift := uint(16); maxFreq != 0; shift += 8 {
		clear(count)
		for _, v := range s {
			count[byte(v>>shift)]++
		}
		sum := uint32(0)
		for b, c := range count {
			count[b] = sum
			sum += c
		}
		for _, v := range s {
			b := byte(v >> shift)
			tmp[count[b]] = v
			count[b]++
		}
		s, tmp = tmp, s
		maxFreq >>= 8
	}
	return s
}

// huffRebalance adjusts count (count[l] codes of length l, 1 <= l <=
// maxBits) until the Kraft sum is exactly one, keeping the number of codes.
func huffRebalance(count []int, maxBits int) {
	full := 1 << maxBits
	k := 0
	for l := 1; l <= maxBits; l++ {
		k += count[l] << (maxBits - l)
	}
	for k > full {
		l := maxBits - 1
		for count[l] == 0 {
			l--
		}
		count[l]--
		count[l+1]++
		k -= 1 << (maxBits - l - 1)
	}
	for k < full {
		gap := full - k
		l := maxBits
		for count[l] == 0 || 1<<(maxBits-l) > gap {
			l--
		}
		count[l]--
		count[l-1]++
		k += 1 << (maxBits - l)
	}
}

// huffBitWriter packs DEFLATE's least-significant-bit-first bit stream
// onto out. Fewer than 32 bits are pending between calls, so one call may
// add up to 32 bits.
type huffBitWriter struct {
	bits  uint64
	nbits uint
	out   []byte
}

func (w *huffBitWriter) writeBits(b uint32, n uint) {
	w.bits |= uint64(b) << w.nbits
	w.nbits += n
	if w.nbits >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.nbits -= 32
	}
}

// align pads the stream with zero bits to a byte boundary and moves every
// pending bit to out.
func (w *huffBitWriter) align() {
	for w.nbits > 0 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		if w.nbits < 8 {
			w.nbits = 0
		} else {
			w.nbits -= 8
		}
	}
	w.bits = 0
}

// writeStored sends data as stored blocks (BFINAL 0), at least one.
func (w *huffBitWriter) writeStored(data []byte) {
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), huffStoredMax)
		w.writeBits(0, 3)
		w.align()
		w.out = binary.LittleEndian.AppendUint16(w.out, uint16(n))
		w.out = binary.LittleEndian.AppendUint16(w.out, ^uint16(n))
		w.out = append(w.out, data[:n]...)
		data = data[n:]
	}
}

// storedBits is the size in bits of data sent by writeStored from the
// writer's current bit position.
func (w *huffBitWriter) storedBits(n int) int {
	blocks := max(1, (n+huffStoredMax-1)/huffStoredMax)
	pad := (8 - (int(w.nbits)+3)%8) % 8
	return 3 + pad + 32 + (blocks-1)*(8+32) + 8*n
}

// syncFlush ends a message as RFC 7692 section 7.2.1 asks: an empty stored
// block, of which only the header bits and the padding are written, since
// its LEN and NLEN (00 00 ff ff) are the four octets the sender removes.
func (w *huffBitWriter) syncFlush() {
	w.writeBits(0, 3)
	w.align()
}

// huffBlock holds the statistics of the block being gathered and the codes
// chosen for it.
type huffBlock struct {
	litFreq  [huffNumLit]uint32
	distFreq [huffNumDist]uint32

	litLen   [huffNumLit]uint8
	litCode  [huffNumLit]uint16
	distLen  [huffNumDist]uint8
	distCode [huffNumDist]uint16
	clFreq   [huffNumCL]uint32
	clLen    [huffNumCL]uint8
	clCode   [huffNumCL]uint16
	sorted   [2 * huffNumLit]uint64 // huffLengths' scratch
	weights  [huffNumLit]uint32     // huffLengths' scratch
	seq      [huffNumLit + huffNumDist]uint8
	// rle is the code-length sequence as code-length symbols, each with
	// its repeat count's extra bits above bit 5.
	rle         [huffNumLit + huffNumDist]uint16
	nrle        int
	nlit, ndist int
	nclen       int
	codedBits   int // size of the block planBlock chose, if not stored
}

// planBlock returns the type of block (huffBlockStored, huffBlockFixed or
// huffBlockDynamic) that codes the gathered tokens in the fewest bits, given
// that storing their bytes instead costs storedBits. It counts the
// end-of-block symbol in, and builds the dynamic codes when they are
// chosen.
func (h *huffBlock) planBlock(storedBits int) int {
	h.litFreq[huffEOB]++
	extra := 0
	for code, f := range h.litFreq[257:] {
		extra += int(f) * int(huffLenExtra[code])
	}
	for code, f := range h.distFreq[:] {
		extra += int(f) * int(huffDistExtra[code])
	}
	fixed := 3 + extra
	for sym, f := range h.litFreq[:] {
		fixed += int(f) * int(huffFixedLitLen[sym])
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
		return huffBlockStored
	case dynamic < fixed:
		h.codedBits = dynamic
		return huffBlockDynamic
	}
	h.codedBits = fixed
	return huffBlockFixed
}

// writeCoded sends tokens, which code src, as a block of the type
// planBlock chose (fixed or dynamic codes), with BFINAL 0, and clears the
// frequency counts.
func (h *huffBlock) writeCoded(w *huffBitWriter, typ int, tokens []uint32, src []byte) {
	// Room for the whole block, so that writeTokens need not check; it
	// stores eight bytes at a time, up to seven past the last.
	if need := (int(w.nbits)+h.codedBits+7)/8 + 8; cap(w.out)-len(w.out) < need {
		w.out = slices.Grow(w.out, need)
	}
	w.writeBits(uint32(typ)<<1, 3)
	if typ == huffBlockDynamic {
		h.writeDynamicHeader(w)
		h.writeTokens(w, tokens, src, &h.litCode, &h.litLen, &h.distCode, &h.distLen)
	} else {
		h.writeTokens(w, tokens, src, (*[huffNumLit]uint16)(huffFixedLitCode[:huffNumLit]), (*[huffNumLit]uint8)(huffFixedLitLen[:huffNumLit]), &huffFixedDistCode, &huffFixedDistLen)
	}
	h.clearFreq()
}

func (h *huffBlock) clearFreq() {
	h.litFreq = [huffNumLit]uint32{}
	h.distFreq = [huffNumDist]uint32{}
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
func (h *huffBlock) dynamicLowerBound() int {
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
			ent -= int(f) * huffLog2(f)
		}
		if total != 0 {
			ent += int(total) * huffLog2(total)
			// Each huffLog2 may fall short by log2(1+1/256) (1.5 units);
			// the entropy is taken as at most that much lower per symbol.
			bound += max(0, ent-2*int(total)) >> 8
		}
	}
	return bound
}

// huffLog2 returns log2(x) in 1/256 units for x >= 1, rounded down to
// within log2(1+1/256).
func huffLog2(x uint32) int {
	l := bits.Len32(x) - 1
	var m uint32
	if l >= 8 {
		m = x >> (l - 8)
	} else {
		m = x << (8 - l)
	}
	return l<<8 + int(huffLog2Frac[m-256])
}

// huffLog2Frac[i] is log2(1+i/256) in 1/256 units, rounded down.
var huffLog2Frac = func() (t [256]uint8) {
	for i := range t {
		t[i] = uint8(math.Log2(1+float64(i)/256) * 256)
	}
	return t
}()

// buildDynamic computes the dynamic codes for the gathered frequencies and
// returns the bits a dynamic block would take, block header aside.
func (h *huffBlock) buildDynamic() int {
	huffLengths(h.litFreq[:], h.litLen[:], huffMaxBits, h.sorted[:], h.weights[:])
	huffLengths(h.distFreq[:], h.distLen[:], huffMaxBits, h.sorted[:], h.weights[:])
	h.nlit = huffNumLit
	for h.nlit > 257 && h.litLen[h.nlit-1] == 0 {
		h.nlit--
	}
	h.ndist = huffNumDist
	for h.ndist > 1 && h.distLen[h.ndist-1] == 0 {
		h.ndist--
	}
	n := copy(h.seq[:], h.litLen[:h.nlit])
	n += copy(h.seq[n:], h.distLen[:h.ndist])
	h.runLengths(h.seq[:n])
	huffLengths(h.clFreq[:], h.clLen[:], huffMaxCLBits, h.sorted[:], h.weights[:])
	h.nclen = huffNumCL
	for h.nclen > 4 && h.clLen[huffCLOrder[h.nclen-1]] == 0 {
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
func (h *huffBlock) runLengths(seq []uint8) {
	h.clFreq = [huffNumCL]uint32{}
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

func (h *huffBlock) writeDynamicHeader(w *huffBitWriter) {
	huffCanonical(h.litLen[:], h.litCode[:])
	huffCanonical(h.distLen[:], h.distCode[:])
	huffCanonical(h.clLen[:], h.clCode[:])
	w.writeBits(uint32(h.nlit-257), 5)
	w.writeBits(uint32(h.ndist-1), 5)
	w.writeBits(uint32(h.nclen-4), 4)
	for _, sym := range huffCLOrder[:h.nclen] {
		w.writeBits(uint32(h.clLen[sym]), 3)
	}
	for _, v := range h.rle[:h.nrle] {
		sym := v & 31
		w.writeBits(uint32(h.clCode[sym]), uint(h.clLen[sym]))
		switch sym {
		case 16:
			w.writeBits(uint32(v>>5), 2)
		case 17:
			w.writeBits(uint32(v>>5), 3)
		case 18:
			w.writeBits(uint32(v>>5), 7)
		}
	}
}

// writeTokens sends tokens, which code src (a run of literals takes its
// bytes from there), and the end-of-block code with the given codes, into
// room that writeCoded made. This is the encoder's output loop, so the bit
// buffer lives in locals and is flushed without a branch on its fill: all
// whole bytes of it are stored with one 8-byte write after each match and
// after every three literals, which leaves at most 7 bits pending, and a
// match (at most 48 bits) or three literals (at most 45) fit above them.
// Shift counts are masked to 63, which they never exceed, to spare the
// compiler's handling of larger ones.
func (h *huffBlock) writeTokens(w *huffBitWriter, tokens []uint32, src []byte, litCode *[huffNumLit]uint16, litLen *[huffNumLit]uint8, distCode *[huffNumDist]uint16, distLen *[huffNumDist]uint8) {
	acc, n := w.bits, w.nbits
	buf, o := w.out[:cap(w.out)], len(w.out)
	binary.LittleEndian.PutUint64(buf[o:], acc)
	o += int(n >> 3)
	acc >>= n &^ 7
	n &= 7
	p := 0
	for _, t := range tokens {
		if t < huffMatchFlag {
			run := src[p : p+int(t)]
			p += int(t)
			for len(run) >= 3 {
				b0, b1, b2 := run[0], run[1], run[2]
				acc |= uint64(litCode[b0]) << (n & 63)
				n += uint(litLen[b0])
				acc |= uint64(litCode[b1]) << (n & 63)
				n += uint(litLen[b1])
				acc |= uint64(litCode[b2]) << (n & 63)
				n += uint(litLen[b2])
				run = run[3:]
				binary.LittleEndian.PutUint64(buf[o:], acc)
				o += int(n >> 3)
				acc >>= n &^ 7 & 63
				n &= 7
			}
			if len(run) > 0 {
				for _, b := range run {
					acc |= uint64(litCode[b]) << (n & 63)
					n += uint(litLen[b])
				}
				binary.LittleEndian.PutUint64(buf[o:], acc)
				o += int(n >> 3)
				acc >>= n &^ 7 & 63
				n &= 7
			}
			continue
		}
		l := (t >> huffLenShift) & 0xff
		p += int(l) + deflateMinMatch
		ls := uint32(huffLenSym[l])
		acc |= uint64(litCode[257+ls]) << (n & 63)
		n += uint(litLen[257+ls])
		acc |= uint64(l-uint32(huffLenBase[ls]-3)) << (n & 63)
		n += uint(huffLenExtra[ls])
		d := t & huffDistMask
		ds := huffDistSym(d)
		acc |= uint64(distCode[ds]) << (n & 63)
		n += uint(distLen[ds])
		acc |= uint64(d-uint32(huffDistBase[ds]-1)) << (n & 63)
		n += uint(huffDistExtra[ds])
		binary.LittleEndian.PutUint64(buf[o:], acc)
		o += int(n >> 3)
		acc >>= n &^ 7 & 63
		n &= 7
	}
	w.bits, w.nbits, w.out = acc, n, buf[:o]
	w.writeBits(uint32(litCode[huffEOB]), uint(litLen[huffEOB]))
}
