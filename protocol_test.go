package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rule is a sequence of frames the Conn must reject with a close
// code.
type rule struct {
	name   string
	frames []rawFrame
	code   int
}

func runRules(t *testing.T, rules []rule, setup func(c *Conn)) {
	t.Helper()
	if setup == nil {
		setup = func(*Conn) {}
	}
	for _, side := range echoSides {
		for _, r := range rules {
			t.Run(side.name+"/"+r.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, setup)
				p.send(r.frames...)
				p.expectFailed(r.code)
			})
		}
	}
}

func TestProtoLengthForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		n    int
		form int
	}{
		{"7-bit", 125, 7},
		{"16-bit min", 126, 16},
		{"16-bit", 1000, 16},
		{"16-bit max", 65535, 16},
		{"64-bit", 65536, 64},
		{"64-bit large", 200000, 64},
	}
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			for _, tc := range cases {
				payload := make([]byte, tc.n)
				for i := range payload {
					payload[i] = byte(i*7 + tc.n)
				}
				p.send(rawFrame{op: opBinary, fin: true, payload: payload})
				f := p.expectData(opBinary, payload)
				assert.Equal(t, tc.form, f.form, "%s: length form of the echo", tc.name)
			}
			p.closeNormally()
		})
	}
}

func TestProtoBadFrames(t *testing.T) {
	t.Parallel()
	rules := []rule{
		{"64-bit length with top bit", []rawFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: 1 << 63}}, CloseProtocolError},
		{"64-bit length all ones", []rawFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: ^uint64(0)}}, CloseProtocolError},
		{"wrong masking", []rawFrame{{op: opText, fin: true, payload: []byte("hello"), flipMask: true}}, CloseProtocolError},
		{"wrong masking on ping", []rawFrame{{op: opPing, fin: true, payload: []byte("hello"), flipMask: true}}, CloseProtocolError},
		{"control payload 126", []rawFrame{{op: opPing, fin: true, payload: make([]byte, 126)}}, CloseProtocolError},
		{"close payload 126", []rawFrame{{op: opClose, fin: true, payload: append([]byte{0x03, 0xe8}, make([]byte, 124)...)}}, CloseProtocolError},
		{"control length 126 in 64-bit form", []rawFrame{{op: opPong, fin: true, form: 64, payload: make([]byte, 126)}}, CloseProtocolError},
		// RFC 6455 section 5.2: "the minimal number of bytes MUST be
		// used to encode the length".
		{"length 0 in 16-bit form", []rawFrame{{op: opBinary, fin: true, form: 16}}, CloseProtocolError},
		{"length 125 in 16-bit form", []rawFrame{{op: opText, fin: true, form: 16, payload: bytes.Repeat([]byte("a"), 125)}}, CloseProtocolError},
		{"length 0 in 64-bit form", []rawFrame{{op: opBinary, fin: true, form: 64}}, CloseProtocolError},
		{"length 126 in 64-bit form", []rawFrame{{op: opBinary, fin: true, form: 64, payload: make([]byte, 126)}}, CloseProtocolError},
		{"length 65535 in 64-bit form", []rawFrame{{op: opBinary, fin: true, form: 64, declare: true, declLen: 65535}}, CloseProtocolError},
		{"ping length 5 in 16-bit form", []rawFrame{{op: opPing, fin: true, form: 16, payload: []byte("hello")}}, CloseProtocolError},
		{"non-minimal continuation", []rawFrame{rawF(opText, false, "ab"), {op: opContinuation, fin: true, form: 16, payload: []byte("cd")}}, CloseProtocolError},
		{"ping without FIN", []rawFrame{rawF(opPing, false, "x")}, CloseProtocolError},
		{"pong without FIN", []rawFrame{rawF(opPong, false, "")}, CloseProtocolError},
		{"close without FIN", []rawFrame{{op: opClose, payload: []byte{0x03, 0xe8}}}, CloseProtocolError},
		{"continuation without start", []rawFrame{rawF(opContinuation, true, "abc")}, CloseProtocolError},
		{"unfinished continuation without start", []rawFrame{rawF(opContinuation, false, "abc")}, CloseProtocolError},
		{"text inside unfinished text", []rawFrame{rawF(opText, false, "ab"), rawF(opText, true, "cd")}, CloseProtocolError},
		{"binary inside unfinished text", []rawFrame{rawF(opText, false, "ab"), rawF(opBinary, true, "cd")}, CloseProtocolError},
		{"text inside unfinished binary", []rawFrame{rawF(opBinary, false, "ab"), rawF(opContinuation, false, "cd"), rawF(opText, true, "ef")}, CloseProtocolError},
	}
	for _, rsv := range []byte{rsv1Bit, rsv2Bit, rsv3Bit} {
		for _, op := range []byte{opText, opBinary, opPing, opPong, opClose} {
			f := rawFrame{op: op, fin: true, rsv: rsv}
			if op == opClose {
				f.payload = []byte{0x03, 0xe8}
			}
			rules = append(rules, rule{fmt.Sprintf("RSV %#x on opcode %d", rsv, op), []rawFrame{f}, CloseProtocolError})
		}
	}
	rules = append(rules, rule{"RSV1 on continuation", []rawFrame{rawF(opText, false, "a"), {op: opContinuation, fin: true, rsv: rsv1Bit, payload: []byte("b")}}, CloseProtocolError})
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		rules = append(rules, rule{fmt.Sprintf("opcode %#x", op), []rawFrame{rawF(op, true, "x")}, CloseProtocolError})
	}
	rules = append(rules, rule{"reserved opcode inside a message", []rawFrame{rawF(opText, false, "a"), rawF(0x3, true, "b")}, CloseProtocolError})
	runRules(t, rules, nil)

	for _, side := range echoSides {
		t.Run(side.name+"/continuation after complete message", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			p.send(rawF(opText, true, "a"), rawF(opContinuation, true, "b"))
			p.expectData(opText, []byte("a"))
			p.expectFailed(CloseProtocolError)
		})
	}
}

