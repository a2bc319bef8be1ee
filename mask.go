package websocket

import "encoding/binary"

// maskBytes XORs b in place with key, starting pos bytes into the key's
// cycle, and returns the key position that follows b. Masking and
// unmasking are the same operation (RFC 6455 section 5.3).
//
// It works on eight bytes at a time with a key widened to a machine word,
// four words per iteration; on amd64 the bulk of a long input goes through
// an SSE2 loop instead (mask_amd64.s), 64 bytes per iteration.
func maskBytes(key [4]byte, pos int, b []byte) int {
	pos &= 3
	if len(b) < 16 {
		for i := range b {
			b[i] ^= key[pos&3]
			pos++
		}
		return pos & 3
	}
	k := maskWord(key, pos)
	if maskAsm && len(b) >= maskAsmMin {
		n := len(b) &^ 15
		maskBlocks(&b[0], n, k)
		b = b[n:]
	}
	for len(b) >= 32 {
		v := b[:32]
		binary.LittleEndian.PutUint64(v[0:], binary.LittleEndian.Uint64(v[0:])^k)
		binary.LittleEndian.PutUint64(v[8:], binary.LittleEndian.Uint64(v[8:])^k)
		binary.LittleEndian.PutUint64(v[16:], binary.LittleEndian.Uint64(v[16:])^k)
		binary.LittleEndian.PutUint64(v[24:], binary.LittleEndian.Uint64(v[24:])^k)
		b = b[32:]
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k)
		b = b[8:]
	}
	// Every full word consumed a multiple of four key bytes, so the key
	// cycle is back at pos for the tail.
	for i := range b {
		b[i] ^= byte(k >> (8 * (i & 3)))
	}
	return (pos + len(b)) & 3
}

// maskWord returns the key as a little-endian 64-bit word rotated so that
// its first byte is key[pos&3]: XORing it onto eight bytes of payload that
// start at key position pos masks them.
func maskWord(key [4]byte, pos int) uint64 {
	k32 := uint64(binary.LittleEndian.Uint32(key[:]))
	if s := uint(pos&3) * 8; s != 0 {
		k32 = (k32>>s | k32<<(32-s)) & 0xffffffff
	}
	return k32 | k32<<32
}
