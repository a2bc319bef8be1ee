package flatetest

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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

// TestInflater checks the reference on hand-made streams, one case per
// rule of RFC 1951 and RFC 7692 it enforces (the function is long for its
// table of cases, not for its logic).
func TestInflater(t *testing.T) {
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
		end    End
		window int // 32 KiB when 0
		hist   string
		data   []byte
		want   string // on an error, what was decoded before it
		err    string // part of the error
		errIs  error
		stats  *Stats
	}{
		// Stored blocks.
		{name: "stored", end: EndFinal, data: finalABC, want: "abc", stats: &Stats{Blocks: [3]int{1, 0, 0}}},
		{name: "stored length check", end: EndFinal, data: []byte{0x01, 3, 0, 0, 0, 'a', 'b', 'c'}, err: "length check"},
		{name: "stored cut short", end: EndFinal, data: finalABC[:len(finalABC)-1], errIs: io.ErrUnexpectedEOF},
		{name: "stored header cut short", end: EndFinal, data: finalABC[:3], errIs: io.ErrUnexpectedEOF},
		{name: "empty stream", end: EndFinal, errIs: io.ErrUnexpectedEOF},

		// Fixed Huffman blocks.
		{name: "fixed", end: EndFinal,
			data: b().block(true, 1).sym(fl, 'a').sym(fl, 'b').sym(fl, 258).sym(fd, 1).sym(fl, 265).put(1, 1).sym(fd, 1).sym(fl, 256).b,
			want: strings.Repeat("ab", 9), stats: &Stats{Blocks: [3]int{0, 1, 0}, Matches: 2, MaxDist: 2}},
		{name: "longest matches", end: EndFinal,
			data: b().block(true, 1).sym(fl, 'a').sym(fl, 285).sym(fd, 0).sym(fl, 284).put(30, 5).sym(fd, 0).sym(fl, 256).b,
			want: strings.Repeat("a", 1+258+257), stats: &Stats{Blocks: [3]int{0, 1, 0}, Matches: 2, MaxDist: 1}},
		{name: "match before any history", end: EndFinal, data: []byte{0x03, 0x02, 0x00}, err: "before the start of the history"},
		{name: "match into the history", end: EndFinal, hist: "x", data: []byte{0x03, 0x02, 0x00},
			want: "xxx", stats: &Stats{Blocks: [3]int{0, 1, 0}, Matches: 1, MaxDist: 1}},
		{name: "block type 3", end: EndFinal, data: []byte{0x07}, err: "block type 3"},
		{name: "length symbol 286", end: EndFinal, data: b().block(true, 1).sym(fl, 'a').sym(fl, 286).b, want: "a", err: "invalid length symbol"},
		{name: "distance symbol 30", end: EndFinal, data: b().block(true, 1).sym(fl, 'a').sym(fl, 257).sym(fd, 30).b, want: "a", err: "invalid distance symbol"},

		// Dynamic Huffman blocks.
		{name: "dynamic", end: EndFinal,
			data: b().dynamic(true, lit4, dist1).sym(c4, 'a').sym(c4, 'b').sym(c4, 257).sym(c1, 0).sym(c4, 256).b,
			want: "abbbb", stats: &Stats{Blocks: [3]int{0, 0, 1}, Matches: 1, MaxDist: 1}},
		{name: "empty distance code", end: EndFinal,
			data: b().dynamic(true, lit2, refLens(1)).sym(c2, 'a').sym(c2, 256).b, want: "a"},
		{name: "dynamic cut short", end: EndFinal,
			data: b().dynamic(true, litCut, distCut).sym(newRefTestCode(litCut), 'a').b, want: "a", errIs: io.ErrUnexpectedEOF},
		{name: "incomplete literal/length code", end: EndFinal, data: b().dynamic(true, refLens(258, 'a', 2, 'b', 2, 256, 2), dist1).b, err: "literal/length code: incomplete"},
		{name: "incomplete distance code", end: EndFinal, data: b().dynamic(true, lit4, refLens(2, 0, 2, 1, 2)).b, err: "distance code: incomplete"},
		{name: "over-subscribed code", end: EndFinal, data: b().dynamic(true, refLens(257, 'a', 1, 'b', 1, 256, 1), dist1).b, err: "over-subscribed"},
		{name: "no end-of-block code", end: EndFinal, data: b().dynamic(true, refLens(257, 'a', 1, 'b', 1), dist1).b, err: "no end-of-block code"},
		{name: "code-length code of one one-bit code", end: EndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(newRefTestCode(refLens(19, 8, 1))).b, err: "code-length code: incomplete"},
		{name: "repeat with no previous length", end: EndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(refTestCL).sym(refTestCL, 16).put(0, 2).b, err: "repeat with no previous length"},
		{name: "code lengths overrun", end: EndFinal,
			data: b().block(true, 2).put(0, 5).put(0, 5).clCode(refTestCL).sym(refTestCL, 18).put(127, 7).sym(refTestCL, 18).put(127, 7).b, err: "overrun"},
		{name: "too many codes", end: EndFinal, data: b().block(true, 2).put(30, 5).put(0, 5).put(0, 4).b, err: "too many codes"},

		// The window and the history.
		{name: "at the window's edge", window: 256, hist: seq(256),
			data: b().block(false, 1).sym(fl, 257).sym(fd, 15).put(63, 6).sym(fl, 256).flush(),
			want: seq(3), stats: &Stats{Blocks: [3]int{1, 1, 0}, Matches: 1, MaxDist: 256}},
		{name: "beyond the window", window: 256, hist: seq(300),
			data: b().block(false, 1).sym(fl, 'a').sym(fl, 257).sym(fd, 16).put(0, 7).sym(fl, 256).flush(),
			want: "a", err: "distance 257 beyond the 256-byte window"},
		{name: "before the history", hist: seq(10),
			data: b().block(false, 1).sym(fl, 257).sym(fd, 6).put(2, 2).sym(fl, 256).flush(),
			err:  "distance 11 before the start of the history"},
		{name: "what came before a failure", end: EndPeer,
			data: b().block(false, 1).sym(fl, 'a').sym(fl, 'b').sym(fl, 257).sym(fd, 4).put(0, 1).sym(fl, 256).flush(),
			want: "ab", err: "distance 5 before the start of the history"},

		// Where a message ends, and BFINAL.
		{name: "empty message", data: []byte{0x00}, stats: &Stats{Blocks: [3]int{1, 0, 0}}},
		{name: "empty payload", data: []byte{}, errIs: io.ErrUnexpectedEOF},
		{name: "empty payload from a peer", end: EndPeer, data: []byte{}},
		{name: "stored message", data: append(bytes.Clone(storedABC), 0x00), want: "abc", stats: &Stats{Blocks: [3]int{2, 0, 0}}},
		{name: "dynamic message", end: EndPeer,
			data: b().dynamic(false, lit4, dist1).sym(c4, 'a').sym(c4, 'b').sym(c4, 257).sym(c1, 0).sym(c4, 256).flush(),
			want: "abbbb", stats: &Stats{Blocks: [3]int{1, 0, 1}, Matches: 1, MaxDist: 1}},
		{name: "no sync flush", data: storedABC, want: "abc", errIs: io.ErrUnexpectedEOF},
		{name: "no sync flush from a peer", end: EndPeer, data: storedABC, want: "abc"},
		{name: "tail read as data", data: []byte{0x00, 4, 0, 0xfb, 0xff}, want: "\x00\x00\xff\xff", errIs: errRefSyncFlush},
		{name: "tail read as data from a peer", end: EndPeer, data: []byte{0x00, 4, 0, 0xfb, 0xff}, want: "\x00\x00\xff\xff"},
		{name: "truncated message", data: []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, errIs: io.ErrUnexpectedEOF},
		{name: "truncated message from a peer", end: EndPeer, data: []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, errIs: io.ErrUnexpectedEOF},
		{name: "BFINAL", data: finalABC, err: "BFINAL set"},
		{name: "BFINAL from a peer", end: EndPeer, data: finalABC, want: "abc"},
		{name: "BFINAL within the last byte", end: EndPeer, data: []byte{0x03, 0x00}},
		{name: "data after BFINAL", data: append(bytes.Clone(finalABC), 0), err: "BFINAL set"},
		{name: "data after BFINAL from a peer", end: EndPeer, data: append(bytes.Clone(finalABC), 0), want: "abc", err: "data after the final block"},
		{name: "byte after BFINAL from a peer", end: EndPeer, data: []byte{0x03, 0x00, 0x00}, err: "data after the final block"},
		{name: "data after BFINAL in a stream", end: EndFinal, data: append(bytes.Clone(finalABC), 0xff, 0xff), want: "abc"},
		{name: "no BFINAL in a stream", end: EndFinal, data: b().block(false, 1).sym(fl, 256).b, errIs: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Inflater{Window: 1 << 15, Takeover: true, End: tc.end, Hist: []byte(tc.hist)}
			if tc.window != 0 {
				r.Window = tc.window
			}
			got, err := r.Inflate(tc.data)
			assert.Equal(t, tc.want, string(got))
			if tc.err == "" && tc.errIs == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.hist+tc.want, string(r.Hist), "the output joins the history")
			} else {
				if tc.errIs != nil {
					require.ErrorIs(t, err, tc.errIs)
				}
				if tc.err != "" {
					require.ErrorContains(t, err, tc.err)
				}
				assert.Equal(t, tc.hist, string(r.Hist), "a failure leaves the history as it was")
			}
			if tc.stats != nil {
				assert.Equal(t, *tc.stats, r.Stats)
			}
		})
	}
}

