package websocket

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"sync"
)

// Decompressing received messages (RFC 7692 section 7.2.2).
//
// A compressed message's payload is a DEFLATE (RFC 1951) stream cut after a
// sync flush; appending the four bytes 00 00 ff ff restores the flush. The
// inflater here decodes it straight out of the read buffer (unmasking frame
// by frame) into a window that doubles as the output buffer and, with
// context takeover, as the history the peer's next message may refer to.
// compress/flate would serve too, but its reader cannot be handed the
// window it should keep (each message would copy the 32 KiB dictionary in
// twice), pulls its input a byte at a time through an interface, and
// allocates its long-code tables for every dynamic block.
//
// Memory: with context takeover an idle connection holds only the window
// (2^windowBits bytes, allocated on the first compressed message); without
// it, nothing: the window comes from a pool for the length of a message.
// The Huffman tables (about 3 KiB) are always pooled.
//
// Every length the peer states is checked against what exists (the window,
// the input), so corrupt or hostile data ends with errInvalidCompressed,
// never a panic or an allocation; output is produced at most a window at a
// time and handed to the reader, so the read limit stops a decompression
// bomb after one window.

// deflateTail is the end of the sync flush that RFC 7692 removes from each
// message and the receiver puts back.
var deflateTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// errInvalidCompressed fails a message whose compressed data does not
// inflate; the Autobahn suite expects 1007 for it.
var errInvalidCompressed = &ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid compressed data"}

// errInflateEnd is nextInput's report that the message's input, tail
// included, is used up.
var errInflateEnd = errors.New("websocket: end of compressed input")

const (
	inflatePrimaryBits = 9 // codes up to this long decode with one lookup
	inflateMaxCodeLen  = 15
	inflateMaxWindow   = 1 << 15
	// inflateMinWindow: zlib cannot compress with a 256-byte window and
	// uses 512 when told 8 (see compression_negotiate.go), so that is
	// the least kept.
	inflateMinWindow = 1 << 9
)

// huffTable decodes one canonical Huffman code. primary holds, for every
// value of the next pbits input bits, sym<<4|length of the code they start
// with; 0 sends the decoder to the slow path (a longer code, or no code at
// all). pbits is the longest code length, at most inflatePrimaryBits, so
// that a small code (the code-length code, most distance codes) fills a
// small table. count and symbol are the canonical description (symbols
// sorted by code length) the slow path walks.
type huffTable struct {
	pmask   uint64
	primary [1 << inflatePrimaryBits]uint16
	count   [inflateMaxCodeLen + 1]uint16
	symbol  [288]uint16
}

