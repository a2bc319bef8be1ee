//go:build !amd64 || purego

package websocket

// maskAsm is false: maskBytes uses its word loop alone.
const (
	maskAsm    = false
	maskAsmMin = 0
)

func maskBlocks(p *byte, n int, key uint64) { panic("unreachable") }