// TestInflaterHistory checks what the reference keeps from one message
// to the next.
func TestInflaterHistory(t *testing.T) {
	abc := (&refBits{}).block(false, 0).stored('a', 'b', 'c').flush()
	// A copy of the three bytes before it.
	copy3 := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 2).sym(refTestLit, 256).flush()
	for _, takeover := range []bool{true, false} {
		r := &Inflater{Window: 1 << 15, Takeover: takeover}
		got, err := r.Inflate(abc)
		require.NoError(t, err)
		require.Equal(t, "abc", string(got))
		got, err = r.Inflate(copy3)
		if takeover {
			require.NoError(t, err)
			assert.Equal(t, "abc", string(got))
			assert.Equal(t, 3, r.Stats.MaxDist)
			assert.Equal(t, "abcabc", string(r.Hist))
		} else {
			assert.ErrorContains(t, err, "before the start of the history", "without takeover")
			assert.Empty(t, r.Hist)
		}
	}

	// A failed message leaves the history to the next.
	r := &Inflater{Window: 1 << 15, Takeover: true}
	_, err := r.Inflate(abc)
	require.NoError(t, err)
	_, err = r.Inflate([]byte{0x07})
	require.Error(t, err)
	got, err := r.Inflate(copy3)
	require.NoError(t, err)
	assert.Equal(t, "abc", string(got))

	// A long history is cut down, to no less than the window.
	r = &Inflater{Window: 256, Takeover: true}
	big := make([]byte, 60000)
	for i := range big {
		big[i] = byte(i % 251)
	}
	for i := 0; i < 2; i++ {
		_, err := r.Inflate((&refBits{}).block(false, 0).stored(big...).flush())
		require.NoError(t, err)
	}
	edge := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 15).put(63, 6).sym(refTestLit, 256).flush()
	got, err = r.Inflate(edge)
	require.NoError(t, err)
	assert.Equal(t, big[len(big)-256:][:3], got)
	assert.Less(t, len(r.Hist), 4*256+64<<10)
	beyond := (&refBits{}).block(false, 1).sym(refTestLit, 257).sym(refTestDist, 16).put(0, 7).sym(refTestLit, 256).flush()
	_, err = r.Inflate(beyond)
	assert.ErrorContains(t, err, "beyond the 256-byte window")
}

