package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refInflater is the tests' reference DEFLATE (RFC 1951) decoder. It
// shares no code with inflate.go, so that what the library writes is not
// checked by what the library reads, and it is slow on purpose: bit by
// bit, in the manner of zlib's puff.c, which keeps it short enough to
// trust. It is stricter than compress/flate, which follows any reference
// up to 32 KiB back whatever the window and accepts codes zlib refuses:
// every back-reference must stay within window and within the history,
// and incomplete Huffman codes are refused as zlib refuses them.
type refInflater struct {
	window int // how far back a reference may reach
	// takeover keeps hist from call to call, as context takeover does;
	// without it every call starts with an empty history.
	takeover bool
	end      refEnd
	hist     []byte   // what references may reach: the history, then the output
	stats    refStats // of the last call

	in  []byte
	pos int // in bits
}

// refEnd says how the data of one call ends and what BFINAL means in it.
// The callers differ because they check different senders.
type refEnd int

const (
	// refEndSyncFlush, the strictest and so the zero value, is for a
	// message of our deflater's: its payload (RFC 7692 strips the 00 00 ff
	// ff, the decoder puts it back) must end with a sync flush's empty
	// stored block, and must not set BFINAL, which would end the stream
	// that later messages take over.
	refEndSyncFlush refEnd = iota
	// refEndPeer is for a message as RFC 7692 lets any peer send it and
	// inflate.go reads it: with the 00 00 ff ff put back the data ends at
	// a block boundary; or a BFINAL block ends it, with nothing of the
	// payload after it; or, as zlib-based peers allow, the payload ends at
	// a byte-aligned block boundary without the sync flush.
	refEndPeer
	// refEndFinal is for a raw DEFLATE stream, nothing put back: its
	// BFINAL block ends it and what follows is not read, as compress/flate
	// reads a stream.
	refEndFinal
)

// refStats describes what one call decoded.
type refStats struct {
	blocks  [3]int // stored, fixed Huffman, dynamic Huffman
	matches int
	maxDist int // the farthest back-reference
}

// refTail is the end of the sync flush that RFC 7692 strips from each
// message.
var refTail = []byte{0x00, 0x00, 0xff, 0xff}

var errRefSyncFlush = errors.New("no sync flush at the end")

// inflate decodes data as r.end says and returns what it adds to hist.
// On an error it returns what was decoded before the failure (a reader
// may have passed that on already) and leaves hist as it was. What it
// returns is valid until the next call.
func (r *refInflater) inflate(data []byte) ([]byte, error) {
	if !r.takeover {
		r.hist = r.hist[:0]
	} else if len(r.hist) > 4*r.window+64<<10 {
		// References cannot reach past the window: the rest is dead.
		r.hist = append(r.hist[:0], r.hist[len(r.hist)-r.window:]...)
	}
	start := len(r.hist)
	r.stats = refStats{}
	r.in, r.pos = data, 0
	if r.end != refEndFinal {
		r.in = append(bytes.Clone(data), refTail...)
	}
	err := r.blocks(len(data))
	out := r.hist[start:]
	if err != nil {
		r.hist = r.hist[:start]
	}
	return out, err
}

func (r *refInflater) blocks(payload int) error {
	syncFlush := false // the last block was an empty stored one
	for {
		switch {
		case r.end == refEndSyncFlush && r.pos == 8*len(r.in):
			if !syncFlush {
				return errRefSyncFlush
			}
			return nil
		case r.end == refEndPeer && r.pos == 8*len(r.in):
			return nil
		case r.end == refEndPeer && r.pos == 8*payload:
			// The payload ended at a byte boundary without its sync
			// flush: the 00 00 ff ff put back reads as a stored block
			// cut short, which is no error here.
			return nil
		}
		hdr, err := r.bits(3)
		if err != nil {
			return err
		}
		final := hdr&1 != 0
		if final && r.end == refEndSyncFlush {
			return errors.New("BFINAL set")
		}
		syncFlush = false
		switch hdr >> 1 {
		case 0:
			r.stats.blocks[0]++
			syncFlush, err = r.stored()
		case 1:
			r.stats.blocks[1]++
			err = r.codes(refFixedLit, refFixedDist)
		case 2:
			r.stats.blocks[2]++
			var lit, dist *refCode
			if lit, dist, err = r.dynamic(); err == nil {
				err = r.codes(lit, dist)
			}
		default:
			err = errors.New("block type 3")
		}
		if err != nil {
			return err
		}
		if final {
			if r.end == refEndPeer && (r.pos+7)/8 < payload {
				return errors.New("data after the final block")
			}
			return nil
		}
	}
}

