package flate

import "math/bits"

// Huffman codes (RFC 1951 section 3.2.2): their code lengths and canonical
// codes for the encoder, and the decoding tables of the decoder.

// The fixed codes of RFC 1951 section 3.2.6 as the encoder sends them,
// bit-reversed.
var (
	fixedLitLen, fixedLitCode = func() (l [288]uint8, c [288]uint16) {
		l = fixedLitLengths()
		canonicalCodes(l[:], c[:])
		return l, c
	}()
	fixedDistLen, fixedDistCode = func() (l [numDist]uint8, c [numDist]uint16) {
		for i := range l {
			l[i] = fixedDistBits
		}
		canonicalCodes(l[:], c[:])
		return l, c
	}()
)

// canonicalCodes assigns the canonical codes of RFC 1951 section 3.2.2 to
// code lengths lens, bit-reversed because DEFLATE sends codes from their
// most significant bit while the bit writer fills bytes from the least.
func canonicalCodes(lens []uint8, codes []uint16) {
	var count [16]uint16
	for _, l := range lens {
		count[l&15]++
	}
	count[0] = 0
	var next [16]uint16
	code := uint16(0)
	for l := 1; l <= maxCodeLen; l++ {
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

// codeLengths sets lens[sym] to the length of sym's code in a prefix code
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
func codeLengths(freq []uint32, lens []uint8, maxBits int, sorted []uint64, weights []uint32) {
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
	s := sortByFreq(sorted[:n], sorted[len(freq):len(freq)+n], maxFreq, weights[:256])

	// The weights are copied out so that s keeps the symbols; weights is
	// caller-provided scratch rather than a local array, which would add
	// over a kilobyte to the stack of every goroutine that compresses, and
	// a stack once grown stays grown while its connection idles.
	a := weights[:n]
	for i, v := range s {
		a[i] = uint32(v >> 16)
	}
	huffmanDepths(a)
	// a[i] is now the code length of s[i]; lengths fall as i grows.

	var count [maxCodeLen + 2]int
	for _, l := range a {
		if int(l) > maxBits {
			l = uint32(maxBits)
		}
		count[l]++
	}
	if int(a[0]) > maxBits {
		rebalance(count[:maxBits+1], maxBits)
	}
	i := 0
	for l := maxBits; l >= 1; l-- {
		for c := count[l]; c > 0; c-- {
			lens[s[i]&0xffff] = uint8(l)
			i++
		}
	}
}

// huffmanDepths turns a, weights sorted in ascending order (at least two),
// into the code lengths of a Huffman code for them, in place: the
// Moffat–Katajainen method, three passes over the array that reuse it for
// parent pointers and then depths. The lengths fall as the index grows.
func huffmanDepths(a []uint32) {
	n := len(a)
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
}

// sortByFreq sorts the entries freq<<16|sym of s by frequency, and
// equal frequencies by symbol, as they come (s is in symbol order): a
// radix sort on the frequency's bytes, least significant first, one pass
// per byte maxFreq has (usually one or two), which on the few hundred
// symbols of a block is several times faster than a comparison sort and
// has no data-dependent branches. tmp is scratch as long as s, count of
// 256. It returns s or tmp, whichever holds the result.
func sortByFreq(s, tmp []uint64, maxFreq uint32, count []uint32) []uint64 {
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

// rebalance adjusts count (count[l] codes of length l, 1 <= l <=
// maxBits) until the Kraft sum is exactly one, keeping the number of codes.
func rebalance(count []int, maxBits int) {
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

// primaryBits is the longest code a decodeTable decodes with one lookup.
const primaryBits = 9

// decodeTable decodes one canonical Huffman code. primary holds, for every
// value of the next pbits input bits, sym<<4|length of the code they start
// with; 0 sends the decoder to the slow path (a longer code, or no code at
// all). pbits is the longest code length, at most primaryBits, so
// that a small code (the code-length code, most distance codes) fills a
// small table. count and symbol are the canonical description (symbols
// sorted by code length) the slow path walks.
type decodeTable struct {
	pmask   uint64
	primary [1 << primaryBits]uint16
	count   [maxCodeLen + 1]uint16
	symbol  [288]uint16
}

// init builds the table for the code lengths lengths. An over-subscribed
// set is invalid; an incomplete one is accepted, as zlib does, only when it
// is a single one-bit code (or no code at all) and not a code-length code.
func (h *decodeTable) init(lengths []uint8, codeLengthCode bool) bool {
	h.count = [maxCodeLen + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left, maxLen := 1, 0
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - int(h.count[l])
		if left < 0 {
			return false
		}
		if h.count[l] != 0 {
			maxLen = l
		}
	}
	if left > 0 && maxLen != 0 && (codeLengthCode || maxLen != 1) {
		return false
	}
	var offs [maxCodeLen + 2]uint16
	for l := 1; l <= maxCodeLen; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	pbits := min(max(maxLen, 1), primaryBits)
	h.pmask = 1<<pbits - 1
	// The table is built for 1-bit lookups and doubled once per code
	// length: after the codes of length l are in, the first 2^l entries
	// decode every l-bit pattern, and a copy of them extends that to l+1
	// bits (a code shorter than the lookup repeats at every multiple of
	// 2^l). So each code is stored once and the rest is one copy per
	// length; entries of patterns that are no code or begin a longer one
	// stay 0 from the start.
	primary := h.primary[:1<<pbits]
	primary[0], primary[1] = 0, 0
	code, idx := 0, 0
	for l := 1; l <= pbits; l++ {
		if l > 1 {
			copy(primary[1<<(l-1):1<<l], primary[:1<<(l-1)])
		}
		for i := 0; i < int(h.count[l]); i++ {
			primary[bits.Reverse16(uint16(code))>>(16-l)] = h.symbol[idx]<<4 | uint16(l)
			idx++
			code++
		}
		code <<= 1
	}
	return true
}

// The fixed codes of RFC 1951 section 3.2.6 as the decoder reads them,
// built once.
var fixedLitTable, fixedDistTable decodeTable

func init() {
	lengths := fixedLitLengths()
	fixedLitTable.init(lengths[:], false)
	// Codes 30 and 31 exist but mean nothing: decoding one is an error.
	var dist [32]uint8
	for i := range dist {
		dist[i] = fixedDistBits
	}
	fixedDistTable.init(dist[:], false)
}