func TestProtoInvalidUTF8(t *testing.T) {
	t.Parallel()
	rules := []rule{
		{"single frame", []rawFrame{rawF(opText, true, "ok\xff")}, CloseInvalidFramePayloadData},
		{"overlong", []rawFrame{rawF(opText, true, "\xc0\xaf")}, CloseInvalidFramePayloadData},
		{"surrogate", []rawFrame{rawF(opText, true, "\xed\xa0\x80")}, CloseInvalidFramePayloadData},
		{"beyond U+10FFFF", []rawFrame{rawF(opText, true, "\xf4\x90\x80\x80")}, CloseInvalidFramePayloadData},
		{"second fragment", []rawFrame{rawF(opText, false, "fine"), rawF(opContinuation, true, "bad\xff")}, CloseInvalidFramePayloadData},
		{"sequence split across fragments", []rawFrame{rawF(opText, false, "a\xe2\x82"), rawF(opContinuation, true, "(b")}, CloseInvalidFramePayloadData},
		{"surrogate split after its lead byte", []rawFrame{rawF(opText, false, "a\xed"), rawF(opContinuation, true, "\xa0\x80")}, CloseInvalidFramePayloadData},
		{"overlong split after its lead byte", []rawFrame{rawF(opText, false, "a\xe0"), rawF(opContinuation, true, "\x80\x80")}, CloseInvalidFramePayloadData},
		{"beyond U+10FFFF split after its lead byte", []rawFrame{rawF(opText, false, "\xf4"), rawF(opContinuation, true, "\x90\x80\x80")}, CloseInvalidFramePayloadData},
		{"overlong four-byte split", []rawFrame{rawF(opText, false, "\xf0"), rawF(opContinuation, true, "\x80\x80\x80")}, CloseInvalidFramePayloadData},
		{"split four-byte sequence", []rawFrame{rawF(opText, false, "\xf0\x9f"), rawF(opContinuation, false, "\x98"), rawF(opContinuation, true, "z")}, CloseInvalidFramePayloadData},
		{"message ends mid-sequence", []rawFrame{rawF(opText, true, "ab\xe2\x82")}, CloseInvalidFramePayloadData},
		{"fragmented message ends mid-sequence", []rawFrame{rawF(opText, false, "ab"), rawF(opContinuation, true, "\xe2\x82")}, CloseInvalidFramePayloadData},
		{"empty final fragment after cut sequence", []rawFrame{rawF(opText, false, "ab\xf0\x9f\x98"), rawF(opContinuation, true, "")}, CloseInvalidFramePayloadData},
	}
	runRules(t, rules, nil)
}