func (r *refInflater) bits(n int) (int, error) {
	if r.pos+n > 8*len(r.in) {
		return 0, io.ErrUnexpectedEOF
	}
	v := 0
	for i := 0; i < n; i++ {
		v |= int(r.in[r.pos>>3]>>(r.pos&7)&1) << i
		r.pos++
	}
	return v, nil
}

// stored copies a stored block whole, so that a block cut short adds
// nothing to the output, and reports whether it was empty.
func (r *refInflater) stored() (empty bool, err error) {
	p := (r.pos + 7) >> 3
	if p+4 > len(r.in) {
		return false, io.ErrUnexpectedEOF
	}
	n := int(r.in[p]) | int(r.in[p+1])<<8
	if nn := int(r.in[p+2]) | int(r.in[p+3])<<8; n != nn^0xffff {
		return false, errors.New("stored block length check")
	}
	p += 4
	if p+n > len(r.in) {
		return false, io.ErrUnexpectedEOF
	}
	r.hist = append(r.hist, r.in[p:p+n]...)
	r.pos = 8 * (p + n)
	return n == 0, nil
}

// Tables of RFC 1951 section 3.2.5, and the order of section 3.2.7 in
// which the code-length code's lengths come.
var (
	refLenBase   = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	refLenExtra  = [29]int{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	refDistBase  = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	refDistExtra = [30]int{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	refCLOrder   = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// refCode is a canonical Huffman code in the form puff.c decodes.
type refCode struct {
	count [16]int // how many codes of each length
	sym   []int   // the symbols in code order
}

// newRefCode builds the code of the given lengths. As zlib does, it
// refuses an over-subscribed code, and an incomplete one unless it is
// empty or a single one-bit code; the code-length code may not be that.
func newRefCode(lengths []int, codeLengthCode bool) (*refCode, error) {
	c := &refCode{sym: make([]int, len(lengths))}
	for _, l := range lengths {
		c.count[l]++
	}
	c.count[0] = 0
	left, maxLen := 1, 0
	for l := 1; l < 16; l++ {
		left = left<<1 - c.count[l]
		if left < 0 {
			return nil, errors.New("over-subscribed code")
		}
		if c.count[l] != 0 {
			maxLen = l
		}
	}
	if left > 0 && maxLen != 0 && (codeLengthCode || maxLen != 1) {
		return nil, errors.New("incomplete code")
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + c.count[l]
	}
	for s, l := range lengths {
		if l != 0 {
			c.sym[offs[l]] = s
			offs[l]++
		}
	}
	return c, nil
}

var refFixedLit, refFixedDist = func() (*refCode, *refCode) {
	lens := make([]int, 288)
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		default:
			lens[i] = 8
		}
	}
	lit, _ := newRefCode(lens, false)
	// Distance codes 30 and 31 complete the code but mean nothing.
	dlens := make([]int, 32)
	for i := range dlens {
		dlens[i] = 5
	}
	dist, _ := newRefCode(dlens, false)
	return lit, dist
}()

// decode reads one symbol: a Huffman code comes most significant bit
// first.
func (r *refInflater) decode(c *refCode) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		code |= b
		count := c.count[l]
		if code-first < count {
			return c.sym[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, errors.New("invalid Huffman code")
}

func (r *refInflater) dynamic() (lit, dist *refCode, err error) {
	var hlit, hdist, hclen int
	if hlit, err = r.bits(5); err != nil {
		return nil, nil, err
	}
	if hdist, err = r.bits(5); err != nil {
		return nil, nil, err
	}
	if hclen, err = r.bits(4); err != nil {
		return nil, nil, err
	}
	hlit, hdist, hclen = hlit+257, hdist+1, hclen+4
	if hlit > 286 || hdist > 30 {
		return nil, nil, errors.New("too many codes")
	}
	cl := make([]int, 19)
	for _, s := range refCLOrder[:hclen] {
		if cl[s], err = r.bits(3); err != nil {
			return nil, nil, err
		}
	}
	clc, err := newRefCode(cl, true)
	if err != nil {
		return nil, nil, fmt.Errorf("code-length code: %w", err)
	}
	lens := make([]int, 0, hlit+hdist)
	for len(lens) < hlit+hdist {
		sym, err := r.decode(clc)
		if err != nil {
			return nil, nil, err
		}
		if sym < 16 {
			lens = append(lens, sym)
			continue
		}
		val, rep := 0, 0
		switch sym {
		case 16:
			if len(lens) == 0 {
				return nil, nil, errors.New("repeat with no previous length")
			}
			val = lens[len(lens)-1]
			rep, err = r.bits(2)
			rep += 3
		case 17:
			rep, err = r.bits(3)
			rep += 3
		default:
			rep, err = r.bits(7)
			rep += 11
		}
		if err != nil {
			return nil, nil, err
		}
		if len(lens)+rep > hlit+hdist {
			return nil, nil, errors.New("code lengths overrun")
		}
		for ; rep > 0; rep-- {
			lens = append(lens, val)
		}
	}
	if lens[256] == 0 {
		return nil, nil, errors.New("no end-of-block code")
	}
	if lit, err = newRefCode(lens[:hlit], false); err != nil {
		return nil, nil, fmt.Errorf("literal/length code: %w", err)
	}
	if dist, err = newRefCode(lens[hlit:], false); err != nil {
		return nil, nil, fmt.Errorf("distance code: %w", err)
	}
	return lit, dist, nil
}

func (r *refInflater) codes(lit, dist *refCode) error {
	for {
		sym, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			r.hist = append(r.hist, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return errors.New("invalid length symbol")
		}
		sym -= 257
		e, err := r.bits(refLenExtra[sym])
		if err != nil {
			return err
		}
		length := refLenBase[sym] + e
		ds, err := r.decode(dist)
		if err != nil {
			return err
		}
		if ds >= len(refDistBase) {
			return errors.New("invalid distance symbol")
		}
		if e, err = r.bits(refDistExtra[ds]); err != nil {
			return err
		}
		d := refDistBase[ds] + e
		if d > r.window {
			return fmt.Errorf("distance %d beyond the %d-byte window", d, r.window)
		}
		if d > len(r.hist) {
			return fmt.Errorf("distance %d before the start of the history (%d bytes)", d, len(r.hist))
		}
		r.stats.matches++
		r.stats.maxDist = max(r.stats.maxDist, d)
		// Byte by byte: a match may overlap what it copies.
		for ; length > 0; length-- {
			r.hist = append(r.hist, r.hist[len(r.hist)-d])
		}
	}
}

// ---- tests of the reference itself -------------------------------------------

// refBits writes hand-made DEFLATE data: numbers go least significant bit
// first, Huffman codes most significant bit first.
type refBits struct {
	b []byte
	n int // bits written
}

func (w *refBits) put(v, n int) *refBits {
	for i := 0; i < n; i++ {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.n % 8)
		w.n++
	}
	return w
}

func (w *refBits) block(final bool, typ int) *refBits {
	f := 0
	if final {
		f = 1
	}
	return w.put(f, 1).put(typ, 2)
}

// stored writes the rest of a stored block's header, and data.
func (w *refBits) stored(data ...byte) *refBits {
	w.n = 8 * len(w.b)
	w.b = append(w.b, byte(len(data)), byte(len(data)>>8), ^byte(len(data)), ^byte(len(data)>>8))
	w.b = append(w.b, data...)
	w.n = 8 * len(w.b)
	return w
}

// flush ends a message as a sync flush does, less the 00 00 ff ff that
// RFC 7692 strips.
func (w *refBits) flush() []byte {
	w.block(false, 0)
	return w.b
}

func (w *refBits) sym(c refTestCode, s int) *refBits {
	for i := c.lens[s] - 1; i >= 0; i-- {
		w.put(c.codes[s]>>i&1, 1)
	}
	return w
}

// clCode writes the counts of code-length codes and their lengths.
func (w *refBits) clCode(c refTestCode) *refBits {
	w.put(19-4, 4)
	for _, s := range refCLOrder {
		w.put(c.lens[s], 3)
	}
	return w
}

// dynamic writes the header of a dynamic block, every length as its own
// code-length symbol.
func (w *refBits) dynamic(final bool, lit, dist []int) *refBits {
	w.block(final, 2).put(len(lit)-257, 5).put(len(dist)-1, 5).clCode(refTestCL)
	for _, l := range append(append([]int(nil), lit...), dist...) {
		w.sym(refTestCL, l)
	}
	return w
}

// refTestCode is a Huffman code to write with, made apart from newRefCode
// so that the two check each other.
type refTestCode struct{ lens, codes []int }

// newRefTestCode assigns codes as RFC 1951 section 3.2.2 does.
func newRefTestCode(lens []int) refTestCode {
	var count, next [16]int
	for _, l := range lens {
		if l > 0 {
			count[l]++
		}
	}
	code := 0
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	codes := make([]int, len(lens))
	for s, l := range lens {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return refTestCode{lens, codes}
}

// refLens makes n code lengths, zero but for the symbol, length pairs.
func refLens(n int, pairs ...int) []int {
	lens := make([]int, n)
	for i := 0; i < len(pairs); i += 2 {
		lens[pairs[i]] = pairs[i+1]
	}
	return lens
}

var (
	refTestLit = newRefTestCode(func() []int {
		lens := make([]int, 288)
		for i := range lens {
			switch {
			case i < 144:
				lens[i] = 8
			case i < 256:
				lens[i] = 9
			case i < 280:
				lens[i] = 7
			default:
				lens[i] = 8
			}
		}
		return lens
	}())
	refTestDist = newRefTestCode(refRepeat(5, 32))
	// Complete: sixteen 5-bit codes, one of 2 bits and two of 3.
	refTestCL = newRefTestCode(append(refRepeat(5, 16), 2, 3, 3))
)

func refRepeat(l, n int) []int {
	lens := make([]int, n)
	for i := range lens {
		lens[i] = l
	}
	return lens
}

func TestDeflateRefInflater(t *testing.T) {
	b := func() *refBits { return &refBits{} }
	fl, fd := refTestLit, refTestDist
	seq := func(n int) string {
		s := make([]byte, n)
		for i := range s {
			s[i] = byte(i * 7)
		}
		return string(s)
	}
	// A dynamic block's codes: 'a' 00, 'b' 01, end of block 10, length 3
	// 11, and a single one-bit distance code, which zlib allows.
	lit4 := refLens(258, 'a', 2, 'b', 2, 256, 2, 257, 2)
	dist1 := refLens(1, 0, 1)
	c4, c1 := newRefTestCode(lit4), newRefTestCode(dist1)
	lit2 := refLens(257, 'a', 1, 256, 1)
	c2 := newRefTestCode(lit2)
	// Codes under which the zero bits that pad the last byte begin a
	// match that needs more bits than are left.
	litCut := refLens(258, 257, 1, 'a', 2, 256, 2)
	distCut := refLens(30, 29, 1)
	storedABC := b().block(false, 0).stored('a', 'b', 'c').b
	finalABC := b().block(true, 0).stored('a', 'b', 'c').b

	tests := []struct {
		name   string
		end    refEnd
		window int // 32 KiB when 0
		hist   string
		data   []byte
		want   string // on an error, what was decoded before it
		err    string // part of the error
		errIs  error
		stats  *refStats
	}{
		// Stored blocks.
		{name: "stored", end: refEndFinal, data: finalABC, want: "abc", stats: &refStats{blocks: [3]int{1, 0, 0}}},
		{name: "stored length check", end: refEndFinal, data: []byte{0x01, 3, 0, 0, 0, 'a', 'b', 'c'}, err: "length check"},
		{name: "stored cut short", end: refEndFinal, data: finalABC[:len(finalABC)-1], errIs: io.ErrUnexpectedEOF},
		{name: "stored header cut short", end: refEndFinal, data: finalABC[:3], errIs: io.ErrUnexpectedEOF},
		{name: "empty stream", end: refEndFinal, errIs: io.ErrUnexpectedEOF},

		// Fixed Huffman blocks.
		{name: "fixed", end: refEndFinal,
			data: b().block(true, 1).sym(fl, 'a').sym(fl, 'b').sym(fl, 258).sym(fd, 1).sym(fl, 265).put(1, 1).sym(fd, 1).sym(fl, 256).b,
			want: strings.Repeat("ab", 9), stats: &refStats{blocks: [3]int{0, 1, 0}, matches: 2, maxDist: 2}},
		{name: "longest matches", end: refEndFinal,
			data: b().block(true, 1).sym(fl, 'a').sym(fl, 285).sym(fd, 0).sym(fl, 284).put(30, 5).sym(fd, 0).sym(fl, 256).b,
			want: strings.Repeat("a", 1+258+257), stats: &refStats{blocks: [3]int{0, 1, 0}, matches: 2, maxDist: 1}},
		{name: "match before any history", end: refEndFinal, data: []byte{0x03, 0x02, 0x00}, err: "before the start of the history"},
		{name: "match into the history", end: refEndFinal, hist: "x", data: []byte{0x03, 0x02, 0x00},
			want: "xxx", stats: &refStats{blocks: [3]int{0, 1, 0}, matches: 1, maxDist: 1}},
		{name: "block type 3", end: refEndFinal, data: []byte{0x07}, err: "block type 3"},
		{name: "length symbol 286", end: refEndFinal, data: b().block(true, 1).sym(fl, 'a').sym(fl, 286).b, want: "a", err: "invalid length symbol"},
		{name: "distance symbol 30", end: refEndFinal, data: b().block(true, 1).sym(fl, 'a').sym(fl, 257).sym(fd, 30).b, want: "a", err: "invalid distance symbol"},

		// Dynamic Huffman blocks.
		{name: "dynamic", end: refEndFinal,
			data: b().dynamic(true, lit4, dist1).sym(c4, 'a').sym(c4, 'b').sym(c4, 257).sym(c1, 0).sym(c4, 256).b,
			want: "abbbb", stats: &refStats{blocks: [3]int{0, 0, 1}, matches: 1, maxDist: 1}},
		{name: "empty distance code", end: refEndFinal,
			data: b().dynamic(true, lit2, refLens(1)).sym(c2, 'a').sym(c2, 256).b, want: "a"},
		{name: "dynamic cut short", end: refEndFinal,
			data: b().dynamic(true, litCut, distCut).sym(newRefTestCode(litCut), 'a').b, want: "a", errIs: io.ErrUnexpectedEOF},
		{name: "incomplete literal/length code", end: refEndFinal, data: b().dynamic(true, refLens(258, 'a', 2, 'b', 2, 256, 2), dist1).b, err: "literal/length code: incomplete"},
		{name: "incomplete distance code", end: refEndFinal, data: b().dynamic(true, lit4, refLens(2, 0, 2, 1, 2)).b, err: "distance code: incomplete"},
		{name: "over-subscribed code", end: refEndFinal, data: b().dynamic(true, refLens(257, 'a', 1, 'b', 1, 256, 1), dist1).b, err: "over-subscribed"},
		{name: "no end-of-block code", end: refEndFinal, data: b().dynamic(true, refLens(257, 'a', 1, 'b', 1), dist1).b, err: "no end-of-block code"},
		{name: "code-length code of one one-bit code", end: refEndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(newRefTestCode(refLens(19, 8, 1))).b, err: "code-length code: incomplete"},
		{name: "repeat with no previous length", end: refEndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(refTestCL).sym(refTestCL, 16).put(0, 2).b, err: "repeat with no previous length"},
		{name: "code lengths overrun", end: refEndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(refTestCL).sym(refTestCL, 18).put(127, 7).sym(refTestCL, 18).put(127, 7).b, err: "overrun"},
		{name: "too many codes", end: refEndFinal, data: b().block(true, 2).put(30, 5).put(0, 5).put(0, 4).b, err: "too many codes"},

		// The window and the history.
		{name: "at the window's edge", window: 256, hist: seq(256),
			data: b().block(false, 1).sym(fl, 257).sym(fd, 15).put(63, 6).sym(fl, 256).flush(),
			want: seq(3), stats: &refStats{blocks: [3]int{1, 1, 0}, matches: 1, maxDist: 256}},
		{name: "beyond the window", window: 256, hist: seq(300),
			data: b().block(false, 1).sym(fl, 'a').sym(fl, 257).sym(fd, 16).put(0, 7).sym(fl, 256).flush(),
			want: "a", err: "distance 257 beyond the 256-byte window"},
		{name: "before the history", hist: seq(10),
			data: b().block(false, 1).sym(fl, 257).sym(fd, 6).put(2, 2).sym(fl, 256).flush(),
			err:  "distance 11 before the start of the history"},
		{name: "what came before a failure", end: refEndPeer,
			data: b().block(false, 1).sym(fl, 'a').sym(fl, 'b').sym(fl, 257).sym(fd, 4).put(0, 1).sym(fl, 256).flush(),
			want: "ab", err: "distance 5 before the start of the history"},

		// Where a message ends, and BFINAL.
		{name: "empty message", data: []byte{0x00}, stats: &refStats{blocks: [3]int{1, 0, 0}}},
		{name: "empty payload", data: []byte{}, errIs: io.ErrUnexpectedEOF},
		{name: "empty payload from a peer", end: refEndPeer, data: []byte{}},
		{name: "stored message", data: append(bytes.Clone(storedABC), 0x00), want: "abc", stats: &refStats{blocks: [3]int{2, 0, 0}}},
		{name: "dynamic message", end: refEndPeer,
			data: b().dynamic(false, lit4, dist1).sym(c4, 'a').sym(c4, 'b').sym(c4, 257).sym(c1, 0).sym(c4, 256).flush(),
			want: "abbbb", stats: &refStats{blocks: [3]int{1, 0, 1}, matches: 1, maxDist: 1}},
		{name: "no sync flush", data: storedABC, want: "abc", errIs: io.ErrUnexpectedEOF},
		{name: "no sync flush from a peer", end: refEndPeer, data: storedABC, want: "abc"},
		{name: "tail read as data", data: []byte{0x00, 4, 0, 0xfb, 0xff}, want: "\x00\x00\xff\xff", errIs: errRefSyncFlush},
		{name: "tail read as data from a peer", end: refEndPeer, data: []byte{0x00, 4, 0, 0xfb, 0xff}, want: "\x00\x00\xff\xff"},
		{name: "truncated message", data: []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, errIs: io.ErrUnexpectedEOF},
		{name: "truncated message from a peer", end: refEndPeer, data: []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, errIs: io.ErrUnexpectedEOF},
		{name: "BFINAL", data: finalABC, err: "BFINAL set"},
		{name: "BFINAL from a peer", end: refEndPeer, data: finalABC, want: "abc"},
		{name: "BFINAL within the last byte", end: refEndPeer, data: []byte{0x03, 0x00}},
		{name: "data after BFINAL", data: append(bytes.Clone(finalABC), 0), err: "BFINAL set"},
		{name: "data after BFINAL from a peer", end: refEndPeer, data: append(bytes.Clone(finalABC), 0), want: "abc", err: "data after the final block"},
		{name: "byte after BFINAL from a peer", end: refEndPeer, data: []byte{0x03, 0x00, 0x00}, err: "data after the final block"},
		{name: "data after BFINAL in a stream", end: refEndFinal, data: append(bytes.Clone(finalABC), 0xff, 0xff), want: "abc"},
		{name: "no BFINAL in a stream", end: refEndFinal, data: b().block(false, 1).sym(fl, 256).b, errIs: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &refInflater{window: 1 << 15, takeover: true, end: tc.end, hist: []byte(tc.hist)}
			if tc.window != 0 {
				r.window = tc.window
			}
			got, err := r.inflate(tc.data)
			assert.Equal(t, tc.want, string(got))
			if tc.err == "" && tc.errIs == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.hist+tc.want, string(r.hist), "the output joins the history")
			} else {
				if tc.errIs != nil {
					require.ErrorIs(t, err, tc.errIs)
				}
				if tc.err != "" {
					require.ErrorContains(t, err, tc.err)
				}
				assert.Equal(t, tc.hist, string(r.hist), "a failure leaves the history as it was")
			}
			if tc.stats != nil {
				assert.Equal(t, *tc.stats, r.stats)
			}
		})
	}
}

