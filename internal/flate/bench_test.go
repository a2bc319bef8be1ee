package flate

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"testing"

	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// BenchmarkDeflate compresses chatty JSON with this encoder and, for
// reference, with compress/flate, reporting bytes on the wire per payload
// byte (wire/payload). With takeover, flate keeps one Writer and flushes
// per message; without, it resets a kept Writer per message (the cheapest
// way flate can make messages independent). held-B is what our Encoder
// keeps between messages (a flate.Writer keeps about 1 MB).
func BenchmarkDeflate(b *testing.B) {
	data := []struct {
		name string
		msgs [][]byte
	}{
		{"json200", flatetest.ChatJSON(7, 1000)},
		{"json4k", flatetest.SnapshotJSON(8, 200)},
	}
	for _, dt := range data {
		for _, takeover := range []bool{true, false} {
			for _, level := range []int{1, -1} {
				b.Run(fmt.Sprintf("%s/takeover=%t/ours/level=%d", dt.name, takeover, level), func(b *testing.B) {
					d := NewEncoder(15, level, takeover)
					dst := make([]byte, 0, 16<<10)
					benchRun(b, dt.msgs, func(m []byte) int { return len(d.Compress(dst, m)) })
					b.ReportMetric(float64(d.HeldBytes()), "held-B")
				})
				b.Run(fmt.Sprintf("%s/takeover=%t/flate/level=%d", dt.name, takeover, level), func(b *testing.B) {
					var buf bytes.Buffer
					fw, _ := flate.NewWriter(&buf, level)
					benchRun(b, dt.msgs, func(m []byte) int {
						buf.Reset()
						if !takeover {
							fw.Reset(&buf)
						}
						_, _ = fw.Write(m)
						_ = fw.Flush()
						return buf.Len() - len(testTail)
					})
				})
			}
		}
	}
}

// benchRun compresses msgs round robin, compress returning the
// bytes each message takes on the wire.
func benchRun(b *testing.B, msgs [][]byte, compress func([]byte) int) {
	b.ReportAllocs()
	b.SetBytes(int64(flatetest.TotalLen(msgs) / len(msgs)))
	// One pass first so the measured loop is in the steady state.
	for _, m := range msgs {
		compress(m)
	}
	b.ResetTimer()
	wire, payload := 0, 0
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		wire += compress(m)
		payload += len(m)
	}
	b.ReportMetric(float64(wire)/float64(payload), "wire/payload")
}

// BenchmarkInflate decodes chatty JSON that the Encoder compressed (at
// level 1), one message per iteration, through the Decoder alone, with and
// without context takeover. The Conn's read path around it is measured by
// the root package's BenchmarkCompressedReadMessage.
func BenchmarkInflate(b *testing.B) {
	for _, dt := range []struct {
		name string
		msgs [][]byte
	}{
		{"json200", flatetest.ChatJSON(7, 1000)},
		{"json4k", flatetest.SnapshotJSON(8, 200)},
	} {
		for _, takeover := range []bool{true, false} {
			e := NewEncoder(15, 1, takeover)
			comps := make([][]byte, len(dt.msgs))
			for i, m := range dt.msgs {
				comps[i] = e.Compress(nil, m)
			}
			e.Close()
			b.Run(fmt.Sprintf("%s/takeover=%t/ours", dt.name, takeover), func(b *testing.B) {
				in := &testInput{}
				d := NewDecoder(15, takeover, in.next)
				buf := make([]byte, 64<<10)
				b.ReportAllocs()
				b.SetBytes(int64(flatetest.TotalLen(dt.msgs) / len(dt.msgs)))
				for i := 0; i < b.N; i++ {
					k := i % len(comps)
					if k == 0 && i > 0 && takeover {
						// The stream starts over: so does the history.
						d = NewDecoder(15, takeover, in.next)
					}
					in.set(comps[k], 0)
					d.Start()
					n := 0
					for {
						m, err := d.Read(buf[n:])
						n += m
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					if n != len(dt.msgs[k]) {
						b.Fatalf("message %d: %d bytes, want %d", k, n, len(dt.msgs[k]))
					}
				}
			})
		}
	}
}
