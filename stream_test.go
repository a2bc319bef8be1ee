package websocket

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStreamRelayOneFrame pins that an io.Copy from NextReader to
// NextWriter (an echo, a relay) sends a message that came as one frame as
// one frame, as long as it is within maxStreamFrame, whatever the write
// buffer size; larger ones go out in frames of maxStreamFrame.
func TestStreamRelayOneFrame(t *testing.T) {
	for _, side := range rawSides {
		t.Run(side.name, func(t *testing.T) {
			p := side.start(t, echoStreamed) // io.Copy from NextReader to NextWriter
			for _, n := range []int{0, 100, 4096, 4097, 100 << 10} {
				msg := bytes.Repeat([]byte{'x'}, n)
				p.send(rawF(opBinary, true, string(msg)))
				p.expectData(opBinary, msg)
			}
			// Past maxStreamFrame: fragments of at most that size.
			big := bytes.Repeat([]byte{'y'}, maxStreamFrame+1000)
			p.send(rawF(opText, true, string(big)))
			var got []byte
			for i := 0; ; i++ {
				f := p.next()
				wantOp := byte(opContinuation)
				if i == 0 {
					wantOp = opText
				}
				require.Equal(t, wantOp, f.op, "opcode of fragment %d", i)
				require.LessOrEqual(t, len(f.payload), maxStreamFrame, "size of fragment %d", i)
				got = append(got, f.payload...)
				if f.fin {
					break
				}
			}
			require.True(t, bytes.Equal(big, got), "relayed message: %d bytes, want %d", len(got), len(big))
		})
	}
}
