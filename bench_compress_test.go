package websocket

import (
	"bytes"
	"io"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// Benchmarks and allocation checks of the compressed message paths of a
// Conn, on the stub connections of bench_test.go, with the chatty JSON
// corpora of internal/flate/flatetest.

// compressedBenchConn returns a Conn of the given side that negotiated
// permessage-deflate with takeover (or not) and 15-bit windows.
func compressedBenchConn(nc *ringConn, isServer, takeover bool) *Conn {
	var c *Conn
	if nc == nil {
		c = newConn(discardConn{}, isServer, 0, 0, nil, nil)
	} else {
		c = newConn(nc, isServer, 0, 0, nil, nil)
	}
	p := pmdParams{
		serverNoContextTakeover: !takeover,
		clientNoContextTakeover: !takeover,
		serverMaxWindowBits:     15,
		clientMaxWindowBits:     15,
	}
	c.enableCompression(p, &CompressionOptions{Threshold: -1})
	return c
}

// compressedStream returns msgs as compressed text frames, each message
// compressed on its own (valid with or without context takeover), as the
// peer of a side sends them.
func compressedStream(msgs [][]byte, isServer bool, windowBits int) []byte {
	e := flate.NewEncoder(windowBits, 1, false)
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	var stream []byte
	for _, m := range msgs {
		payload := e.Compress(nil, m)
		stream = appendFrameHeader(stream, true, rsv1Bit, opText, len(payload), isServer, key)
		hl := len(stream)
		stream = append(stream, payload...)
		if isServer {
			maskBytes(key, 0, stream[hl:])
		}
	}
	return stream
}

var benchCompressCorpora = []struct {
	name string
	msgs func() [][]byte
}{
	{"json200", func() [][]byte { return flatetest.ChatJSON(7, 256) }},
	{"json4k", func() [][]byte { return flatetest.SnapshotJSON(8, 64) }},
}

func BenchmarkCompressedWriteMessage(b *testing.B) {
	for _, corpus := range benchCompressCorpora {
		msgs := corpus.msgs()
		for _, takeover := range []bool{true, false} {
			for _, isServer := range []bool{true, false} {
				name := corpus.name + "/" + sideName(isServer) + "/takeover=" + map[bool]string{true: "on", false: "off"}[takeover]
				b.Run(name, func(b *testing.B) {
					c := compressedBenchConn(nil, isServer, takeover)
					b.ReportAllocs()
					b.SetBytes(int64(flatetest.TotalLen(msgs) / len(msgs)))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if err := c.WriteMessage(TextMessage, msgs[i%len(msgs)]); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

func BenchmarkCompressedReadMessage(b *testing.B) {
	for _, corpus := range benchCompressCorpora {
		msgs := corpus.msgs()
		for _, isServer := range []bool{true, false} {
			b.Run(corpus.name+"/"+sideName(isServer), func(b *testing.B) {
				c := compressedBenchConn(&ringConn{data: compressedStream(msgs, isServer, 15)}, isServer, true)
				buf := make([]byte, 64<<10)
				b.ReportAllocs()
				b.SetBytes(int64(flatetest.TotalLen(msgs) / len(msgs)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, r, err := c.NextReader()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, buf[:len(msgs[i%len(msgs)])]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestZeroAllocsCompressed checks that compressing and inflating messages
// allocates nothing in the steady state: the compressor's working memory,
// the flate readers and the frame buffers all come from pools.
func TestZeroAllocsCompressed(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const runs = 200
	for _, corpus := range benchCompressCorpora {
		msgs := corpus.msgs()
		for _, isServer := range []bool{true, false} {
			for _, takeover := range []bool{true, false} {
				name := corpus.name + "/" + sideName(isServer) + "/takeover=" + map[bool]string{true: "on", false: "off"}[takeover]
				t.Run("WriteMessage/"+name, func(t *testing.T) {
					c := compressedBenchConn(nil, isServer, takeover)
					i := 0
					allocs := testing.AllocsPerRun(runs, func() {
						if err := c.WriteMessage(TextMessage, msgs[i%len(msgs)]); err != nil {
							t.Fatal(err)
						}
						i++
					})
					assert.Zero(t, allocs, "allocations per compressed WriteMessage")
				})
				t.Run("NextWriter/"+name, func(t *testing.T) {
					c := compressedBenchConn(nil, isServer, takeover)
					i := 0
					allocs := testing.AllocsPerRun(runs, func() {
						w, err := c.NextWriter(TextMessage)
						if err != nil {
							t.Fatal(err)
						}
						if _, err := w.Write(msgs[i%len(msgs)]); err != nil {
							t.Fatal(err)
						}
						if err := w.Close(); err != nil {
							t.Fatal(err)
						}
						i++
					})
					assert.Zero(t, allocs, "allocations per compressed NextWriter+Write+Close")
				})
			}
			t.Run("NextReaderRead/"+corpus.name+"/"+sideName(isServer), func(t *testing.T) {
				c := compressedBenchConn(&ringConn{data: compressedStream(msgs, isServer, 15)}, isServer, true)
				buf := make([]byte, 64<<10)
				i := 0
				allocs := testing.AllocsPerRun(runs, func() {
					_, r, err := c.NextReader()
					if err != nil {
						t.Fatal(err)
					}
					n, err := io.ReadFull(r, buf[:len(msgs[i%len(msgs)])+1])
					if err != io.ErrUnexpectedEOF || n != len(msgs[i%len(msgs)]) {
						t.Fatal(n, err)
					}
					i++
				})
				assert.Zero(t, allocs, "allocations per compressed NextReader+Read to io.EOF")
			})
			t.Run("ReadMessage/"+corpus.name+"/"+sideName(isServer), func(t *testing.T) {
				// The result is allocated once: the message is inflated
				// ahead into the window before it is allocated, at its
				// size unless it wraps around the window's end.
				c := compressedBenchConn(&ringConn{data: compressedStream(msgs, isServer, 15)}, isServer, true)
				i, exact := 0, 0
				allocs := testing.AllocsPerRun(runs, func() {
					_, p, err := c.ReadMessage()
					if err != nil {
						t.Fatal(err)
					}
					if m := msgs[i%len(msgs)]; !bytes.Equal(p, m) || cap(p) > 2*len(m)+512 {
						t.Fatalf("message %d: got %d bytes (cap %d), want %d", i, len(p), cap(p), len(m))
					}
					if cap(p) == len(p) {
						exact++
					}
					i++
				})
				assert.Equal(t, 1.0, allocs, "allocations per compressed ReadMessage")
				assert.Greater(t, exact, runs*3/4, "results allocated at their size")
			})
		}
	}
}

// TestCompressionHeldMemory reports, and bounds, what a compressing Conn
// keeps beyond an uncompressed one, per window size and level: while it is
// active, and once the compressor has dropped its match index for being
// idle (the history and the inflater's window stay).
func TestCompressionHeldMemory(t *testing.T) {
	msgs := flatetest.SnapshotJSON(8, 16)
	for _, tc := range []struct {
		bits, level  int
		active, idle int
	}{
		{15, 1, 96 << 10, 64 << 10},
		{15, 2, 96 << 10, 64 << 10},
		{15, 6, 112 << 10, 64 << 10},
		{12, 1, 12 << 10, 8 << 10},
		{9, 1, 1536, 1024},
	} {
		c := newConn(&ringConn{data: compressedStream(msgs, true, tc.bits)}, true, 0, 0, nil, nil)
		c.enableCompression(pmdParams{serverMaxWindowBits: tc.bits, clientMaxWindowBits: tc.bits}, &CompressionOptions{Level: tc.level})
		for _, m := range msgs {
			require.NoError(t, c.WriteMessage(TextMessage, m))
			_, p, err := c.ReadMessage()
			require.NoError(t, err)
			require.Equal(t, m, p)
		}
		active := c.deflate.HeldBytes() + c.inflate.HeldBytes()
		c.deflate.DropIndex() // as two idle periods would
		idle := c.deflate.HeldBytes() + c.inflate.HeldBytes()
		t.Logf("window bits %d, level %d: %d bytes held while active, %d idle (compressor %d, inflater %d)",
			tc.bits, tc.level, active, idle, c.deflate.HeldBytes(), c.inflate.HeldBytes())
		assert.LessOrEqual(t, active, tc.active)
		assert.LessOrEqual(t, idle, tc.idle)
		require.NoError(t, c.Close())
	}
}

// TestCompressionStackGrowth checks that compressing and inflating a
// message does not need a deep stack. A goroutine's stack grows to fit the
// deepest call it makes and is only halved at a GC when little of it is in
// use, which a handler blocked in ReadMessage under net/http never allows:
// so one deep call on the message path costs every idle connection its
// stack size for good. (Local arrays in the Huffman code once did: 4 KiB
// more per idle compressing connection.) With GC off, no stack shrinks, and
// the stacks of goroutines that each echo compressed messages show the
// deepest they went.
func TestCompressionStackGrowth(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("the race detector enlarges every frame")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	msgs := flatetest.SnapshotJSON(8, 8)
	const n = 256
	conns := make([]*Conn, n)
	for i := range conns {
		conns[i] = compressedBenchConn(&ringConn{data: compressedStream(msgs, true, 15)}, true, true)
	}
	release := make(chan struct{})
	defer close(release)
	done := make(chan error, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, c := range conns {
		go func() {
			var err error
			for _, m := range msgs {
				if err = c.WriteMessage(TextMessage, m); err != nil {
					break
				}
				if _, _, err = c.ReadMessage(); err != nil {
					break
				}
			}
			done <- err
			<-release
		}()
	}
	for range conns {
		require.NoError(t, <-done)
	}
	runtime.ReadMemStats(&after)
	perGoroutine := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("stack per goroutine after compressed echoes: %d bytes", perGoroutine)
	assert.LessOrEqual(t, perGoroutine, int64(4096), "the compressed message path needs a stack of more than 4 KiB")
}
