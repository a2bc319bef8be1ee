package flate

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodeLengths(t *testing.T) {
	fib := make([]uint32, 30)
	fib[0], fib[1] = 1, 1
	for i := 2; i < len(fib); i++ {
		fib[i] = fib[i-1] + fib[i-2]
	}
	r := rand.New(rand.NewSource(1))
	cases := []struct {
		name    string
		freq    []uint32
		maxBits int
	}{
		{"none", make([]uint32, 30), 15},
		{"one", []uint32{0, 0, 5, 0}, 15},
		{"one at 0", []uint32{5, 0, 0, 0}, 15},
		{"two", []uint32{0, 1, 0, 1000}, 15},
		{"flat", testFreq(bytes.Repeat([]byte{1}, 286)), 15},
		{"fibonacci 15", append(fib, make([]uint32, 256)...), 15},
		{"fibonacci 7", fib[:19], 7},
		{"fibonacci 7 sparse", []uint32{0, 1, 1, 0, 2, 3, 5, 8, 0, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987}, 7},
		{"skewed code lengths", []uint32{1000, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 7},
	}
	for i := 0; i < 200; i++ {
		n := 2 + r.Intn(285)
		f := make([]uint32, n)
		for j := range f {
			if r.Intn(3) > 0 {
				f[j] = uint32(r.ExpFloat64() * float64(1+r.Intn(5000)))
			}
		}
		maxBits := 15
		if i%2 == 0 {
			maxBits = 7
			f = f[:min(len(f), 19)]
		}
		cases = append(cases, struct {
			name    string
			freq    []uint32
			maxBits int
		}{fmt.Sprintf("random %d", i), f, maxBits})
	}
	var sorted [2 * numLit]uint64
	var weights [numLit]uint32
	for _, tc := range cases {
		lens := make([]uint8, len(tc.freq))
		codeLengths(tc.freq, lens, tc.maxBits, sorted[:], weights[:])
		kraft := 0.0
		used := 0
		for sym, l := range lens {
			require.LessOrEqual(t, int(l), tc.maxBits, tc.name)
			if tc.freq[sym] != 0 {
				require.NotZero(t, l, "%s: symbol %d has no code", tc.name, sym)
			}
			if l != 0 {
				kraft += 1 / float64(uint(1)<<l)
				used++
			}
		}
		require.GreaterOrEqual(t, used, 2, tc.name)
		require.InDelta(t, 1.0, kraft, 1e-12, "%s: code must be complete", tc.name)
		for a := range lens {
			for b := range lens {
				if tc.freq[a] > tc.freq[b] && tc.freq[b] > 0 {
					require.LessOrEqual(t, lens[a], lens[b], "%s: rarer symbol with shorter code", tc.name)
				}
			}
		}
		// Without the limit biting, the cost must equal Huffman's.
		if treeDepth(tc.freq) <= tc.maxBits {
			require.Equal(t, optimalCost(tc.freq), codeCost(tc.freq, lens), tc.name)
		}
	}
}

func testFreq(b []byte) []uint32 {
	f := make([]uint32, len(b))
	for i, v := range b {
		f[i] = uint32(v)
	}
	return f
}

func codeCost(freq []uint32, lens []uint8) int {
	c := 0
	for i, f := range freq {
		c += int(f) * int(lens[i])
	}
	return c
}

// optimalCost is the cost of a Huffman code by the textbook method
// (sum of the merged weights), as a reference.
func optimalCost(freq []uint32) int {
	var w []int
	for _, f := range freq {
		if f > 0 {
			w = append(w, int(f))
		}
	}
	if len(w) < 2 {
		return codeCost(freq, fallbackLens(freq))
	}
	cost := 0
	for len(w) > 1 {
		// Two smallest.
		for k := 0; k < 2; k++ {
			m := k
			for j := k; j < len(w); j++ {
				if w[j] < w[m] {
					m = j
				}
			}
			w[k], w[m] = w[m], w[k]
		}
		s := w[0] + w[1]
		cost += s
		w = append(w[2:], s)
	}
	return cost
}

func fallbackLens(freq []uint32) []uint8 {
	lens := make([]uint8, len(freq))
	for i, f := range freq {
		if f > 0 {
			lens[i] = 1
		}
	}
	return lens
}

// treeDepth is the depth of an (unlimited) Huffman tree for freq, a
// lower bound on whether the limit applies.
func treeDepth(freq []uint32) int {
	type node struct{ w, d int }
	var ns []node
	for _, f := range freq {
		if f > 0 {
			ns = append(ns, node{int(f), 0})
		}
	}
	if len(ns) < 2 {
		return 1
	}
	for len(ns) > 1 {
		for k := 0; k < 2; k++ {
			m := k
			for j := k; j < len(ns); j++ {
				if ns[j].w < ns[m].w || (ns[j].w == ns[m].w && ns[j].d < ns[m].d) {
					m = j
				}
			}
			ns[k], ns[m] = ns[m], ns[k]
		}
		ns = append(ns[2:], node{ns[0].w + ns[1].w, max(ns[0].d, ns[1].d) + 1})
	}
	return ns[0].d
}