// init builds the table for the code lengths lengths. An over-subscribed
// set is invalid; an incomplete one is accepted, as zlib does, only when it
// is a single one-bit code (or no code at all) and not a code-length code.
func (h *huffTable) init(lengths []uint8, codeLengthCode bool) bool {
	h.count = [inflateMaxCodeLen + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	h.count[0] = 0
	left, maxLen := 1, 0
	for l := 1; l <= inflateMaxCodeLen; l++ {
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
	var offs [inflateMaxCodeLen + 2]uint16
	for l := 1; l <= inflateMaxCodeLen; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	pbits := min(max(maxLen, 1), inflatePrimaryBits)
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

// The fixed codes of RFC 1951 section 3.2.6, built once.
var fixedLit, fixedDist huffTable

func init() {
	var lengths [288]uint8
	for i := range lengths {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		default:
			lengths[i] = 8
		}
	}
	fixedLit.init(lengths[:], false)
	// Codes 30 and 31 exist but mean nothing: decoding one is an error.
	var dist [32]uint8
	for i := range dist {
		dist[i] = 5
	}
	fixedDist.init(dist[:], false)
}

var (
	inflateLenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	inflateLenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	inflateDistBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	inflateDistExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// inflateCodeLenOrder is the order in which a dynamic block lists the
	// lengths of the code-length code.
	inflateCodeLenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// inflateTables is the pooled working memory of one message: the tables of
// the dynamic block being decoded.
type inflateTables struct {
	lit, dist, codeLen huffTable
	lengths            [286 + 30]uint8
}

var (
	inflateTablePool  = sync.Pool{New: func() any { return new(inflateTables) }}
	inflateWindowPool sync.Pool // *buffer of inflateMaxWindow bytes
)

// Decoder states between calls of decode.
const (
	inflHeader  = iota // at a block boundary
	inflStored         // inside a stored block
	inflHuffman        // inside a Huffman-coded block
)

// inflateState is a Conn's decompressor for received messages. It is used
// by the reading goroutine only.
type inflateState struct {
	c        *Conn
	takeover bool
	wsize    int // window size

	// hist is the window: output is written at w, handed to the reader
	// from rd, and everything before w (and, once full is set, after it)
	// is history for back-references. With takeover it persists between
	// messages; otherwise it is pooled and present only during one.
	hist []byte
	hbuf *buffer // hist's pooled buffer, without takeover
	w    int
	rd   int
	full bool

	// Input: in[ip:] is unmasked payload not yet taken into the bit
	// accumulator acc, whose nb low bits are valid.
	in   []byte
	ip   int
	acc  uint64
	nb   uint
	tail bool  // deflateTail has been handed out (in is it)
	err  error // why input stopped (errInflateEnd or a connection error)

	active bool // a message is being inflated
	done   bool // its stream is complete
	state  int
	final  bool // the current block is the last of the stream (BFINAL)
	left   int  // bytes left in the stored block
	lit    *huffTable
	dist   *huffTable
	tables *inflateTables
	// A back-reference not finished when the window filled up.
	copyLen, copyDist int

	n       int64 // bytes delivered from the current message
	inTotal int64 // compressed bytes of the current message taken in
}

func newInflateState(c *Conn, takeover bool, windowBits int) *inflateState {
	return &inflateState{c: c, takeover: takeover, wsize: max(1<<windowBits, inflateMinWindow)}
}

// heldBytes reports the memory the inflater keeps between messages.
func (s *inflateState) heldBytes() int {
	if s.takeover {
		return cap(s.hist)
	}
	return 0
}

// start prepares to inflate a new message, whose first frame header has
// been read.
func (s *inflateState) start() {
	if s.takeover {
		if s.hist == nil {
			s.hist = make([]byte, s.wsize)
		}
	} else {
		if b, ok := inflateWindowPool.Get().(*buffer); ok {
			s.hbuf = b
		} else {
			s.hbuf = &buffer{b: make([]byte, inflateMaxWindow)}
		}
		s.hist = s.hbuf.b[:s.wsize]
		s.w, s.full = 0, false
	}
	if s.w == len(s.hist) {
		s.w, s.full = 0, true
	}
	s.rd = s.w
	s.in, s.ip, s.acc, s.nb, s.tail, s.err = nil, 0, 0, 0, false, nil
	s.active, s.done, s.state, s.final = true, false, inflHeader, false
	s.copyLen, s.n, s.inTotal = 0, 0, 0
	s.tables = inflateTablePool.Get().(*inflateTables)
}

// finish ends a message, returning pooled memory.
func (s *inflateState) finish() {
	if !s.active {
		return
	}
	s.active = false
	s.in = nil
	inflateTablePool.Put(s.tables)
	s.tables, s.lit, s.dist = nil, nil, nil
	if !s.takeover {
		inflateWindowPool.Put(s.hbuf)
		s.hbuf, s.hist = nil, nil
	}
}

// nextInput makes in the next run of the message's compressed input: the
// rest of the current frame's payload in the read buffer (unmasked in
// place), the following frames, and finally deflateTail. It returns
// errInflateEnd after the tail, or the error that failed the connection.
func (s *inflateState) nextInput() error {
	c := s.c
	for c.frameLeft == 0 {
		if c.frameFinal {
			if !s.tail {
				s.tail = true
				s.in, s.ip = deflateTail[:], 0
				return nil
			}
			return errInflateEnd
		}
		if err := c.nextDataFrame(); err != nil {
			return err
		}
	}
	if c.rpos == c.rend {
		if err := c.fill(1); err != nil {
			return err
		}
	}
	n := c.rend - c.rpos
	if int64(n) > c.frameLeft {
		n = int(c.frameLeft)
	}
	p := c.rbuf[c.rpos : c.rpos+n]
	c.rpos += n
	if err := c.payloadArrived(p); err != nil {
		return err
	}
	s.in, s.ip = p, 0
	s.inTotal += int64(len(p))
	return nil
}

// pull moves buffered input into the accumulator, without I/O.
func (s *inflateState) pull() {
	for s.nb <= 56 && s.ip < len(s.in) {
		s.acc |= uint64(s.in[s.ip]) << s.nb
		s.ip++
		s.nb += 8
	}
}

// more adds at least one byte to the accumulator, reading the network if
// needed. It fails at the end of the input or of the connection.
func (s *inflateState) more() error {
	for s.ip == len(s.in) {
		if s.err != nil {
			return s.err
		}
		if err := s.nextInput(); err != nil {
			s.err = err
			return err
		}
	}
	s.pull()
	return nil
}

// need makes n bits (n <= 32) available.
func (s *inflateState) need(n uint) error {
	for s.nb < n {
		if err := s.more(); err != nil {
			return s.inputError(err)
		}
	}
	return nil
}

// inputError turns the end of the input inside the stream into corrupt
// data; a connection failure stays what it is.
func (s *inflateState) inputError(err error) error {
	if err == errInflateEnd {
		return s.corrupt()
	}
	return err
}

func (s *inflateState) corrupt() error {
	return s.c.failProtocol(errInvalidCompressed)
}

func (s *inflateState) bits(n uint) int {
	v := int(s.acc & (1<<n - 1))
	s.acc >>= n
	s.nb -= n
	return v
}

// decodeSym reads one symbol of the code h.
func (s *inflateState) decodeSym(h *huffTable) (int, error) {
	for {
		if s.nb < inflateMaxCodeLen {
			s.pull()
		}
		e := h.primary[s.acc&h.pmask]
		if l := uint(e & 15); l != 0 && l <= s.nb {
			s.acc >>= l
			s.nb -= l
			return int(e >> 4), nil
		}
		if s.nb >= inflateMaxCodeLen {
			return s.decodeSlow(h)
		}
		if err := s.more(); err != nil {
			if err != errInflateEnd {
				return 0, err
			}
			// The stream may still end in fewer bits than the longest
			// code: walk the canonical code with what there is.
			return s.decodeSlow(h)
		}
	}
}

// decodeSlow walks the canonical code bit by bit: for codes longer than
// the primary table, and to reject bit patterns that are no code.
func (s *inflateState) decodeSlow(h *huffTable) (int, error) {
	code, first, index := 0, 0, 0
	for l := uint(1); l <= inflateMaxCodeLen && l <= s.nb; l++ {
		code |= int(s.acc>>(l-1)) & 1
		count := int(h.count[l])
		if code-count < first {
			s.acc >>= l
			s.nb -= l
			return int(h.symbol[index+code-first]), nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, s.corrupt()
}

// atEnd reports whether the message's input is used up, the restored tail
// included, at a block boundary (where it is called). That is normally
// the sync flush: an empty stored block whose LEN and NLEN are the tail.
// A block of the payload that happens to end exactly there (a stored
// block whose last bytes are the tail, say) ends the message too, as it
// does for zlib-based peers. A stream that merely runs out is corrupt.
func (s *inflateState) atEnd() bool {
	return s.tail && s.ip == len(s.in) && s.nb == 0
}

// decode inflates into the window until it is full or the message's stream
// is complete (done).
func (s *inflateState) decode() error {
	for {
		switch s.state {
		case inflHeader:
			if s.final {
				return s.endAfterFinal()
			}
			if s.atEnd() {
				s.done = true
				return nil
			}
			if err := s.need(3); err != nil {
				return err
			}
			// Whether this block's header is the first bit of the
			// restored tail: the payload ended on a byte boundary
			// after a complete block.
			atTail := s.tail && s.nb == 8*uint(s.ip)
			s.final = s.bits(1) == 1
			switch s.bits(2) {
			case 0:
				if err := s.storedHeader(); err != nil {
					if err == errInflateEnd && atTail {
						// The payload ended at a block boundary
						// without the sync flush RFC 7692 asks
						// for, and the restored tail reads as a
						// truncated stored block. zlib-based
						// peers accept such messages; so do we.
						s.done = true
						return nil
					}
					if err == errInflateEnd {
						return s.corrupt()
					}
					return err
				}
				s.state = inflStored
			case 1:
				s.lit, s.dist = &fixedLit, &fixedDist
				s.state = inflHuffman
			case 2:
				if err := s.dynamicHeader(); err != nil {
					return err
				}
				s.lit, s.dist = &s.tables.lit, &s.tables.dist
				s.state = inflHuffman
			default:
				return s.corrupt()
			}
		case inflStored:
			for s.left > 0 {
				room := len(s.hist) - s.w
				if room == 0 {
					return nil
				}
				if s.nb >= 8 {
					s.hist[s.w] = byte(s.acc)
					s.acc >>= 8
					s.nb -= 8
					s.w++
					s.left--
					continue
				}
				if s.ip == len(s.in) {
					if err := s.more(); err != nil {
						return s.inputError(err)
					}
					continue
				}
				n := copy(s.hist[s.w:s.w+min(room, s.left)], s.in[s.ip:])
				s.ip += n
				s.w += n
				s.left -= n
			}
			s.state = inflHeader
		case inflHuffman:
			more, err := s.huffmanBlock()
			if err != nil || more {
				return err
			}
			s.state = inflHeader
		}
	}
}

// storedHeader reads LEN and NLEN after skipping to a byte boundary. It
// returns errInflateEnd if the input ends inside them after reaching the
// restored tail.
func (s *inflateState) storedHeader() error {
	s.bits(s.nb % 8)
	for s.nb < 32 {
		if err := s.more(); err != nil {
			return err
		}
	}
	n := s.bits(16)
	if s.bits(16) != n^0xffff {
		return s.corrupt()
	}
	s.left = n
	return nil
}

// dynamicHeader reads the code descriptions of a dynamic block into
// s.tables.
func (s *inflateState) dynamicHeader() error {
	if err := s.need(14); err != nil {
		return err
	}
	nlit := s.bits(5) + 257
	ndist := s.bits(5) + 1
	nclen := s.bits(4) + 4
	if nlit > 286 || ndist > 30 {
		return s.corrupt()
	}
	t := s.tables
	var clen [19]uint8
	for i := 0; i < nclen; i++ {
		if err := s.need(3); err != nil {
			return err
		}
		clen[inflateCodeLenOrder[i]] = uint8(s.bits(3))
	}
	if !t.codeLen.init(clen[:], true) {
		return s.corrupt()
	}
	lengths := t.lengths[:nlit+ndist]
	for i := 0; i < len(lengths); {
		sym, err := s.decodeSym(&t.codeLen)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return s.corrupt()
			}
			if err := s.need(2); err != nil {
				return err
			}
			val, rep = lengths[i-1], 3+s.bits(2)
		case 17:
			if err := s.need(3); err != nil {
				return err
			}
			rep = 3 + s.bits(3)
		default:
			if err := s.need(7); err != nil {
				return err
			}
			rep = 11 + s.bits(7)
		}
		if i+rep > len(lengths) {
			return s.corrupt()
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 { // no end-of-block code
		return s.corrupt()
	}
	if !t.lit.init(lengths[:nlit], false) || !t.dist.init(lengths[nlit:], false) {
		return s.corrupt()
	}
	return nil
}

// huffmanBlock decodes symbols of the current block into the window. more
// reports that the window filled up before the block ended.
func (s *inflateState) huffmanBlock() (more bool, err error) {
	if s.copyLen > 0 && s.copyBack() {
		return true, nil
	}
	for {
		if eob, err := s.huffmanFast(); eob || err != nil {
			return false, err
		}
		if s.w == len(s.hist) {
			return true, nil
		}
		sym, err := s.decodeSym(s.lit)
		if err != nil {
			return false, err
		}
		switch {
		case sym < 256:
			s.hist[s.w] = byte(sym)
			s.w++
			continue
		case sym == 256:
			return false, nil
		case sym > 285:
			return false, s.corrupt()
		}
		sym -= 257
		length := int(inflateLenBase[sym])
		if x := uint(inflateLenExtra[sym]); x > 0 {
			if err := s.need(x); err != nil {
				return false, err
			}
			length += s.bits(x)
		}
		dsym, err := s.decodeSym(s.dist)
		if err != nil {
			return false, err
		}
		if dsym >= 30 {
			return false, s.corrupt()
		}
		dist := int(inflateDistBase[dsym])
		if x := uint(inflateDistExtra[dsym]); x > 0 {
			if err := s.need(x); err != nil {
				return false, err
			}
			dist += s.bits(x)
		}
		avail := s.w
		if s.full {
			avail = len(s.hist)
		}
		if dist > avail {
			return false, s.corrupt()
		}
		s.copyLen, s.copyDist = length, dist
		if s.copyBack() {
			return true, nil
		}
	}
}

// huffmanFast decodes symbols of the current block while the input holds
// eight more bytes and the window room for the longest back-reference, so
// that it can take a whole symbol, length, distance and their extra bits
// (at most 48 bits) from one 64-bit refill, without checking for the end
// of the input or of the window. It stops there, at the end of the block
// (eob) or at a code longer than the primary table, leaving the rest to
// huffmanBlock's general loop.
//
// The refill loads eight bytes but counts only whole bytes up to 56..63
// bits; the bits above nb then hold the start of the next byte, which the
// next refill ORs in again unchanged. The accumulator is masked on the
// way out, where the general loop expects zeros above nb. Shift counts
// that come from data are masked to 63, which they never exceed: that
// spares the compiler's code for larger ones, about 5% of the loop.
func (s *inflateState) huffmanFast() (eob bool, err error) {
	in, ip, acc, nb := s.in, s.ip, s.acc, s.nb
	hist, w := s.hist, s.w
	lit, dist := s.lit, s.dist
	for len(in)-ip >= 8 && w <= len(hist)-deflateMaxMatch {
		acc |= binary.LittleEndian.Uint64(in[ip:]) << (nb & 63)
		ip += int(63-nb) >> 3
		nb |= 56
		e := lit.primary[acc&lit.pmask]
		l := uint(e & 15)
		if l == 0 {
			break
		}
		sym := int(e >> 4)
		if sym < 256 {
			acc >>= l
			nb -= l
			hist[w] = byte(sym)
			w++
			// A second literal fits in the bits left (at least 41).
			e = lit.primary[acc&lit.pmask]
			if l = uint(e & 15); l != 0 && e>>4 < 256 {
				acc >>= l
				nb -= l
				hist[w] = byte(e >> 4)
				w++
			}
			continue
		}
		if sym == 256 {
			acc >>= l
			nb -= l
			eob = true
			break
		}
		if sym > 285 {
			err = s.corrupt()
			break
		}
		acc >>= l
		nb -= l
		sym -= 257
		x := uint(inflateLenExtra[sym]) & 63
		length := int(inflateLenBase[sym]) + int(acc&(1<<x-1))
		acc >>= x
		nb -= x
		var dsym int
		if e = dist.primary[acc&dist.pmask]; e&15 != 0 {
			acc >>= e & 15
			nb -= uint(e & 15)
			dsym = int(e >> 4)
		} else {
			// A long distance code: at least 21 bits are left, more
			// than decodeSym needs, so it reads no input.
			s.acc, s.nb = acc, nb
			if dsym, err = s.decodeSym(dist); err != nil {
				break
			}
			acc, nb = s.acc, s.nb
		}
		if dsym >= 30 {
			err = s.corrupt()
			break
		}
		x = uint(inflateDistExtra[dsym]) & 63
		d := int(inflateDistBase[dsym]) + int(acc&(1<<x-1))
		acc >>= x
		nb -= x
		if d > w {
			if !s.full || d > len(hist) {
				err = s.corrupt()
				break
			}
			// The source starts in the previous pass over the window.
			s.w, s.copyLen, s.copyDist = w, length, d
			s.copyBack()
			w = s.w
			continue
		}
		src := w - d
		if d >= length {
			w += copy(hist[w:w+length], hist[src:src+length])
			continue
		}
		end := w + length
		for w < end {
			w += copy(hist[w:end], hist[src:w])
		}
	}
	s.ip, s.acc, s.nb, s.w = ip, acc&(1<<nb-1), nb, w
	return eob, err
}

// copyBack writes as much of the pending back-reference as the window has
// room for; it reports whether the window filled up before the end.
func (s *inflateState) copyBack() bool {
	n := min(s.copyLen, len(s.hist)-s.w)
	s.copyLen -= n
	src := s.w - s.copyDist
	if src < 0 {
		// The source starts in the part of the window written in the
		// previous pass; it lies ahead of w, so a plain copy is exact.
		src += len(s.hist)
		k := copy(s.hist[s.w:s.w+min(n, len(s.hist)-src)], s.hist[src:])
		s.w += k
		n -= k
		src = 0
	}
	// Source behind w: the copy may overlap what it writes, which is how
	// LZ77 repeats a short pattern. Each round doubles the span copied.
	end := s.w + n
	for s.w < end {
		s.w += copy(s.hist[s.w:end], s.hist[src:s.w])
	}
	return s.copyLen > 0
}

// endAfterFinal ends the stream after a block with BFINAL set: only the
// restored tail, never more of the peer's payload, may follow it.
func (s *inflateState) endAfterFinal() error {
	s.bits(s.nb % 8)
	c := s.c
	if !s.tail {
		if s.nb > 0 || s.ip < len(s.in) || c.frameLeft > 0 || !c.frameFinal {
			return s.corrupt()
		}
	} else if int(s.nb/8) > s.ip {
		// Bytes in the accumulator that came before the tail.
		return s.corrupt()
	}
	s.done = true
	return nil
}

// decodeAhead inflates the current message into the window without
// delivering it, until its stream is complete or the window is full, and
// returns how many decoded bytes wait to be read. It fails as read would.
func (s *inflateState) decodeAhead() (int, error) {
	if !s.active {
		return 0, nil
	}
	if !s.done && s.w < len(s.hist) {
		if err := s.decode(); err != nil {
			s.finish()
			if s.c.readErr != nil {
				return 0, s.c.readErr
			}
			return 0, s.c.readFailed(err)
		}
	}
	return s.w - s.rd, nil
}

// restEstimate guesses how many bytes the current message has beyond the
// n decoded ahead (0 when its stream is complete): the compressed bytes of
// its frame still unread, at twice the ratio the first n bytes came at
// (which the block header weighs down) but at least four times, and 512
// bytes; at most a window's worth. The frame's unread length is the
// peer's word, so only as much of it counts as Conn.trustedLen allows.
func (s *inflateState) restEstimate(n int) int64 {
	if !s.active || s.done {
		return 0
	}
	c := s.c
	unread := int64(len(s.in) - s.ip)
	left := c.trustedLen(c.frameLeft, 0) + unread
	used := s.inTotal - unread - int64(s.nb/8)
	limit := int64(len(s.hist))
	est := int64(512)
	if c.frameFinal && used > 0 {
		ratio := max(4, 2*int64(n)/used)
		if left > limit/ratio {
			return limit
		}
		est += left * ratio
	}
	return min(est, limit)
}

// drained reports whether the current message has been read to its end,
// so that the next read returns io.EOF without reading the network.
func (s *inflateState) drained() bool {
	return !s.active || s.done && s.rd == s.w
}

// read inflates the current message into p. It returns io.EOF once the
// message's stream is complete and its output delivered.
func (s *inflateState) read(p []byte) (int, error) {
	c := s.c
	if !s.active {
		return 0, io.EOF
	}
	for s.rd == s.w {
		if s.done {
			s.finish()
			return 0, io.EOF
		}
		if s.w == len(s.hist) {
			s.w, s.rd, s.full = 0, 0, true
		}
		if err := s.decode(); err != nil {
			s.finish()
			if c.readErr != nil {
				return 0, c.readErr
			}
			return 0, c.readFailed(err)
		}
	}
	n := copy(p, s.hist[s.rd:s.w])
	s.rd += n
	s.n += int64(n)
	if c.readLimit > 0 && s.n > c.readLimit {
		s.finish()
		return 0, c.fail(CloseMessageTooBig, "", ErrReadLimit)
	}
	if c.msgType == TextMessage && !c.utf8.write(p[:n]) {
		s.finish()
		return 0, c.failProtocol(&ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"})
	}
	return n, nil
}
