package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// repeatedFrames returns count copies of a final frame of type op carrying
// payload, masked (with a fixed key) if masked, as a peer would send them.
func repeatedFrames(op byte, payload []byte, masked bool, count int) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	var frame []byte
	frame = appendFrameHeader(frame, true, 0, op, len(payload), masked, key)
	hl := len(frame)
	frame = append(frame, payload...)
	if masked {
		maskBytes(key, 0, frame[hl:])
	}
	return bytes.Repeat(frame, count)
}

// benchReadConn returns a Conn of the given side reading an endless repetition
// of frames with payloads of size bytes of text.
func benchReadConn(isServer bool, size int) *Conn {
	payload := bytes.Repeat([]byte("a"), size)
	count := 1
	if size < 64<<10 {
		count = (64 << 10) / (size + 14)
	}
	// A server reads masked frames from its client and the reverse.
	stream := repeatedFrames(opText, payload, isServer, count)
	return newConn(&ringConn{data: stream}, isServer, 0, 0, nil, nil)
}

var benchSizes = []int{16, 1 << 10, 64 << 10}

func sideName(isServer bool) string {
	if isServer {
		return "server"
	}
	return "client"
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func BenchmarkMask(b *testing.B) {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, size := range []int{1, 7, 16, 64, 128, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 1 << 20} {
		buf := make([]byte, size+1)
		src := make([]byte, size)
		b.Run(sizeName(size)+"/maskBytes", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				maskBytes(key, i, buf[:size])
			}
		})
		b.Run(sizeName(size)+"/maskBytesUnaligned", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				maskBytes(key, i, buf[1:size+1])
			}
		})
		b.Run(sizeName(size)+"/byteLoop", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				maskReference(key, i, buf[:size])
			}
		})
		b.Run(sizeName(size)+"/copy", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for i := 0; i < b.N; i++ {
				copy(buf, src)
			}
		})
	}
}

var (
	sinkHeader frameHeader
	sinkInt    int
	sinkBool   bool
)

func BenchmarkFrameHeader(b *testing.B) {
	key := [4]byte{1, 2, 3, 4}
	for _, tc := range []struct {
		name   string
		length int
		masked bool
	}{
		{"125", 125, false},
		{"125masked", 125, true},
		{"64KiB", 64 << 10, false},
		{"64KiBmasked", 64 << 10, true},
	} {
		var buf [maxFrameHeaderSize]byte
		b.Run("encode/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(headerSize(tc.length, tc.masked)))
			for i := 0; i < b.N; i++ {
				sinkInt += len(appendFrameHeader(buf[:0], true, 0, opBinary, tc.length, tc.masked, key))
			}
		})
		hdr := appendFrameHeader(nil, true, 0, opBinary, tc.length, tc.masked, key)
		b.Run("decode/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(hdr)))
			for i := 0; i < b.N; i++ {
				h, n, perr := parseFrameHeader(hdr)
				if perr != nil || checkFrameHeader(&h, tc.masked, 0) != nil {
					b.Fatal("bad header")
				}
				sinkHeader = h
				sinkInt += n
			}
		})
	}
}

func BenchmarkUTF8Validator(b *testing.B) {
	for _, tc := range []struct {
		name string
		text []byte
	}{
		{"ascii4KiB", bytes.Repeat([]byte("abcd"), 1<<10)},
		{"mixed4KiB", bytes.Repeat([]byte("aé€😀"), 4<<10/10)},
	} {
		b.Run(tc.name+"/validator", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.text)))
			var v utf8Validator
			for i := 0; i < b.N; i++ {
				v.reset()
				sinkBool = v.write(tc.text[:len(tc.text)/2-1]) && v.write(tc.text[len(tc.text)/2-1:]) && v.complete()
			}
		})
		b.Run(tc.name+"/utf8.Valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.text)))
			for i := 0; i < b.N; i++ {
				sinkBool = utf8.Valid(tc.text)
			}
		})
	}
}