// TestProtoInvalidUTF8FailFast checks that a text message is rejected at
// the bytes that make it invalid, before the rest of it has arrived: the
// raw peer sends the bad start and then only waits for the close frame.
func TestProtoInvalidUTF8FailFast(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		frame rawFrame
	}{
		{"first fragment", rawF(opText, false, "ok\xff")},
		{"first fragment with valid prefix then bad continuation", rawF(opText, false, "\xe2\x82(")},
		// Each of these is the start of a sequence that no continuation
		// can make valid.
		{"surrogate prefix", rawF(opText, false, "ab\xed\xa0")},
		{"overlong prefix", rawF(opText, false, "ab\xe0\x9f")},
		{"overlong four-byte prefix", rawF(opText, false, "ab\xf0\x8f")},
		{"prefix beyond U+10FFFF", rawF(opText, false, "ab\xf4\x90")},
		{"lead byte 0xf5", rawF(opText, false, "ab\xf5")},
		{"start of a longer frame", rawFrame{op: opText, fin: true, payload: []byte("ab\xff"), declare: true, declLen: 100}},
	}
	for _, side := range echoSides {
		for _, tc := range cases {
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, nil)
				p.send(tc.frame)
				p.expectFailed(CloseInvalidFramePayloadData)
			})
		}
	}
}

func TestProtoValidUTF8Fragments(t *testing.T) {
	t.Parallel()
	// Every way of cutting multi-byte characters into fragments,
	// including empty fragments, must be accepted.
	text := "aé€😀z\u07ff\uffff\U0010ffff"
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			for cut := 0; cut <= len(text); cut++ {
				p.send(rawF(opText, false, text[:cut]), rawF(opContinuation, false, ""), rawF(opContinuation, true, text[cut:]))
				p.expectData(opText, []byte(text))
			}
			// One byte per fragment.
			frames := []rawFrame{rawF(opText, false, text[:1])}
			for i := 1; i < len(text); i++ {
				frames = append(frames, rawF(opContinuation, i == len(text)-1, text[i:i+1]))
			}
			p.send(frames...)
			p.expectData(opText, []byte(text))
			p.closeNormally()
		})
	}
}

func TestProtoPing(t *testing.T) {
	t.Parallel()
	payload := make([]byte, 125)
	for i := range payload {
		payload[i] = byte(255 - i) // not UTF-8: ping data is opaque
	}
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			for _, data := range [][]byte{payload, nil, []byte("x")} {
				p.send(rawFrame{op: opPing, fin: true, payload: data})
				f := p.next()
				require.Equal(t, byte(opPong), f.op)
				require.True(t, f.fin)
				require.Equal(t, len(data), len(f.payload))
				require.True(t, bytes.Equal(data, f.payload), "pong payload %q", f.payload)
			}
			p.closeNormally()
		})
	}
}

// TestProtoControlBetweenFragments interleaves pings and pongs with the
// fragments of a text message: the ping is answered before the message is
// complete, the pong reaches the pong handler, and the message arrives
// whole.
func TestProtoControlBetweenFragments(t *testing.T) {
	t.Parallel()
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			pongs := make(chan string, 4)
			p := side.start(t, func(c *Conn) {
				c.SetPongHandler(func(s string) error {
					pongs <- s
					return nil
				})
			})
			p.send(rawF(opText, false, "Hel"), rawF(opPing, true, "p1"))
			f := p.next()
			require.Equal(t, byte(opPong), f.op, "the ping must be answered while the message is unfinished")
			require.Equal(t, "p1", string(f.payload))

			p.send(rawF(opContinuation, false, "lo, "), rawF(opPong, true, "q1"), rawF(opPing, true, ""), rawF(opContinuation, true, "wörld"))
			f = p.next()
			require.Equal(t, byte(opPong), f.op)
			require.Empty(t, f.payload)
			p.expectData(opText, []byte("Hello, wörld"))
			select {
			case s := <-pongs:
				require.Equal(t, "q1", s)
			case <-time.After(testWait):
				t.Fatal("pong handler not called")
			}
			require.Empty(t, pongs, "pong handler called more than once")
			p.closeNormally()
		})
	}
}

