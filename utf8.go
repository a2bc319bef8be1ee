package websocket

import "unicode/utf8"

// utf8Validator checks text that arrives in pieces (fragments, or partial
// reads of one frame) and fails at the first byte that cannot be part of
// valid UTF-8, so that a bad message is rejected at the piece carrying the
// bad byte rather than at its end (RFC 6455 section 8.1). The zero value is
// ready for the start of a message.
type utf8Validator struct {
	need   uint8 // continuation bytes still expected
	lo, hi byte  // allowed range of the next continuation byte
}

// reset prepares v for a new message.
func (v *utf8Validator) reset() { *v = utf8Validator{} }

// complete reports whether the text so far ends on a character boundary.
func (v *utf8Validator) complete() bool { return v.need == 0 }

// write feeds p and reports whether everything seen so far is valid UTF-8
// or a prefix of it.
func (v *utf8Validator) write(p []byte) bool {
	// Finish a sequence left open by the previous piece.
	for v.need > 0 && len(p) > 0 {
		if !v.cont(p[0]) {
			return false
		}
		p = p[1:]
	}
	if len(p) == 0 {
		return true
	}
	// The bulk goes through the standard library's validator; only a
	// sequence cut off at the end is kept as state.
	tail := incompleteTail(p)
	if !utf8.Valid(p[:len(p)-tail]) {
		return false
	}
	for _, c := range p[len(p)-tail:] {
		if v.need > 0 {
			if !v.cont(c) {
				return false
			}
		} else if !v.lead(c) {
			return false
		}
	}
	return true
}

// cont consumes one continuation byte.
func (v *utf8Validator) cont(c byte) bool {
	if c < v.lo || c > v.hi {
		return false
	}
	v.lo, v.hi = 0x80, 0xBF
	v.need--
	return true
}

// lead consumes the first byte of a multi-byte sequence, setting the range
// of the byte after it so that overlong forms, surrogates and code points
// past U+10FFFF fail as early as possible.
func (v *utf8Validator) lead(c byte) bool {
	v.lo, v.hi = 0x80, 0xBF
	switch {
	case c < 0x80:
		return true
	case c < 0xC2:
		return false
	case c < 0xE0:
		v.need = 1
	case c == 0xE0:
		v.need, v.lo = 2, 0xA0
	case c == 0xED:
		v.need, v.hi = 2, 0x9F
	case c < 0xF0:
		v.need = 2
	case c == 0xF0:
		v.need, v.lo = 3, 0x90
	case c < 0xF4:
		v.need = 3
	case c == 0xF4:
		v.need, v.hi = 3, 0x8F
	default:
		return false
	}
	return true
}

// incompleteTail returns how many bytes at the end of p form the start of a
// multi-byte sequence that p cuts off (0 to 3). Those bytes still have to
// be validated as a prefix.
func incompleteTail(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		c := p[len(p)-i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 {
			// A lead byte: the sequence is cut off if it wants more
			// bytes than remain.
			want := 2
			switch {
			case c >= 0xF0:
				want = 4
			case c >= 0xE0:
				want = 3
			}
			if want > i {
				return i
			}
			return 0
		}
	}
	return 0
}
