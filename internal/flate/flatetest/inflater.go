// Package flatetest holds what the tests of package flate and of the
// WebSocket package share: a reference DEFLATE decoder, an oracle for what
// a permessage-deflate receiver may make of a payload, and corpora of
// messages. It is imported by tests only.
package flatetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Inflater is the tests' reference DEFLATE (RFC 1951) decoder. It
// shares no code with package flate, tables included, so that what the
// library writes is not checked by what the library reads, and it is slow
// on purpose: bit by bit, in the manner of zlib's puff.c, which keeps it
// short enough to trust. It is stricter than compress/flate, which follows
// any reference up to 32 KiB back whatever the window and accepts codes
// zlib refuses: every back-reference must stay within Window and within
// the history, and incomplete Huffman codes are refused as zlib refuses
// them. The zero value but for Window is ready to use.
type Inflater struct {
	Window int // how far back a reference may reach
	// Takeover keeps Hist from call to call, as context takeover does;
	// without it every call starts with an empty history.
	Takeover bool
	End      End
	Hist     []byte // what references may reach: the history, then the output
	Stats    Stats  // of the last call

	in  []byte
	pos int // in bits
}

// End says how the data of one call ends and what BFINAL means in it.
// The callers differ because they check different senders.
type End int

const (
	// EndSyncFlush, the strictest and so the zero value, is for a
	// message of flate.Encoder's: its payload (RFC 7692 strips the 00 00 ff
	// ff, the decoder puts it back) must end with a sync flush's empty
	// stored block, and must not set BFINAL, which would end the stream
	// that later messages take over.
	EndSyncFlush End = iota
	// EndPeer is for a message as RFC 7692 lets any peer send it and
	// flate.Decoder reads it: with the 00 00 ff ff put back the data ends at
	// a block boundary; or a BFINAL block ends it, with nothing of the
	// payload after it; or, as zlib-based peers allow, the payload ends at
	// a byte-aligned block boundary without the sync flush.
	EndPeer
	// EndFinal is for a raw DEFLATE stream, nothing put back: its
	// BFINAL block ends it and what follows is not read, as compress/flate
	// reads a stream.
	EndFinal
)

// Stats describes what one call decoded.
type Stats struct {
	Blocks  [3]int // stored, fixed Huffman, dynamic Huffman
	Matches int
	MaxDist int // the farthest back-reference
}

var errRefSyncFlush = errors.New("no sync flush at the end")

// Inflate decodes data as r.End says and returns what it adds to Hist.
// On an error it returns what was decoded before the failure (a reader
// may have passed that on already) and leaves hist as it was. What it
// returns is valid until the next call.
func (r *Inflater) Inflate(data []byte) ([]byte, error) {
	if !r.Takeover {
		r.Hist = r.Hist[:0]
	} else if len(r.Hist) > 4*r.Window+64<<10 {
		// References cannot reach past the window: the rest is dead.
		r.Hist = append(r.Hist[:0], r.Hist[len(r.Hist)-r.Window:]...)
	}
	start := len(r.Hist)
	r.Stats = Stats{}
	r.in, r.pos = data, 0
	if r.End != EndFinal {
		r.in = append(bytes.Clone(data), tail...)
	}
	err := r.blocks(len(data))
	out := r.Hist[start:]
	if err != nil {
		r.Hist = r.Hist[:start]
	}
	return out, err
}

func (r *Inflater) blocks(payload int) error {
	syncFlush := false // the last block was an empty stored one
	for {
		switch {
		case r.End == EndSyncFlush && r.pos == 8*len(r.in):
			if !syncFlush {
				return errRefSyncFlush
			}
			return nil
		case r.End == EndPeer && r.pos == 8*len(r.in):
			return nil
		case r.End == EndPeer && r.pos == 8*payload:
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
		if final && r.End == EndSyncFlush {
			return errors.New("BFINAL set")
		}
		syncFlush = false
		switch hdr >> 1 {
		case 0:
			r.Stats.Blocks[0]++
			syncFlush, err = r.stored()
		case 1:
			r.Stats.Blocks[1]++
			err = r.codes(refFixedLit, refFixedDist)
		case 2:
			r.Stats.Blocks[2]++
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
			if r.End == EndPeer && (r.pos+7)/8 < payload {
				return errors.New("data after the final block")
			}
			return nil
		}
	}
}

func (r *Inflater) bits(n int) (int, error) {
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
func (r *Inflater) stored() (empty bool, err error) {
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
	r.Hist = append(r.Hist, r.in[p:p+n]...)
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
func (r *Inflater) decode(c *refCode) (int, error) {
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

func (r *Inflater) dynamic() (lit, dist *refCode, err error) {
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

func (r *Inflater) codes(lit, dist *refCode) error {
	for {
		sym, err := r.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			r.Hist = append(r.Hist, byte(sym))
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
		if d > r.Window {
			return fmt.Errorf("distance %d beyond the %d-byte window", d, r.Window)
		}
		if d > len(r.Hist) {
			return fmt.Errorf("distance %d before the start of the history (%d bytes)", d, len(r.Hist))
		}
		r.Stats.Matches++
		r.Stats.MaxDist = max(r.Stats.MaxDist, d)
		// Byte by byte: a match may overlap what it copies.
		for ; length > 0; length-- {
			r.Hist = append(r.Hist, r.Hist[len(r.Hist)-d])
		}
	}
}
