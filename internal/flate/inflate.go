package flate

import "encoding/binary"

// Decoding the blocks of a message's stream into the window (RFC 1951
// section 3.2.3 and on).

// decodeSym reads one symbol of the code h.
func (s *Decoder) decodeSym(h *decodeTable) (int, error) {
	for {
		if s.nb < maxCodeLen {
			s.pull()
		}
		e := h.primary[s.acc&h.pmask]
		if l := uint(e & 15); l != 0 && l <= s.nb {
			s.acc >>= l
			s.nb -= l
			return int(e >> 4), nil
		}
		if s.nb >= maxCodeLen {
			return s.decodeSlow(h)
		}
		if err := s.more(); err != nil {
			if err != errInputEnd {
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
func (s *Decoder) decodeSlow(h *decodeTable) (int, error) {
	code, first, index := 0, 0, 0
	for l := uint(1); l <= maxCodeLen && l <= s.nb; l++ {
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
	return 0, ErrCorrupt
}

// atEnd reports whether the message's input is used up, the restored tail
// included, at a block boundary (where it is called). That is normally
// the sync flush: an empty stored block whose LEN and NLEN are the tail.
// A block of the payload that happens to end exactly there (a stored
// block whose last bytes are the tail, say) ends the message too, as it
// does for zlib-based peers. A stream that merely runs out is corrupt.
func (s *Decoder) atEnd() bool {
	return s.tail && s.ip == len(s.in) && s.nb == 0
}

// decode inflates into the window until it is full or the message's stream
// is complete (done).
func (s *Decoder) decode() error {
	for {
		switch s.state {
		case stateHeader:
			if s.final {
				return s.endAfterFinal()
			}
			if s.atEnd() {
				s.done = true
				return nil
			}
			if err := s.blockHeader(); err != nil || s.done {
				return err
			}
		case stateStored:
			if more, err := s.storedBlock(); err != nil || more {
				return err
			}
			s.state = stateHeader
		case stateHuffman:
			more, err := s.huffmanBlock()
			if err != nil || more {
				return err
			}
			s.state = stateHeader
		}
	}
}

// blockHeader reads the header of the next block and moves to its state,
// or sets done where the message ends without a sync flush.
func (s *Decoder) blockHeader() error {
	if err := s.need(3); err != nil {
		return err
	}
	// Whether this block's header is the first bit of the restored tail:
	// the payload ended on a byte boundary after a complete block.
	atTail := s.tail && s.nb == 8*uint(s.ip)
	s.final = s.bits(1) == 1
	switch s.bits(2) {
	case 0:
		if err := s.storedHeader(); err != nil {
			if err == errInputEnd && atTail {
				// The payload ended at a block boundary without the
				// sync flush RFC 7692 asks for, and the restored tail
				// reads as a truncated stored block. zlib-based peers
				// accept such messages; so do we.
				s.done = true
				return nil
			}
			return inputError(err)
		}
		s.state = stateStored
	case 1:
		s.lit, s.dist = &fixedLitTable, &fixedDistTable
		s.state = stateHuffman
	case 2:
		if err := s.dynamicHeader(); err != nil {
			return err
		}
		s.lit, s.dist = &s.tables.lit, &s.tables.dist
		s.state = stateHuffman
	default:
		return ErrCorrupt
	}
	return nil
}

// storedBlock copies the rest of the stored block into the window. more
// reports that the window filled up before the block ended.
func (s *Decoder) storedBlock() (more bool, err error) {
	for s.left > 0 {
		room := len(s.hist) - s.w
		if room == 0 {
			return true, nil
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
				return false, inputError(err)
			}
			continue
		}
		n := copy(s.hist[s.w:s.w+min(room, s.left)], s.in[s.ip:])
		s.ip += n
		s.w += n
		s.left -= n
	}
	return false, nil
}

// storedHeader reads LEN and NLEN after skipping to a byte boundary. It
// returns errInputEnd if the input ends inside them after reaching the
// restored tail.
func (s *Decoder) storedHeader() error {
	s.bits(s.nb % 8)
	for s.nb < 32 {
		if err := s.more(); err != nil {
			return err
		}
	}
	n := s.bits(16)
	if s.bits(16) != n^0xffff {
		return ErrCorrupt
	}
	s.left = n
	return nil
}

// dynamicHeader reads the code descriptions of a dynamic block into
// s.tables.
func (s *Decoder) dynamicHeader() error {
	if err := s.need(14); err != nil {
		return err
	}
	nlit := s.bits(5) + 257
	ndist := s.bits(5) + 1
	nclen := s.bits(4) + 4
	if nlit > 286 || ndist > 30 {
		return ErrCorrupt
	}
	t := s.tables
	var clen [19]uint8
	for i := 0; i < nclen; i++ {
		if err := s.need(3); err != nil {
			return err
		}
		clen[codeLenOrder[i]] = uint8(s.bits(3))
	}
	if !t.codeLen.init(clen[:], true) {
		return ErrCorrupt
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
				return ErrCorrupt
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
			return ErrCorrupt
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 { // no end-of-block code
		return ErrCorrupt
	}
	if !t.lit.init(lengths[:nlit], false) || !t.dist.init(lengths[nlit:], false) {
		return ErrCorrupt
	}
	return nil
}

// huffmanBlock decodes symbols of the current block into the window. more
// reports that the window filled up before the block ended.
func (s *Decoder) huffmanBlock() (more bool, err error) {
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
			return false, ErrCorrupt
		}
		sym -= 257
		length := int(lenBase[sym])
		if x := uint(lenExtra[sym]); x > 0 {
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
			return false, ErrCorrupt
		}
		dist := int(distBase[dsym])
		if x := uint(distExtra[dsym]); x > 0 {
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
			return false, ErrCorrupt
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
//
// It is the decoder's hot loop, written out in one function of some 90
// lines on purpose: the decoder's state lives in locals for its length,
// and a call per symbol (to decode a literal or copy a match) would cost
// more than the loop's own work on short codes.
func (s *Decoder) huffmanFast() (eob bool, err error) {
	in, ip, acc, nb := s.in, s.ip, s.acc, s.nb
	hist, w := s.hist, s.w
	lit, dist := s.lit, s.dist
	for len(in)-ip >= 8 && w <= len(hist)-maxMatch {
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
			err = ErrCorrupt
			break
		}
		acc >>= l
		nb -= l
		sym -= 257
		x := uint(lenExtra[sym]) & 63
		length := int(lenBase[sym]) + int(acc&(1<<x-1))
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
			err = ErrCorrupt
			break
		}
		x = uint(distExtra[dsym]) & 63
		d := int(distBase[dsym]) + int(acc&(1<<x-1))
		acc >>= x
		nb -= x
		if d > w {
			if !s.full || d > len(hist) {
				err = ErrCorrupt
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
func (s *Decoder) copyBack() bool {
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
// restored tail, never more of the message's input, may follow it.
func (s *Decoder) endAfterFinal() error {
	s.bits(s.nb % 8)
	if !s.tail {
		if s.nb > 0 || s.ip < len(s.in) {
			return ErrCorrupt
		}
		for !s.tail && s.ip == len(s.in) {
			if err := s.nextInput(); err != nil {
				return err
			}
		}
		if !s.tail {
			return ErrCorrupt
		}
	} else if int(s.nb/8) > s.ip {
		// Bytes in the accumulator that came before the tail.
		return ErrCorrupt
	}
	s.done = true
	return nil
}
