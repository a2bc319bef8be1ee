package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wsforge/websocket"
)

// Message contents.
//
// Every message the soak sends (the client's, and the server's own pushes)
// starts with a fixed-size ASCII header naming it, followed by a body that
// is a pure function of the header's fields and the run's seed. The reader
// can therefore check an echo byte for byte by regenerating it, without the
// writer keeping a copy, and a per-writer sequence number exposes loss,
// duplication and reordering.
//
// Bodies are cut from a corpus built once from the seed: pieces of it at
// PRNG-chosen offsets, some offsets reused within a message so that
// permessage-deflate finds matches, some reused across messages so that
// context takeover has history worth referring to. The text corpus is
// valid UTF-8 with plenty of 2-, 3- and 4-byte sequences and every cut
// falls on a rune boundary, so text messages are valid UTF-8 while their
// fragments (cut at arbitrary byte counts by the writers) split runes.

// Header layout, all ASCII so that text messages stay valid UTF-8:
//
//	[0]     kind: 'C' client message, 'P' server push, 'B' server broadcast
//	[1]     type: 'T' text, 'B' binary
//	[2]     how it was written (informative only): see the send* constants
//	[3:11]  connection slot, hex
//	[11:19] generation of that slot (reconnect count), hex
//	[19:21] writer, hex
//	[21:33] sequence number, hex
//	[33:41] total message length including the header, hex
//	[41:49] FNV-1a of bytes [0:41], hex: a damaged header is corruption,
//	        not a sequence error
//	[49]    '\n'
const hdrLen = 50

const (
	kindClient    = 'C'
	kindPush      = 'P'
	kindBroadcast = 'B'
)

// How a message was written; recorded in the header so that a corruption
// report says which write path produced it.
const (
	sendWrite    = 'W' // WriteMessage
	sendStream   = 'S' // NextWriter + several Write/WriteString calls
	sendReadFrom = 'R' // NextWriter + io.Copy from a short-read reader (ReadFrom)
	sendPrepared = 'P' // WritePreparedMessage
)

type header struct {
	kind, typ, method byte
	conn, gen         uint32
	writer            int
	seq               uint64
	length            int
}

func (h *header) text() bool { return h.typ == 'T' }

func putHex(dst []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}