// TestInflaterFlate checks the reference against compress/flate on
// whole streams and on sync-flushed messages, and that the distances it
// reports are real ones.
func TestInflaterFlate(t *testing.T) {
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
		{"text", nil, bytes.Join(SnapshotJSON(1, 30), nil)[:100000], func(_, d int) bool { return d > 1<<14 && d <= 1<<15 }},
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
					require.True(t, bytes.HasSuffix(buf.Bytes(), tail))
					return bytes.TrimSuffix(buf.Bytes(), tail)
				}
				for _, end := range []End{EndFinal, EndSyncFlush, EndPeer} {
					in := compress(end == EndFinal)
					ref := &Inflater{Window: 1 << 15, Takeover: true, End: end, Hist: bytes.Clone(tc.dict)}
					out, err := ref.Inflate(in)
					require.NoError(t, err, "end %d", end)
					require.True(t, bytes.Equal(tc.data, out), "end %d: output differs", end)
					if level == flate.HuffmanOnly || level == flate.NoCompression {
						assert.Zero(t, ref.Stats.MaxDist, "end %d", end)
					} else {
						assert.True(t, tc.check(level, ref.Stats.MaxDist), "end %d: longest distance %d", end, ref.Stats.MaxDist)
					}
				}
			})
		}
	}
}