// TestDeflateRefHistory checks what the reference keeps from one message
// to the next.
func TestDeflateRefHistory(t *testing.T) {
	abc := (&refBits{}).block(false, 0).stored('a', 'b', 'c').flush()
	// A copy of the three bytes before it.
	copy3 := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 2).sym(refTestLit, 256).flush()
	for _, takeover := range []bool{true, false} {
		r := &refInflater{window: 1 << 15, takeover: takeover}
		got, err := r.inflate(abc)
		require.NoError(t, err)
		require.Equal(t, "abc", string(got))
		got, err = r.inflate(copy3)
		if takeover {
			require.NoError(t, err)
			assert.Equal(t, "abc", string(got))
			assert.Equal(t, 3, r.stats.maxDist)
			assert.Equal(t, "abcabc", string(r.hist))
		} else {
			assert.ErrorContains(t, err, "before the start of the history", "without takeover")
			assert.Empty(t, r.hist)
		}
	}

	// A failed message leaves the history to the next.
	r := &refInflater{window: 1 << 15, takeover: true}
	_, err := r.inflate(abc)
	require.NoError(t, err)
	_, err = r.inflate([]byte{0x07})
	require.Error(t, err)
	got, err := r.inflate(copy3)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))

	// A long history is cut down, to no less than the window.
	r = &refInflater{window: 256, takeover: true}
	big := make([]byte, 60000)
	for i := range big {
		big[i] = byte(i % 251)
	}
	for i := 0; i < 2; i++ {
		_, err := r.inflate((&refBits{}).block(false, 0).stored(big...).flush())
		require.NoError(t, err)
	}
	edge := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 15).put(63, 6).sym(refTestLit, 256).flush()
	got, err = r.inflate(edge)
	require.NoError(t, err)
	assert.Equal(t, big[len(big)-256:][:3], got)
	assert.Less(t, len(r.hist), 4*256+64<<10)
	beyond := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 16).put(0, 7).sym(refTestLit, 256).flush()
	_, err = r.inflate(beyond)
	assert.ErrorContains(t, err, "beyond the 256-byte window")
}