func TestProtoClose(t *testing.T) {
	t.Parallel()
	type closeCase struct {
		name    string
		payload []byte
		// echo is the code the Conn answers with; fail is the close code
		// for a close frame the Conn must reject (then echo is unused).
		echo, fail int
		text       string
	}
	cases := []closeCase{
		{name: "1000 bye", payload: rawClose(1000, "bye").payload, echo: 1000, text: "bye"},
		{name: "empty", payload: nil, echo: CloseNoStatusReceived},
		{name: "3000", payload: rawClose(3000, "").payload, echo: 3000},
		{name: "4999", payload: rawClose(4999, "über").payload, echo: 4999, text: "über"},
		{name: "1001", payload: rawClose(1001, "").payload, echo: 1001},
		{name: "1011", payload: rawClose(1011, "x").payload, echo: 1011, text: "x"},
		{name: "123-byte reason", payload: rawClose(1000, strings.Repeat("r", 123)).payload, echo: 1000, text: strings.Repeat("r", 123)},
		{name: "payload of one byte", payload: []byte{0x03}, fail: CloseProtocolError},
		{name: "invalid UTF-8 reason", payload: rawClose(1000, "bad\xff").payload, fail: CloseInvalidFramePayloadData},
		{name: "reason ending mid-sequence", payload: rawClose(1000, "\xe2\x82").payload, fail: CloseInvalidFramePayloadData},
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, closeCase{name: fmt.Sprintf("code %d", code), payload: rawClose(code, "").payload, fail: CloseProtocolError})
	}
	for _, side := range echoSides {
		for _, tc := range cases {
			t.Run(side.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := side.start(t, nil)
				p.send(rawFrame{op: opClose, fin: true, payload: tc.payload})
				if tc.fail != 0 {
					p.expectFailed(tc.fail)
					return
				}
				if tc.echo == CloseNoStatusReceived {
					// An empty close is answered with an empty close.
					f := p.next()
					require.Equal(t, byte(opClose), f.op)
					require.Empty(t, f.payload)
					p.expectHandshakeEnd()
					var ce *CloseError
					require.ErrorAs(t, p.result(), &ce)
					require.Equal(t, CloseError{Code: CloseNoStatusReceived}, *ce)
					return
				}
				p.expectClosedBy(tc.echo, tc.text)
			})
		}
	}
}

// TestProtoDataAfterClose checks that frames behind the peer's close frame
// are ignored: the Conn answers the close and nothing else.
func TestProtoDataAfterClose(t *testing.T) {
	t.Parallel()
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			p.send(rawF(opText, true, "before"))
			p.expectData(opText, []byte("before"))
			p.send(rawClose(1000, ""), rawF(opText, true, "after"), rawF(opPing, true, "late"))
			p.expectClosedBy(1000, "")
		})
	}
}

// TestProtoWriteAfterCloseSent has the application start the closing
// handshake; data written after that fails with ErrCloseSent and never
// reaches the peer, and the peer's answer completes the handshake.
func TestProtoWriteAfterCloseSent(t *testing.T) {
	t.Parallel()
	pm, err := NewPreparedMessage(TextMessage, []byte("prepared"))
	require.NoError(t, err)
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			closeErr := make(chan error, 1)
			writeErrs := make(chan error, 8)
			// The echo that follows setup fails to write too.
			p := side.start(t, func(c *Conn) {
				closeErr <- c.WriteControl(CloseMessage, FormatCloseMessage(CloseGoingAway, "going"), time.Now().Add(testWait))
				writeErrs <- c.WriteMessage(TextMessage, []byte("late"))
				writeErrs <- c.WriteControl(PingMessage, nil, time.Now().Add(testWait))
				writeErrs <- c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait))
				_, err := c.NextWriter(BinaryMessage)
				writeErrs <- err
				writeErrs <- c.WritePreparedMessage(pm)
				close(writeErrs)
			})
			code, reason := p.expectClose()
			require.Equal(t, CloseGoingAway, code)
			require.Equal(t, "going", reason)
			require.NoError(t, <-closeErr)
			for err := range writeErrs {
				require.ErrorIs(t, err, ErrCloseSent)
			}
			// Data from the peer is still read but cannot be echoed.
			p.send(rawF(opText, true, "x"), rawClose(CloseGoingAway, "ok"))
			p.expectHandshakeEnd()
			var ce *CloseError
			require.ErrorAs(t, p.result(), &ce)
			require.Equal(t, CloseError{Code: CloseGoingAway, Text: "ok"}, *ce)
		})
	}
}