func BenchmarkWriteMessage(b *testing.B) {
	for _, isServer := range []bool{true, false} {
		for _, size := range benchSizes {
			b.Run(sideName(isServer)+"/"+sizeName(size), func(b *testing.B) {
				c := newConn(discardConn{}, isServer, 0, 0, nil, nil)
				msg := bytes.Repeat([]byte("a"), size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := c.WriteMessage(TextMessage, msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWriteMessageParallel writes to one server Conn from
// GOMAXPROCS goroutines at once: what the write locks cost when writers
// contend, with and without a write deadline (whose waits can give up).
func BenchmarkWriteMessageParallel(b *testing.B) {
	for _, deadline := range []bool{false, true} {
		b.Run(fmt.Sprintf("deadline=%v", deadline), func(b *testing.B) {
			c := newConn(discardConn{}, true, 0, 0, nil, nil)
			if deadline {
				c.SetWriteDeadline(time.Now().Add(time.Hour))
			}
			msg := bytes.Repeat([]byte("a"), 128)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.WriteMessage(TextMessage, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkReadMessage(b *testing.B) {
	for _, isServer := range []bool{true, false} {
		for _, size := range benchSizes {
			b.Run(sideName(isServer)+"/"+sizeName(size), func(b *testing.B) {
				c := benchReadConn(isServer, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, p, err := c.ReadMessage()
					if err != nil || len(p) != size {
						b.Fatal(len(p), err)
					}
				}
			})
		}
	}
}

func BenchmarkNextReaderRead(b *testing.B) {
	for _, isServer := range []bool{true, false} {
		for _, size := range benchSizes {
			b.Run(sideName(isServer)+"/"+sizeName(size), func(b *testing.B) {
				c := benchReadConn(isServer, size)
				buf := make([]byte, size)
				b.ReportAllocs()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					_, r, err := c.NextReader()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(r, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	const runs = 200
	for _, isServer := range []bool{true, false} {
		for _, size := range benchSizes {
			name := sideName(isServer) + "/" + sizeName(size)
			t.Run("WriteMessage/"+name, func(t *testing.T) {
				c := newConn(discardConn{}, isServer, 0, 0, nil, nil)
				msg := bytes.Repeat([]byte("a"), size)
				allocs := testing.AllocsPerRun(runs, func() {
					if err := c.WriteMessage(BinaryMessage, msg); err != nil {
						t.Fatal(err)
					}
				})
				assert.Zero(t, allocs, "allocations per WriteMessage")
			})
			t.Run("NextWriter/"+name, func(t *testing.T) {
				c := newConn(discardConn{}, isServer, 0, 0, nil, nil)
				msg := bytes.Repeat([]byte("a"), size)
				allocs := testing.AllocsPerRun(runs, func() {
					w, err := c.NextWriter(BinaryMessage)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write(msg); err != nil {
						t.Fatal(err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
				})
				assert.Zero(t, allocs, "allocations per NextWriter+Write+Close")
			})
			t.Run("NextReaderRead/"+name, func(t *testing.T) {
				c := benchReadConn(isServer, size)
				buf := make([]byte, size)
				allocs := testing.AllocsPerRun(runs, func() {
					_, r, err := c.NextReader()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := io.ReadFull(r, buf); err != nil {
						t.Fatal(err)
					}
				})
				assert.Zero(t, allocs, "allocations per NextReader+io.ReadFull")
			})
			t.Run("NextReaderReadToEOF/"+name, func(t *testing.T) {
				c := benchReadConn(isServer, size)
				buf := make([]byte, size+1)
				allocs := testing.AllocsPerRun(runs, func() {
					_, r, err := c.NextReader()
					if err != nil {
						t.Fatal(err)
					}
					if n, err := io.ReadFull(r, buf); err != io.ErrUnexpectedEOF || n != size {
						t.Fatal(n, err)
					}
				})
				assert.Zero(t, allocs, "allocations per NextReader+Read to io.EOF")
			})
			t.Run("ReadMessage/"+name, func(t *testing.T) {
				c := benchReadConn(isServer, size)
				allocs := testing.AllocsPerRun(runs, func() {
					_, p, err := c.ReadMessage()
					if err != nil || len(p) != size {
						t.Fatal(len(p), err)
					}
				})
				assert.LessOrEqual(t, allocs, 1.0, "allocations per ReadMessage")
			})
		}
	}
	t.Run("WriteControl", func(t *testing.T) {
		for _, isServer := range []bool{true, false} {
			c := newConn(discardConn{}, isServer, 0, 0, nil, nil)
			data := []byte("ping")
			allocs := testing.AllocsPerRun(runs, func() {
				if err := c.WriteControl(PingMessage, data, time.Time{}); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, allocs, "allocations per WriteControl, %s", sideName(isServer))
		}
	})
}

func TestUnitStubStreamsReadBack(t *testing.T) {
	// The benchmark fixtures themselves: the ring serves valid frames the
	// Conn reads back as the payload they were built from.
	for _, isServer := range []bool{true, false} {
		for _, size := range []int{0, 16, 125, 126, 1 << 10, 64 << 10} {
			c := benchReadConn(isServer, size)
			for i := 0; i < 3; i++ {
				mt, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, TextMessage, mt)
				require.Equal(t, bytes.Repeat([]byte("a"), size), p, "%s size %d", sideName(isServer), size)
			}
		}
	}
}

func TestUnitWritePathWire(t *testing.T) {
	// What the write benchmarks measure puts correct frames on the wire,
	// and leaves the caller's data alone.
	for _, isServer := range []bool{true, false} {
		for _, size := range []int{0, 1, 125, 126, 4095, 4096, 4097, 8192 + 3, 64 << 10, 1 << 20} {
			name := sideName(isServer) + "/" + strconv.Itoa(size)
			t.Run(name, func(t *testing.T) {
				nc := &chunkedConn{}
				c := newConn(nc, isServer, 0, 0, nil, nil)
				msg := make([]byte, size)
				for i := range msg {
					msg[i] = byte(i*7 + 1)
				}
				orig := cloneBytes(msg)
				require.NoError(t, c.WriteMessage(BinaryMessage, msg))
				require.Equal(t, orig, msg, "WriteMessage modified the caller's data")

				writeInPieces(t, c, BinaryMessage, msg, 1000)
				require.Equal(t, orig, msg, "NextWriter modified the caller's data")

				require.NoError(t, c.WriteMessage(TextMessage, []byte("end")))
				// The peer of a server reads as a client and the reverse.
				out := referenceRead(nc.written(), !isServer, 0)
				require.Equal(t, "close", out.err)
				require.Equal(t, CloseAbnormalClosure, out.code, "the stream must end cleanly between frames")
				require.Len(t, out.msgs, 3)
				assert.Equal(t, readResult{typ: BinaryMessage, data: orig}, out.msgs[0])
				assert.Equal(t, readResult{typ: BinaryMessage, data: orig}, out.msgs[1])
				assert.Equal(t, readResult{typ: TextMessage, data: []byte("end")}, out.msgs[2])
			})
		}
	}
}

// TestZeroAllocsIdleWaitTCP checks, over real loopback TCP, that a server Conn waiting
// for its next message holds no read buffer and that the buffer-free wait
// allocates nothing per message.
func TestZeroAllocsIdleWaitTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer cli.Close()
	srv, err := ln.Accept()
	require.NoError(t, err)
	c := newConn(srv, true, 0, 0, nil, nil)
	defer c.Close()
	require.NotNil(t, c.idle, "a TCP connection should wait without a buffer")

	payload := []byte("sixteen byte msg")
	frame := repeatedFrames(opBinary, payload, true, 1)
	send := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		for range send {
			_, err := cli.Write(frame)
			sent <- err
		}
	}()
	defer close(send)

	// readOne checks without testify, whose calls allocate, and keeps the
	// first problem for after the measurement.
	buf := make([]byte, 64)
	var problem error
	readOne := func() {
		send <- struct{}{}
		_, r, err := c.NextReader()
		if err == nil {
			var n int
			n, err = io.ReadFull(r, buf[:len(payload)])
			if err == nil && !bytes.Equal(payload, buf[:n]) {
				err = errors.New("payload differs")
			}
		}
		if err == nil {
			if _, eof := r.Read(buf); eof != io.EOF {
				err = errors.New("no io.EOF at the end of the message")
			}
		}
		if werr := <-sent; err == nil {
			err = werr
		}
		if err == nil && c.rb != nil {
			err = errors.New("the read buffer is held between messages")
		}
		if err != nil && problem == nil {
			problem = err
		}
	}
	readOne()
	require.NoError(t, problem)
	if flatetest.RaceEnabled() {
		return
	}
	allocs := testing.AllocsPerRun(200, readOne)
	require.NoError(t, problem)
	require.Zero(t, allocs, "allocations per message with buffer-free waits")
}
