package websocket

import (
	"math/bits"
	"sync"
)

// buffer is a pooled byte slice. Pools hold *buffer rather than []byte so
// that putting one back allocates nothing.
type buffer struct{ b []byte }

// Buffers are pooled by power-of-two capacity class, from 128 bytes up to
// 4 MiB; larger ones are left to the garbage collector.
const (
	minPoolShift = 7
	maxPoolShift = 22
)

var bufferPools [maxPoolShift - minPoolShift + 1]sync.Pool

// getBuffer returns a buffer of length size, from a pool when one fits.
func getBuffer(size int) *buffer {
	shift := bits.Len(uint(size - 1))
	if shift < minPoolShift {
		shift = minPoolShift
	}
	if shift > maxPoolShift {
		return &buffer{b: make([]byte, size)}
	}
	if v := bufferPools[shift-minPoolShift].Get(); v != nil {
		b := v.(*buffer)
		b.b = b.b[:size]
		return b
	}
	return &buffer{b: make([]byte, size, 1<<shift)}
}

// putBuffer gives b back for reuse. The caller must not use it afterwards.
func putBuffer(b *buffer) {
	shift := bits.Len(uint(cap(b.b))) - 1
	if shift < minPoolShift {
		return
	}
	if shift > maxPoolShift {
		return
	}
	bufferPools[shift-minPoolShift].Put(b)
}
