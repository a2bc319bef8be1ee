package websocket

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeConn returns a server Conn for the push-style core's tests; its
// network connection is never used by frames that follow the protocol.
func decodeConn(t *testing.T) *Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return newConn(a, true, 0, 0, nil, nil)
}

// TestDecodeFrameNeed hands decodeFrame every prefix of a frame and checks
// the push-style contract: too few bytes consume nothing and ask for more
// than they hold, within a control frame's whole size; the full frame is
// decoded from any buffer that starts with it.
func TestDecodeFrameNeed(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	frame := func(op byte, n int) []byte {
		f := appendFrameHeader(nil, true, 0, op, n, true, key)
		return append(f, bytes.Repeat([]byte{'x'}, n)...)
	}
	tests := []struct {
		name    string
		frame   []byte
		consume int // bytes decodeFrame takes: the header, plus a control payload
		ctrl    int // control payload length
	}{
		{"empty text", frame(opText, 0), 6, 0},
		{"text 7-bit length", frame(opText, 100), 6, 0},
		{"binary 16-bit length", frame(opBinary, 300), 8, 0},
		{"binary 64-bit length", frame(opBinary, 70000), 14, 0},
		{"empty ping", frame(opPing, 0), 6, 0},
		{"ping of 125 bytes", frame(opPing, 125), 131, 125},
		{"pong", frame(opPong, 7), 13, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := decodeConn(t)
			for k := 0; k < tt.consume; k++ {
				_, ctrl, n, need, err := c.decodeFrame(tt.frame[:k])
				require.NoError(t, err, "prefix %d", k)
				assert.Zero(t, n, "prefix %d consumed bytes", k)
				assert.Nil(t, ctrl, "prefix %d", k)
				assert.Greater(t, need, k, "prefix %d must ask for more than it holds", k)
				assert.LessOrEqual(t, need, tt.consume, "prefix %d asks past the frame's decoded part", k)
				assert.LessOrEqual(t, need, maxFrameHeaderSize+maxControlPayload)
			}
			for _, end := range []int{tt.consume, len(tt.frame)} {
				h, ctrl, n, need, err := c.decodeFrame(tt.frame[:end])
				require.NoError(t, err)
				assert.Zero(t, need)
				assert.Equal(t, tt.consume, n)
				assert.Len(t, ctrl, tt.ctrl)
				assert.Equal(t, tt.frame[0]&0x0f, h.opcode)
			}
		})
	}
}

// TestDecodeByteAtATime drives the core as an event loop would, handing
// it one more byte at a time, and checks that a fragmented text message
// with a ping between its fragments comes out whole and the ping is
// handled once.
func TestDecodeByteAtATime(t *testing.T) {
	c := decodeConn(t)
	pings := 0
	c.SetPingHandler(func(string) error { pings++; return nil })
	key := [4]byte{9, 8, 7, 6}
	var stream []byte
	add := func(fin bool, op byte, payload string) {
		p := []byte(payload)
		maskBytes(key, 0, p)
		stream = appendFrameHeader(stream, fin, 0, op, len(p), true, key)
		stream = append(stream, p...)
	}
	add(false, opText, "héllo, ")
	add(true, opPing, "are you there")
	add(true, opContinuation, strings.Repeat("wörld", 40))

	var got []byte
	var buf []byte // what has arrived and is not yet consumed
	ended := false
	for _, b := range stream {
		buf = append(buf, b)
		for len(buf) > 0 && !ended {
			if c.frameLeft > 0 {
				n := min(int64(len(buf)), c.frameLeft)
				p := buf[:n]
				c.payloadArrived(p)
				require.NoError(t, c.received(p))
				got = append(got, p...)
				buf = buf[n:]
				if c.frameLeft == 0 && c.frameFinal {
					require.NoError(t, c.finishMessage())
					ended = true
				}
				continue
			}
			h, ctrl, n, need, err := c.decodeFrame(buf)
			require.NoError(t, err)
			if need > 0 {
				break
			}
			buf = buf[n:]
			_, err = c.applyFrame(&h, ctrl)
			require.NoError(t, err)
		}
	}
	assert.True(t, ended, "the message did not end")
	assert.Empty(t, buf)
	assert.Equal(t, "héllo, "+strings.Repeat("wörld", 40), string(got))
	assert.Equal(t, 1, pings)
	assert.Zero(t, c.msgType, "the Conn is between messages")
}