func TestProtoReadLimit(t *testing.T) {
	t.Parallel()
	limit := func(c *Conn) { c.SetReadLimit(1024) }
	big := rawFrame{op: opBinary, fin: true, declare: true, declLen: 1 << 40}
	rules := []rule{
		// Only the header is sent: the Conn must not wait for the payload.
		{"header announcing 2^40 bytes", []rawFrame{big}, CloseMessageTooBig},
		{"one byte over", []rawFrame{{op: opBinary, fin: true, payload: make([]byte, 1025)}}, CloseMessageTooBig},
		{"fragments over the limit", []rawFrame{{op: opText, payload: make([]byte, 600)}, {op: opContinuation, fin: true, payload: make([]byte, 600)}}, CloseMessageTooBig},
		{"third fragment over the limit", []rawFrame{{op: opBinary, payload: make([]byte, 512)}, {op: opContinuation, payload: make([]byte, 512)}, {op: opContinuation, fin: true, payload: make([]byte, 1)}}, CloseMessageTooBig},
		{"huge continuation", []rawFrame{{op: opBinary, payload: make([]byte, 10)}, {op: opContinuation, fin: true, declare: true, declLen: 1<<63 - 1}}, CloseMessageTooBig},
	}
	runRules(t, rules, limit)

	for _, side := range echoSides {
		t.Run(side.name+"/at the limit", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, limit)
			msg := bytes.Repeat([]byte("0123456789abcdef"), 64)
			p.send(rawFrame{op: opBinary, fin: true, payload: msg})
			p.expectData(opBinary, msg)
			p.send(rawFrame{op: opText, payload: msg[:512]}, rawF(opPing, true, "x"), rawFrame{op: opContinuation, fin: true, payload: msg[512:]})
			require.Equal(t, byte(opPong), p.next().op)
			p.expectData(opText, msg)
			// The limit is per message, not per connection.
			p.send(rawFrame{op: opBinary, fin: true, payload: msg})
			p.expectData(opBinary, msg)
			p.closeNormally()
		})
	}
}

// TestProtoFailurePermanent checks that the error of a failed connection
// stays the same for later reads.
func TestProtoFailurePermanent(t *testing.T) {
	t.Parallel()
	p := serveRaw(t, func(c *Conn) error {
		_, _, err := c.ReadMessage()
		for i := 0; i < 3; i++ {
			_, _, again := c.ReadMessage()
			if again != err {
				return fmt.Errorf("read %d after failure: %v, first %v", i, again, err)
			}
			if _, _, again = c.NextReader(); again != err {
				return fmt.Errorf("NextReader after failure: %v, first %v", again, err)
			}
		}
		if werr := c.WriteMessage(TextMessage, []byte("x")); werr == nil {
			return errors.New("write after failure succeeded")
		}
		return err
	})
	p.send(rawF(0x3, true, ""))
	p.expectFailed(CloseProtocolError)
}

// TestProtoControlDuringStream checks that a ping is answered while the
// Conn's application holds a NextWriter open in the middle of a message:
// the pong goes out between two fragments.
func TestProtoControlDuringStream(t *testing.T) {
	t.Parallel()
	for _, side := range rawSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			proceed := make(chan struct{})
			p := side.start(t, func(c *Conn) error {
				w, err := c.NextWriter(BinaryMessage)
				if err != nil {
					return err
				}
				// More than the write buffer: one fragment goes out.
				if _, err := w.Write(bytes.Repeat([]byte{1}, 5000)); err != nil {
					return err
				}
				readErr := make(chan error, 1)
				go func() {
					_, _, err := c.ReadMessage()
					readErr <- err
				}()
				select {
				case <-proceed:
				case err := <-readErr:
					return err
				}
				if _, err := w.Write(bytes.Repeat([]byte{2}, 100)); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				return <-readErr
			})
			var got []byte
			f := p.next()
			require.Equal(t, byte(opBinary), f.op)
			require.False(t, f.fin)
			got = append(got, f.payload...)
			p.send(rawF(opPing, true, "mid"))
			// Fragments of the first 5000 bytes may come before the pong.
			for {
				f = p.next()
				if f.op == opPong {
					break
				}
				require.Equal(t, byte(opContinuation), f.op)
				require.False(t, f.fin, "message ended before it was finished")
				got = append(got, f.payload...)
			}
			require.Equal(t, "mid", string(f.payload))
			close(proceed)
			for !f.fin || f.op == opPong {
				f = p.next()
				require.Equal(t, byte(opContinuation), f.op)
				got = append(got, f.payload...)
			}
			require.Equal(t, append(bytes.Repeat([]byte{1}, 5000), bytes.Repeat([]byte{2}, 100)...), got)
			p.closeNormally()
		})
	}
}