func getHex(src []byte) (uint64, bool) {
	var v uint64
	for _, c := range src {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func headerSum(b []byte) uint64 {
	h := fnv.New32a()
	h.Write(b[:41])
	return uint64(h.Sum32())
}

func (h *header) encode(dst []byte) {
	dst[0], dst[1], dst[2] = h.kind, h.typ, h.method
	putHex(dst[3:11], uint64(h.conn))
	putHex(dst[11:19], uint64(h.gen))
	putHex(dst[19:21], uint64(h.writer))
	putHex(dst[21:33], h.seq)
	putHex(dst[33:41], uint64(h.length))
	putHex(dst[41:49], headerSum(dst))
	dst[49] = '\n'
}

func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < hdrLen {
		return h, fmt.Errorf("short header (%d bytes)", len(b))
	}
	sum, ok := getHex(b[41:49])
	if !ok || sum != headerSum(b) || b[49] != '\n' {
		return h, fmt.Errorf("header checksum mismatch: %q", b[:hdrLen])
	}
	h.kind, h.typ, h.method = b[0], b[1], b[2]
	conn, _ := getHex(b[3:11])
	gen, _ := getHex(b[11:19])
	w, _ := getHex(b[19:21])
	seq, _ := getHex(b[21:33])
	n, _ := getHex(b[33:41])
	h.conn, h.gen, h.writer, h.seq, h.length = uint32(conn), uint32(gen), int(w), seq, int(n)
	return h, nil
}

// prng is splitmix64: tiny, allocation-free and good enough to pick sizes,
// offsets and actions. Its output depends only on its seed.
type prng struct{ s uint64 }

func (r *prng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// n returns a value in [0, k); k must be positive.
func (r *prng) n(k int) int { return int(r.next() % uint64(k)) }

// between returns a value in [lo, hi].
func (r *prng) between(lo, hi int) int { return lo + r.n(hi-lo+1) }

func (r *prng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *prng) chance(p float64) bool { return r.float() < p }

// exp returns an exponentially distributed value with the given mean.
func (r *prng) exp(mean float64) float64 { return -mean * math.Log(1-r.float()) }

// jitter returns a duration uniformly distributed in [d/2, 3d/2): for
// keep-alives, whose gaps must stay well below the read timeout (an
// exponential gap would exceed it now and then).
func (r *prng) jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(r.n(int(d)+1))
}

// seedOf mixes values into one seed, so that every (run seed, purpose,
// slot, generation, writer, sequence) tuple gets an independent stream.
func seedOf(vals ...uint64) uint64 {
	r := prng{s: 0x243f6a8885a308d3}
	for _, v := range vals {
		r.s ^= v
		r.s = r.next()
	}
	return r.s
}

// Purposes mixed into seeds, so that e.g. a writer's action stream and the
// body of its message 0 do not coincide.
const (
	purposeBody = iota + 1
	purposeSession
	purposeWriter
	purposeReader
	purposeServer
	purposeCorpus
	purposeSchedule
)

// corpus is the material bodies are cut from. The first asciiLen bytes of
// each are plain ASCII, used to fill remainders too short for a rune-safe
// cut.
type corpus struct {
	text, binary []byte
}

const (
	corpusLen = 256 << 10
	asciiLen  = 4 << 10
)

// Words of several scripts: ASCII, Latin with diacritics (2-byte UTF-8),
// Greek and Cyrillic (2-byte), CJK (3-byte), emoji and a supplementary-plane
// CJK ideograph (4-byte), plus edge cases: U+FEFF, U+FFFD, U+10FFFF, NUL.
var words = []string{
	"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "websocket",
	"frame", "message", "deflate", "inflate", "window", "fragment", "echo",
	`{"id":`, `"name":"`, `"ts":"2024-05-01T12:00:00.000Z"`, `},{`, "</div>",
	"café", "naïve", "façade", "Ærøskøbing", "Größe", "λόγος", "αβγδε",
	"привет", "мир", "日本語", "中文字符", "한국어", "テキスト", "😀", "🎉🚀",
	"𠜎𠜱", "\ufeff", "\ufffd", "\U0010ffff", "\x00", "\t", "\n", "  ",
}

func newCorpus(seed uint64) *corpus {
	r := prng{s: seedOf(seed, purposeCorpus)}
	return &corpus{text: buildCorpus(&r, true), binary: buildCorpus(&r, false)}
}

func buildCorpus(r *prng, text bool) []byte {
	b := make([]byte, 0, corpusLen+8)
	for len(b) < asciiLen {
		b = append(b, byte(r.between(' ', '~')))
	}
	for len(b) < corpusLen {
		switch k := r.n(10); {
		case k < 6:
			b = append(b, words[r.n(len(words))]...)
			b = append(b, ' ')
		case k < 8 && text:
			// Random code points from every UTF-8 length class.
			for i := r.between(1, 12); i > 0; i-- {
				var c rune
				switch r.n(4) {
				case 0:
					c = rune(r.between(0x20, 0x7e))
				case 1:
					c = rune(r.between(0x80, 0x7ff))
				case 2:
					c = rune(r.between(0x800, 0xffff))
					if c >= 0xd800 && c <= 0xdfff {
						c = 0xfffd // surrogates are not valid UTF-8
					}
				default:
					c = rune(r.between(0x10000, 0x10ffff))
				}
				b = utf8.AppendRune(b, c)
			}
		case k < 8:
			// Incompressible bytes, and runs that compress to nothing.
			for i := r.between(1, 256); i > 0; i-- {
				b = append(b, byte(r.next()))
			}
		default:
			c := byte('a' + r.n(26))
			if !text && r.n(2) == 0 {
				c = byte(r.n(2) * 0xff)
			}
			b = append(b, bytes.Repeat([]byte{c}, r.between(1, 300))...)
		}
	}
	b = b[:corpusLen]
	if text {
		// The cut may have split the last rune.
		for !utf8.Valid(b[asciiLen:]) {
			b = b[:len(b)-1]
		}
	}
	return b
}

// bodyGen yields the body of one message as a sequence of corpus slices.
// The writer copies them into its buffer; the reader compares received
// bytes against them. Both see the same sequence for the same header.
type bodyGen struct {
	rng    prng
	src    []byte
	text   bool
	left   int
	recent [8]int
	nrec   int
}

func (g *bodyGen) init(c *corpus, seed uint64, h *header) {
	g.rng = prng{s: seedOf(seed, purposeBody, uint64(h.kind), uint64(h.conn), uint64(h.gen), uint64(h.writer), h.seq)}
	g.text = h.text()
	g.src = c.binary
	if g.text {
		g.src = c.text
	}
	g.left = h.length - hdrLen
	g.nrec = 0
}

func isRuneStart(b byte) bool { return b&0xc0 != 0x80 }

// next returns the next piece of the body, or nil at its end.
func (g *bodyGen) next() []byte {
	if g.left <= 0 {
		return nil
	}
	limit := 64
	switch k := g.rng.n(16); {
	case k >= 15:
		limit = 16 << 10
	case k >= 10:
		limit = 1 << 10
	}
	if limit > g.left {
		limit = g.left
	}
	n := 1 + g.rng.n(limit)
	var seg []byte
	if g.left >= 8 {
		var off int
		if g.nrec > 0 && g.rng.n(4) == 0 {
			off = g.recent[g.rng.n(min(g.nrec, len(g.recent)))]
		} else {
			off = g.rng.n(len(g.src) - n)
		}
		if off+n > len(g.src) {
			off = len(g.src) - n
		}
		start, end := off, off+n
		if g.text {
			for start < end && !isRuneStart(g.src[start]) {
				start++
			}
			for end > start && end < len(g.src) && !isRuneStart(g.src[end]) {
				end--
			}
		}
		if end > start {
			seg = g.src[start:end]
			g.recent[g.nrec%len(g.recent)] = off
			g.nrec++
		}
	}
	if seg == nil {
		// Too little room for a rune-safe cut: plain ASCII.
		n = min(n, asciiLen)
		off := g.rng.n(asciiLen - n + 1)
		seg = g.src[off : off+n]
	}
	g.left -= len(seg)
	return seg
}

// appendMessage appends the whole message for h (header and body) to dst.
func appendMessage(dst []byte, c *corpus, seed uint64, h *header) []byte {
	start := len(dst)
	dst = slices.Grow(dst, h.length)
	dst = dst[:start+hdrLen]
	h.encode(dst[start:])
	var g bodyGen
	g.init(c, seed, h)
	for seg := g.next(); seg != nil; seg = g.next() {
		dst = append(dst, seg...)
	}
	return dst
}

// verifier checks one received message, fed in arbitrary chunks.
type verifier struct {
	c    *corpus
	seed uint64

	hdr  [hdrLen]byte
	nh   int
	h    header
	hok  bool
	gen  bodyGen
	seg  []byte
	n    int // bytes received so far
	bad  string
	badN int // offset of the first bad byte
}

func (v *verifier) reset() {
	v.nh, v.hok, v.seg, v.n, v.bad, v.badN = 0, false, nil, 0, "", 0
}

func (v *verifier) fail(at int, format string, args ...any) {
	if v.bad == "" {
		v.bad = fmt.Sprintf(format, args...)
		v.badN = at
	}
}

func (v *verifier) write(p []byte) {
	if v.bad != "" {
		v.n += len(p)
		return
	}
	if v.nh < hdrLen {
		k := copy(v.hdr[v.nh:], p)
		v.nh += k
		v.n += k
		p = p[k:]
		if v.nh < hdrLen {
			return
		}
		h, err := parseHeader(v.hdr[:])
		if err != nil {
			v.fail(0, "%v", err)
			return
		}
		if h.length < hdrLen {
			v.fail(0, "header declares length %d", h.length)
			return
		}
		v.h, v.hok = h, true
		v.gen.init(v.c, v.seed, &v.h)
	}
	for len(p) > 0 {
		if len(v.seg) == 0 {
			v.seg = v.gen.next()
			if v.seg == nil {
				v.fail(v.n, "%d bytes beyond the declared length %d", len(p), v.h.length)
				v.n += len(p)
				return
			}
		}
		k := min(len(p), len(v.seg))
		if !bytes.Equal(p[:k], v.seg[:k]) {
			i := 0
			for p[i] == v.seg[i] {
				i++
			}
			v.fail(v.n+i, "byte %d is %#02x, want %#02x", v.n+i, p[i], v.seg[i])
			v.n += len(p)
			return
		}
		v.seg = v.seg[k:]
		p = p[k:]
		v.n += k
	}
}

// describe names the message being verified, for failure reports.
func (v *verifier) describe() string {
	if !v.hok {
		return fmt.Sprintf("a message whose header has not arrived (%d bytes)", v.nh)
	}
	return fmt.Sprintf("message kind %c type %c method %c writer %d seq %d length %d",
		v.h.kind, v.h.typ, v.h.method, v.h.writer, v.h.seq, v.h.length)
}

// finish checks the end of the message, received with type mt. It returns
// the parsed header and "" if the message is intact, else a description of
// the damage.
func (v *verifier) finish(mt int) (header, string) {
	switch {
	case v.bad != "":
		return v.h, v.bad
	case !v.hok:
		return v.h, "message of " + strconv.Itoa(v.n) + " bytes, shorter than a header"
	case v.n != v.h.length:
		return v.h, fmt.Sprintf("message has %d bytes, header says %d", v.n, v.h.length)
	case (mt == websocket.TextMessage) != v.h.text():
		return v.h, fmt.Sprintf("received as type %d, header says %c", mt, v.h.typ)
	}
	return v.h, ""
}
