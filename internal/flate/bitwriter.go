package flate

import (
	"encoding/binary"
	"slices"
)

// Writing blocks: the bit stream, stored blocks, the dynamic block header
// and the coded tokens.

// bitWriter packs DEFLATE's least-significant-bit-first bit stream
// onto out. Fewer than 32 bits are pending between calls, so one call may
// add up to 32 bits.
type bitWriter struct {
	bits  uint64
	nbits uint
	out   []byte
}

func (w *bitWriter) writeBits(b uint32, n uint) {
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
func (w *bitWriter) align() {
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
func (w *bitWriter) writeStored(data []byte) {
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), storedMax)
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
func (w *bitWriter) storedBits(n int) int {
	blocks := max(1, (n+storedMax-1)/storedMax)
	pad := (8 - (int(w.nbits)+3)%8) % 8
	return 3 + pad + 32 + (blocks-1)*(8+32) + 8*n
}

// syncFlush ends a message as RFC 7692 section 7.2.1 asks: an empty stored
// block, of which only the header bits and the padding are written, since
// its LEN and NLEN (00 00 ff ff) are the four octets the sender removes.
func (w *bitWriter) syncFlush() {
	w.writeBits(0, 3)
	w.align()
}

// writeCoded sends tokens, which code src, as a block of the type
// planBlock chose (fixed or dynamic codes), with BFINAL 0, and clears the
// frequency counts.
func (h *blockCoder) writeCoded(w *bitWriter, typ int, tokens []uint32, src []byte) {
	// Room for the whole block, so that writeTokens need not check; it
	// stores eight bytes at a time, up to seven past the last.
	if need := (int(w.nbits)+h.codedBits+7)/8 + 8; cap(w.out)-len(w.out) < need {
		w.out = slices.Grow(w.out, need)
	}
	w.writeBits(uint32(typ)<<1, 3)
	if typ == blockDynamic {
		h.writeDynamicHeader(w)
		h.writeTokens(w, tokens, src, &h.litCode, &h.litLen, &h.distCode, &h.distLen)
	} else {
		h.writeTokens(w, tokens, src, (*[numLit]uint16)(fixedLitCode[:numLit]), (*[numLit]uint8)(fixedLitLen[:numLit]), &fixedDistCode, &fixedDistLen)
	}
	h.clearFreq()
}

func (h *blockCoder) writeDynamicHeader(w *bitWriter) {
	canonicalCodes(h.litLen[:], h.litCode[:])
	canonicalCodes(h.distLen[:], h.distCode[:])
	canonicalCodes(h.clLen[:], h.clCode[:])
	w.writeBits(uint32(h.nlit-257), 5)
	w.writeBits(uint32(h.ndist-1), 5)
	w.writeBits(uint32(h.nclen-4), 4)
	for _, sym := range codeLenOrder[:h.nclen] {
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
func (h *blockCoder) writeTokens(w *bitWriter, tokens []uint32, src []byte, litCode *[numLit]uint16, litLen *[numLit]uint8, distCode *[numDist]uint16, distLen *[numDist]uint8) {
	acc, n := w.bits, w.nbits
	buf, o := w.out[:cap(w.out)], len(w.out)
	binary.LittleEndian.PutUint64(buf[o:], acc)
	o += int(n >> 3)
	acc >>= n &^ 7
	n &= 7
	p := 0
	for _, t := range tokens {
		if t < matchFlag {
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
		l := (t >> lenShift) & 0xff
		p += int(l) + minMatch
		ls := uint32(lenSym[l])
		acc |= uint64(litCode[257+ls]) << (n & 63)
		n += uint(litLen[257+ls])
		acc |= uint64(l-uint32(lenBase[ls]-3)) << (n & 63)
		n += uint(lenExtra[ls])
		d := t & distMask
		ds := distSym(d)
		acc |= uint64(distCode[ds]) << (n & 63)
		n += uint(distLen[ds])
		acc |= uint64(d-uint32(distBase[ds]-1)) << (n & 63)
		n += uint(distExtra[ds])
		binary.LittleEndian.PutUint64(buf[o:], acc)
		o += int(n >> 3)
		acc >>= n &^ 7 & 63
		n &= 7
	}
	w.bits, w.nbits, w.out = acc, n, buf[:o]
	w.writeBits(uint32(litCode[eob]), uint(litLen[eob]))
}