// TestProtoStreamedWriteFrames pins how NextWriter's writes become frames
// with the default 4096-byte write buffer: a write larger than the buffer
// leaves at once as one fragment (the client masks it through a pooled
// buffer; the server sends it as it is), never one fragment per buffer, and
// smaller writes are gathered until the buffer fills or Close.
func TestProtoStreamedWriteFrames(t *testing.T) {
	t.Parallel()
	type frame struct {
		op  byte
		fin bool
		n   int
	}
	for _, tc := range []struct {
		name   string
		writes []int
		want   []frame
	}{
		{"one large write", []int{20000}, []frame{{opBinary, false, 20000}, {opContinuation, true, 0}}},
		{"small then large", []int{100, 9000}, []frame{{opBinary, false, 4096}, {opContinuation, false, 5004}, {opContinuation, true, 0}}},
		{"large then small", []int{70000, 10}, []frame{{opBinary, false, 70000}, {opContinuation, true, 10}}},
		{"buffer-sized writes", []int{4096, 4096}, []frame{{opBinary, false, 4096}, {opContinuation, true, 4096}}},
		{"small writes", []int{1000, 1000, 1000}, []frame{{opBinary, true, 3000}}},
	} {
		for _, side := range rawSides {
			t.Run(tc.name+"/"+side.name, func(t *testing.T) {
				t.Parallel()
				var sent []byte
				for i, n := range tc.writes {
					sent = append(sent, bytes.Repeat([]byte{byte('a' + i)}, n)...)
				}
				p := side.start(t, func(c *Conn) error {
					w, err := c.NextWriter(BinaryMessage)
					if err != nil {
						return err
					}
					rest := sent
					for _, n := range tc.writes {
						if _, err := w.Write(rest[:n]); err != nil {
							return err
						}
						rest = rest[n:]
					}
					return w.Close()
				})
				var got []frame
				var payload []byte
				for len(got) == 0 || !got[len(got)-1].fin {
					f := p.next()
					got = append(got, frame{f.op, f.fin, len(f.payload)})
					payload = append(payload, f.payload...)
				}
				assert.Equal(t, tc.want, got)
				assert.True(t, bytes.Equal(sent, payload), "payload differs from what was written")
				require.NoError(t, p.result())
			})
		}
	}
}

// TestProtoByteByByte writes frames one byte per write, so that headers,
// extended lengths, masking keys and payloads arrive cut at every place.
func TestProtoByteByByte(t *testing.T) {
	t.Parallel()
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			long := bytes.Repeat([]byte("é"), 100)
			// A 64-bit length is minimal only from 65536 on: the
			// header and the start of that payload go byte by byte,
			// the rest in one write.
			big := bytes.Repeat([]byte("sixty-four"), 7000)
			var stream []byte
			for _, f := range []rawFrame{
				rawF(opText, false, "frag"),
				rawF(opPing, true, "pi"),
				{op: opContinuation, fin: true, payload: long},
				{op: opBinary, fin: true, payload: big},
			} {
				stream = append(stream, f.encode(p.client)...)
			}
			cut := len(stream) - len(big) + 10
			for i := range stream[:cut] {
				_, err := p.conn.Write(stream[i : i+1])
				require.NoError(t, err)
			}
			_, err := p.conn.Write(stream[cut:])
			require.NoError(t, err)
			f := p.next()
			require.Equal(t, byte(opPong), f.op)
			require.Equal(t, "pi", string(f.payload))
			p.expectData(opText, append([]byte("frag"), long...))
			p.expectData(opBinary, big)
			p.closeNormally()
		})
	}
}

