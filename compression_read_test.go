package websocket

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// deflateServerPair returns a server Conn that negotiated permessage-deflate (with or
// without client context takeover) and the raw client end of its TCP
// connection.
func deflateServerPair(t *testing.T, takeover bool) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv, err := ln.Accept()
	require.NoError(t, err)
	c := newConn(srv, true, 0, 0, nil, nil)
	c.inflate = flate.NewDecoder(15, takeover, c.payloadRun)
	t.Cleanup(func() { c.Close(); raw.Close() })
	return c, raw
}

// maskedClientFrame is a masked client frame.
func maskedClientFrame(fin bool, rsv, op byte, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := appendFrameHeader(nil, fin, rsv, op, len(payload), true, key)
	hl := len(b)
	b = append(b, payload...)
	maskBytes(key, 0, b[hl:])
	return b
}

// requireCloseCode reads frames from the raw end until a close frame and
// returns its code.
func requireCloseCode(t *testing.T, raw net.Conn) int {
	t.Helper()
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(5*time.Second)))
	for {
		var h [2]byte
		_, err := io.ReadFull(raw, h[:])
		require.NoError(t, err)
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			_, err = io.ReadFull(raw, e[:])
			n = int(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			_, err = io.ReadFull(raw, e[:])
			n = int(binary.BigEndian.Uint64(e[:]))
		}
		require.NoError(t, err)
		p := make([]byte, n)
		_, err = io.ReadFull(raw, p)
		require.NoError(t, err)
		if h[0]&0xf == opClose {
			require.GreaterOrEqual(t, len(p), 2)
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

func TestInflateMessages(t *testing.T) {
	chat := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"type":"message","room":"general","user":"user%d","text":"hello number %d","ts":%d}`, i%7, i, 1700000000+i))
	}
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			c, raw := deflateServerPair(t, takeover)
			fc := flatetest.NewStdCompressor(t, stdflate.BestCompression)
			const count = 300
			go func() {
				for i := 0; i < count; i++ {
					msg := chat(i)
					z := fc.Compress(t, msg, !takeover)
					var b []byte
					switch i % 3 {
					case 0: // one frame
						b = maskedClientFrame(true, rsv1Bit, opText, z)
					case 1: // two fragments with a ping between them
						h := len(z) / 2
						b = append(maskedClientFrame(false, rsv1Bit, opText, z[:h]), maskedClientFrame(true, 0, opPing, []byte("p"))...)
						b = append(b, maskedClientFrame(true, 0, opContinuation, z[h:])...)
					default: // an empty first fragment
						b = append(maskedClientFrame(false, rsv1Bit, opText, nil), maskedClientFrame(true, 0, opContinuation, z)...)
					}
					if _, err := raw.Write(b); err != nil {
						return
					}
				}
			}()
			for i := 0; i < count; i++ {
				var got []byte
				var err error
				if i%2 == 0 {
					_, got, err = c.ReadMessage()
				} else {
					var r io.Reader
					_, r, err = c.NextReader()
					require.NoError(t, err)
					got, err = io.ReadAll(r)
				}
				require.NoError(t, err, "message %d", i)
				require.Equal(t, string(chat(i)), string(got), "message %d", i)
			}
			require.False(t, c.inflate.Active(), "the decoder holds no pooled memory between messages")
		})
	}
}

func TestInflateFailures(t *testing.T) {
	bomb := func(t *testing.T) []byte {
		fc := flatetest.NewStdCompressor(t, stdflate.BestCompression)
		return fc.Compress(t, make([]byte, 4<<20), true)
	}
	for _, tc := range []struct {
		name  string
		limit int64
		bytes func(t *testing.T) []byte
		code  int
		err   error
	}{
		{"corrupt data", 0, func(t *testing.T) []byte { return maskedClientFrame(true, rsv1Bit, opBinary, []byte{0xff, 0xff, 0xff}) }, CloseInvalidFramePayloadData, errInvalidCompressed},
		{"RSV1 on a continuation", 0, func(t *testing.T) []byte {
			return append(maskedClientFrame(false, rsv1Bit, opText, nil), maskedClientFrame(true, rsv1Bit, opContinuation, []byte{0})...)
		}, CloseProtocolError, nil},
		{"RSV1 on a ping", 0, func(t *testing.T) []byte { return maskedClientFrame(true, rsv1Bit, opPing, nil) }, CloseProtocolError, nil},
		{"invalid UTF-8 once inflated", 0, func(t *testing.T) []byte {
			return maskedClientFrame(true, rsv1Bit, opText, flatetest.NewStdCompressor(t, stdflate.BestCompression).Compress(t, []byte{'a', 0xff, 'b'}, true))
		}, CloseInvalidFramePayloadData, nil},
		{"inflation past the read limit", 64 << 10, func(t *testing.T) []byte { return maskedClientFrame(true, rsv1Bit, opBinary, bomb(t)) }, CloseMessageTooBig, ErrReadLimit},
		{"data after a final block", 0, func(t *testing.T) []byte {
			var zb bytes.Buffer
			fw, _ := stdflate.NewWriter(&zb, stdflate.BestSpeed)
			fw.Write([]byte("x"))
			fw.Close()
			return maskedClientFrame(true, rsv1Bit, opBinary, append(zb.Bytes(), 1, 2, 3))
		}, CloseInvalidFramePayloadData, errInvalidCompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, raw := deflateServerPair(t, true)
			c.SetReadLimit(tc.limit)
			go raw.Write(tc.bytes(t))
			_, _, err := c.ReadMessage()
			require.Error(t, err)
			if tc.err != nil {
				require.True(t, errors.Is(err, tc.err), "got %v", err)
			}
			var pe *ProtocolError
			if errors.As(err, &pe) {
				require.Equal(t, tc.code, pe.Code)
			}
			require.Equal(t, tc.code, requireCloseCode(t, raw))
		})
	}
}

// TestInflateDiscardKeepsWindow checks that a compressed message the
// application skips still feeds the context takeover window.
func TestInflateDiscardKeepsWindow(t *testing.T) {
	c, raw := deflateServerPair(t, true)
	fc := flatetest.NewStdCompressor(t, stdflate.BestCompression)
	first := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 50))
	second := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 51))
	go raw.Write(append(maskedClientFrame(true, rsv1Bit, opText, fc.Compress(t, first, false)), maskedClientFrame(true, rsv1Bit, opText, fc.Compress(t, second, false))...))
	_, _, err := c.NextReader() // skipped
	require.NoError(t, err)
	_, p, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, string(second), string(p))
}

// TestInflateDifferential checks the compressed read path against
// compress/flate's encoder at every level, with and without context
// takeover, on messages of many shapes split into fragments and delivered
// in small reads (internal/flate's TestDecoderDifferential checks the
// decoder alone).
func TestInflateDifferential(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	corpus := append(flatetest.ChatJSON(3, 40), flatetest.SnapshotJSON(4, 10)...)
	random := make([]byte, 70000)
	rng.Read(random)
	corpus = append(corpus, random[:1], random[:300], random, bytes.Repeat([]byte("ab"), 40000), nil, []byte("x"))
	for level := -2; level <= 9; level++ {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("level=%d/takeover=%t", level, takeover), func(t *testing.T) {
				var zb bytes.Buffer
				fw, err := stdflate.NewWriter(&zb, level)
				require.NoError(t, err)
				var stream []byte
				var want [][]byte
				for i := 0; i < 60; i++ {
					msg := corpus[rng.Intn(len(corpus))]
					if !takeover {
						fw.Reset(&zb)
					}
					zb.Reset()
					_, _ = fw.Write(msg)
					require.NoError(t, fw.Flush())
					payload := bytes.TrimSuffix(zb.Bytes(), []byte(flate.Tail))
					// Fragment it at random points.
					rest, first := payload, true
					for {
						n := len(rest)
						if n > 1 && rng.Intn(3) == 0 {
							n = rng.Intn(n)
						}
						op, rsv := byte(opContinuation), byte(0)
						if first {
							op, rsv = opBinary, rsv1Bit
						}
						key := [4]byte{byte(i), 2, 3, 4}
						fin := n == len(rest)
						stream = appendFrameHeader(stream, fin, rsv, op, n, true, key)
						hl := len(stream)
						stream = append(stream, rest[:n]...)
						maskBytes(key, 0, stream[hl:])
						rest, first = rest[n:], false
						if fin {
							break
						}
					}
					want = append(want, msg)
				}
				c := newConn(&chunkedConn{data: stream, chunk: 1 + rng.Intn(700)}, true, 0, 0, nil, nil)
				c.enableCompression(pmdParams{serverNoContextTakeover: !takeover, clientNoContextTakeover: !takeover, serverMaxWindowBits: 15, clientMaxWindowBits: 15}, &CompressionOptions{})
				for i, w := range want {
					_, p, err := c.ReadMessage()
					require.NoError(t, err, "message %d", i)
					require.True(t, bytes.Equal(w, p), "message %d: %d bytes, want %d", i, len(p), len(w))
				}
			})
		}
	}
}
