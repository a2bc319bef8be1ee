//go:build amd64 && !purego

package websocket

// maskAsm enables the SSE2 loop for inputs of maskAsmMin bytes or more,
// where it beats the word loop, call included (BenchmarkMask against a
// -tags purego run).
const (
	maskAsm    = true
	maskAsmMin = 128
)

// maskBlocks XORs n bytes at p with the 16-byte pattern made of key twice;
// n must be a multiple of 16. Implemented in mask_amd64.s with SSE2, which
// every amd64 CPU has.
//
//go:noescape
func maskBlocks(p *byte, n int, key uint64)