// TestProtoHugeClaimNoLimit checks that without a read limit a frame
// header's claim of 2^40 bytes makes the Conn allocate nothing for it: the
// payload that arrives is read, and the peer going away ends the read with
// CloseAbnormalClosure.
func TestProtoHugeClaimNoLimit(t *testing.T) {
	t.Parallel()
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			p.send(rawFrame{op: opBinary, fin: true, payload: make([]byte, 1000), declare: true, declLen: 1 << 40})
			require.NoError(t, p.conn.(interface{ CloseWrite() error }).CloseWrite())
			p.expectEOF()
			var ce *CloseError
			require.ErrorAs(t, p.result(), &ce)
			require.Equal(t, CloseAbnormalClosure, ce.Code)
		})
	}
}

// TestProtoSkippedMessageChecked checks that a message the application
// skips (NextReader without reading) is still validated.
func TestProtoSkippedMessageChecked(t *testing.T) {
	t.Parallel()
	skip := func(c *Conn) error {
		for {
			if _, _, err := c.NextReader(); err != nil {
				return err
			}
		}
	}
	for _, side := range rawSides {
		t.Run(side.name+"/invalid UTF-8", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, skip)
			p.send(rawF(opText, true, "fine"), rawF(opText, false, "x"), rawF(opContinuation, true, "\xff"), rawF(opText, true, "never read"))
			p.expectFailed(CloseInvalidFramePayloadData)
		})
		t.Run(side.name+"/bad continuation", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, skip)
			p.send(rawF(opBinary, false, "x"), rawF(opBinary, true, "y"))
			p.expectFailed(CloseProtocolError)
		})
		t.Run(side.name+"/read limit", func(t *testing.T) {
			t.Parallel()
			p := side.start(t, func(c *Conn) error {
				c.SetReadLimit(10)
				return skip(c)
			})
			p.send(rawF(opBinary, false, "12345678"), rawF(opContinuation, true, "9ab"))
			p.expectFailed(CloseMessageTooBig)
		})
	}
}

// TestProtoCloseMidMessage checks that a close frame between the fragments
// of a message ends the connection normally.
func TestProtoCloseMidMessage(t *testing.T) {
	t.Parallel()
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, nil)
			p.send(rawF(opText, false, "unfinished"), rawClose(CloseGoingAway, "gone"))
			p.expectClosedBy(CloseGoingAway, "gone")
		})
	}
}

// TestProtoCloseUnblocksWriter checks that Close, and a protocol failure
// found by the reader, end a write blocked on a peer that stopped reading.
func TestProtoCloseUnblocksWriter(t *testing.T) {
	t.Parallel()
	// Far more than the socket buffers hold; shared, as writing does not
	// modify it.
	big := make([]byte, 64<<20)
	for _, side := range rawSides {
		for _, how := range []string{"Close", "protocol failure"} {
			t.Run(side.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				conns := make(chan *Conn, 1)
				writeErr := make(chan error, 1)
				p := side.start(t, func(c *Conn) error {
					conns <- c
					go func() { writeErr <- c.WriteMessage(BinaryMessage, big) }()
					_, _, err := c.ReadMessage()
					return err
				})
				c := <-conns
				// Once the first byte is here, the writer is inside the
				// frame's write, which cannot finish.
				require.NoError(t, p.conn.SetReadDeadline(time.Now().Add(testWait)))
				_, err := p.br.ReadByte()
				require.NoError(t, err)
				closed := make(chan error, 1)
				if how == "Close" {
					go func() { closed <- c.Close() }()
				} else {
					p.send(rawF(0x3, true, ""))
				}
				select {
				case err := <-writeErr:
					require.Error(t, err)
				case <-time.After(testWait):
					t.Fatal("the blocked write did not end")
				}
				if how == "Close" {
					require.NoError(t, <-closed)
					require.Error(t, p.result())
				} else {
					checkFailErr(t, p.result(), CloseProtocolError)
				}
			})
		}
	}
}

// TestProtoClientPipelined checks that frames the server sends in the same
// TCP segment as its 101 response reach the client Conn.
func TestProtoClientPipelined(t *testing.T) {
	t.Parallel()
	p := dialRawPipelined(t, echoWhole, []rawFrame{
		rawF(opText, true, "right behind the 101"),
		rawF(opPing, true, "pp"),
		{op: opBinary, fin: true, payload: bytes.Repeat([]byte{7}, 10000)},
	})
	p.expectData(opText, []byte("right behind the 101"))
	f := p.next()
	require.Equal(t, byte(opPong), f.op)
	require.Equal(t, "pp", string(f.payload))
	p.expectData(opBinary, bytes.Repeat([]byte{7}, 10000))
	p.closeNormally()
}
