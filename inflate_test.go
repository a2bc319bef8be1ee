package websocket

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// infPair returns a server Conn that negotiated permessage-deflate (with or
// without client context takeover) and the raw client end of its TCP
// connection.
func infPair(t *testing.T, takeover bool) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	srv, err := ln.Accept()
	require.NoError(t, err)
	c := newConn(srv, true, 0, 0, nil, nil)
	c.compressionNegotiated = true
	c.inflate = newInflateState(c, takeover, 15)
	t.Cleanup(func() { c.Close(); raw.Close() })
	return c, raw
}

// infFrame is a masked client frame.
func infFrame(fin bool, rsv, op byte, payload []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := appendFrameHeader(nil, fin, rsv, op, len(payload), true, key)
	hl := len(b)
	b = append(b, payload...)
	maskBytes(key, 0, b[hl:])
	return b
}

// infCompressor compresses messages as a peer would: a sync flush per
// message with the tail removed, keeping the LZ77 window between messages
// (context takeover) unless fresh is set.
type infCompressor struct {
	buf bytes.Buffer
	fw  *flate.Writer
}

func newInfCompressor(t *testing.T) *infCompressor {
	fc := &infCompressor{}
	var err error
	fc.fw, err = flate.NewWriter(&fc.buf, flate.BestCompression)
	require.NoError(t, err)
	return fc
}

func (fc *infCompressor) compress(t *testing.T, msg []byte, fresh bool) []byte {
	if fresh {
		fc.fw.Reset(&fc.buf)
	}
	fc.buf.Reset()
	_, err := fc.fw.Write(msg)
	require.NoError(t, err)
	require.NoError(t, fc.fw.Flush())
	out := bytes.Clone(fc.buf.Bytes())
	require.True(t, bytes.HasSuffix(out, deflateTail[:]))
	return out[:len(out)-4]
}

// infReadClose reads frames from the raw end until a close frame and
// returns its code.
func infReadClose(t *testing.T, raw net.Conn) int {
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
			c, raw := infPair(t, takeover)
			fc := newInfCompressor(t)
			const count = 300
			go func() {
				for i := 0; i < count; i++ {
					msg := chat(i)
					z := fc.compress(t, msg, !takeover)
					var b []byte
					switch i % 3 {
					case 0: // one frame
						b = infFrame(true, rsv1Bit, opText, z)
					case 1: // two fragments with a ping between them
						h := len(z) / 2
						b = append(infFrame(false, rsv1Bit, opText, z[:h]), infFrame(true, 0, opPing, []byte("p"))...)
						b = append(b, infFrame(true, 0, opContinuation, z[h:])...)
					default: // an empty first fragment
						b = append(infFrame(false, rsv1Bit, opText, nil), infFrame(true, 0, opContinuation, z)...)
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
			require.Nil(t, c.inflate.fr, "the flate reader goes back to the pool between messages")
		})
	}
}

func TestInflateFinalBlockAndStored(t *testing.T) {
	c, raw := infPair(t, true)
	// A complete stream with BFINAL set, as RFC 7692 7.2.3.4 allows, then
	// a stored block message.
	var zb bytes.Buffer
	fw, err := flate.NewWriter(&zb, flate.BestSpeed)
	require.NoError(t, err)
	fw.Write([]byte("final block message"))
	require.NoError(t, fw.Close())
	stored := []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'}
	go raw.Write(append(infFrame(true, rsv1Bit, opText, zb.Bytes()), infFrame(true, rsv1Bit, opBinary, stored)...))
	_, p, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "final block message", string(p))
	_, p, err = c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "hello", string(p))
}

func TestInflateFailures(t *testing.T) {
	bomb := func(t *testing.T) []byte {
		fc := newInfCompressor(t)
		return fc.compress(t, make([]byte, 4<<20), true)
	}
	for _, tc := range []struct {
		name  string
		limit int64
		bytes func(t *testing.T) []byte
		code  int
		err   error
	}{
		{"corrupt data", 0, func(t *testing.T) []byte { return infFrame(true, rsv1Bit, opBinary, []byte{0xff, 0xff, 0xff}) }, CloseInvalidFramePayloadData, errInvalidCompressed},
		{"RSV1 on a continuation", 0, func(t *testing.T) []byte {
			return append(infFrame(false, rsv1Bit, opText, nil), infFrame(true, rsv1Bit, opContinuation, []byte{0})...)
		}, CloseProtocolError, nil},
		{"RSV1 on a ping", 0, func(t *testing.T) []byte { return infFrame(true, rsv1Bit, opPing, nil) }, CloseProtocolError, nil},
		{"invalid UTF-8 once inflated", 0, func(t *testing.T) []byte {
			return infFrame(true, rsv1Bit, opText, newInfCompressor(t).compress(t, []byte{'a', 0xff, 'b'}, true))
		}, CloseInvalidFramePayloadData, nil},
		{"inflation past the read limit", 64 << 10, func(t *testing.T) []byte { return infFrame(true, rsv1Bit, opBinary, bomb(t)) }, CloseMessageTooBig, ErrReadLimit},
		{"data after a final block", 0, func(t *testing.T) []byte {
			var zb bytes.Buffer
			fw, _ := flate.NewWriter(&zb, flate.BestSpeed)
			fw.Write([]byte("x"))
			fw.Close()
			return infFrame(true, rsv1Bit, opBinary, append(zb.Bytes(), 1, 2, 3))
		}, CloseInvalidFramePayloadData, errInvalidCompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, raw := infPair(t, true)
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
			require.Equal(t, tc.code, infReadClose(t, raw))
		})
	}
}

// TestInflateDiscardKeepsWindow checks that a compressed message the
// application skips still feeds the context takeover window.
func TestInflateDiscardKeepsWindow(t *testing.T) {
	c, raw := infPair(t, true)
	fc := newInfCompressor(t)
	first := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 50))
	second := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 51))
	go raw.Write(append(infFrame(true, rsv1Bit, opText, fc.compress(t, first, false)), infFrame(true, rsv1Bit, opText, fc.compress(t, second, false))...))
	_, _, err := c.NextReader() // skipped
	require.NoError(t, err)
	_, p, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, string(second), string(p))
}
