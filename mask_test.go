package websocket

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// maskReference is the byte-by-byte definition of masking (RFC 6455 section
// 5.3) that maskBytes must agree with.
func maskReference(key [4]byte, pos int, b []byte) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// cloneBytes returns a copy of b that is never nil.
func cloneBytes(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestUnitMaskBytesMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	keys := [][4]byte{
		{0, 0, 0, 0},
		{0x37, 0xfa, 0x21, 0x3d},
		{0xff, 0xff, 0xff, 0xff},
		{1, 2, 3, 4},
	}
	for i := 0; i < 4; i++ {
		var k [4]byte
		copy(k[:], randBytes(r, 4))
		keys = append(keys, k)
	}
	for _, key := range keys {
		for n := 0; n <= 300; n++ {
			orig := randBytes(r, n)
			for pos := 0; pos < 4; pos++ {
				want := cloneBytes(orig)
				wantPos := maskReference(key, pos, want)

				got := cloneBytes(orig)
				gotPos := maskBytes(key, pos, got)
				require.Equal(t, want, got, "key %x len %d pos %d", key, n, pos)
				require.Equal(t, wantPos, gotPos, "key %x len %d pos %d", key, n, pos)

				// Masking twice restores the input.
				require.Equal(t, gotPos, maskBytes(key, pos, got))
				require.Equal(t, orig, got, "unmask: key %x len %d pos %d", key, n, pos)
			}
		}
	}
}

func TestUnitMaskBytesPositionWraps(t *testing.T) {
	// Callers may pass a position they kept counting past 3.
	key := [4]byte{0x10, 0x20, 0x30, 0x40}
	for _, n := range []int{0, 3, 15, 16, 17, 40} {
		for pos := 0; pos < 12; pos++ {
			want := bytes.Repeat([]byte{0xAB}, n)
			wantPos := maskReference(key, pos, want)
			got := bytes.Repeat([]byte{0xAB}, n)
			gotPos := maskBytes(key, pos, got)
			require.Equal(t, want, got, "len %d pos %d", n, pos)
			require.Equal(t, wantPos, gotPos, "len %d pos %d", n, pos)
		}
	}
}

func TestUnitMaskBytesUnalignedAndBounded(t *testing.T) {
	// Sub-slices that start off a word boundary, and bytes just outside the
	// slice, which must stay untouched.
	r := rand.New(rand.NewPCG(3, 4))
	key := [4]byte{0xde, 0xad, 0xbe, 0xef}
	for n := 0; n <= 200; n++ {
		for _, off := range []int{1, 2, 3, 5, 7} {
			backing := randBytes(r, n+off+8)
			want := cloneBytes(backing)
			for pos := 0; pos < 4; pos++ {
				wantPos := maskReference(key, pos, want[off:off+n])
				gotPos := maskBytes(key, pos, backing[off:off+n])
				require.Equal(t, want, backing, "len %d off %d pos %d", n, off, pos)
				require.Equal(t, wantPos, gotPos, "len %d off %d pos %d", n, off, pos)
			}
		}
	}
}

func TestUnitMaskBytesPieces(t *testing.T) {
	// Masking a payload in pieces, carrying the position, equals masking it
	// whole: this is how the read path unmasks partial reads.
	r := rand.New(rand.NewPCG(5, 6))
	key := [4]byte{9, 8, 7, 6}
	orig := randBytes(r, 1000)
	want := cloneBytes(orig)
	maskReference(key, 0, want)
	for trial := 0; trial < 200; trial++ {
		got := cloneBytes(orig)
		pos := 0
		for rest := got; len(rest) > 0; {
			k := 1 + r.IntN(min(len(rest), 70))
			pos = maskBytes(key, pos, rest[:k])
			rest = rest[k:]
		}
		require.Equal(t, want, got, "trial %d", trial)
		require.Equal(t, 1000&3, pos)
	}
}

// TestMaskLongInputs checks maskBytes against the byte-by-byte reference
// on lengths around every block boundary of the word and SSE2 loops, at
// every key position and start alignment.
func TestMaskLongInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lengths := []int{127, 128, 129, 143, 144, 191, 192, 193, 1000, 4096, 16384 + 13, 70001}
	for _, n := range lengths {
		for pos := 0; pos < 4; pos++ {
			for align := 0; align < 8; align++ {
				key := [4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())}
				src := make([]byte, n+align)
				for i := range src {
					src[i] = byte(rng.Uint32())
				}
				got := append([]byte(nil), src...)
				want := append([]byte(nil), src...)
				gp := maskBytes(key, pos, got[align:])
				wp := maskReference(key, pos, want[align:])
				require.Equal(t, wp, gp, "n=%d pos=%d align=%d", n, pos, align)
				require.Equal(t, want, got, "n=%d pos=%d align=%d", n, pos, align)
			}
		}
	}
}