// TestDeflateRefFlate checks the reference against compress/flate on
// whole streams and on sync-flushed messages, and that the distances it
// reports are real ones.
func TestDeflateRefFlate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	period := random(7)
	far := random(20000)
	tests := []struct {
		name string
		dict []byte
		data []byte
		// check holds for the longest distance at levels that match.
		check func(level, maxDist int) bool
	}{
		{"text", nil, abCorpora[0].bytes()[:100000], func(_, d int) bool { return d > 1<<14 && d <= 1<<15 }},
		{"period 7", nil, bytes.Repeat(period, 3000), func(_, d int) bool { return d > 0 && d%7 == 0 }},
		{"repeat 20000 back", nil, append(append([]byte(nil), far...), far...), func(_, d int) bool { return d >= 20000 }},
		// flate ignores the dictionary at BestSpeed.
		{"dictionary", far, far[5000:15000], func(l, d int) bool { return d >= 10000 || l == flate.BestSpeed && d == 0 }},
		{"random", nil, random(70000), func(_, d int) bool { return d <= 1<<15 }},
		{"empty", nil, nil, func(_, d int) bool { return d == 0 }},
	}
	for _, tc := range tests {
		for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
			t.Run(fmt.Sprintf("%s/level%d", tc.name, level), func(t *testing.T) {
				compress := func(close bool) []byte {
					var buf bytes.Buffer
					w, err := flate.NewWriterDict(&buf, level, tc.dict)
					require.NoError(t, err)
					_, err = w.Write(tc.data)
					require.NoError(t, err)
					if close {
						require.NoError(t, w.Close())
						return buf.Bytes()
					}
					require.NoError(t, w.Flush())
					require.True(t, bytes.HasSuffix(buf.Bytes(), refTail))
					return bytes.TrimSuffix(buf.Bytes(), refTail)
				}
				for _, end := range []refEnd{refEndFinal, refEndSyncFlush, refEndPeer} {
					in := compress(end == refEndFinal)
					ref := &refInflater{window: 1 << 15, takeover: true, end: end, hist: bytes.Clone(tc.dict)}
					out, err := ref.inflate(in)
					require.NoError(t, err, "end %d", end)
					require.True(t, bytes.Equal(tc.data, out), "end %d: output differs", end)
					if level == flate.HuffmanOnly || level == flate.NoCompression {
						assert.Zero(t, ref.stats.maxDist, "end %d", end)
					} else {
						assert.True(t, tc.check(level, ref.stats.maxDist), "end %d: longest distance %d", end, ref.stats.maxDist)
					}
				}
			})
		}
	}
}
