package websocket

// A replay of the Autobahn|Testsuite cases 1 to 10 (without compression),
// run by "go test" against our own server (autobahn_server_test.go) and our
// own client (autobahn_client_test.go), so that CI catches a conformance
// regression without Docker and the Python suite. The permessage-deflate
// cases 12.* and 13.* are in autobahn_compress_test.go, on the same
// scripted peer.
//
// Each case is data: what the suite's fuzzer sends, in which write chops,
// and what it expects back, taken from the suite's case descriptions
// (autobahntestsuite/case/case*.py). The scripted peer in this file plays
// the fuzzer's role over raw TCP, masking its frames when it plays the
// client; the peer under test runs the same streaming echo loop as
// autobahn/server and autobahn/client. Every case ends with the peer
// under test closing TCP, and nothing may arrive after its close frame.
//
// Where the suite accepts several outcomes, the table asks for the one this
// library produces (the strict one), so that a change of behaviour shows up
// here first; abCase.note says where that is a choice.

import (
	"bufio"
	"bytes"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Wire opcodes, spelled out here rather than taken from the library so that
// the replay does not share the implementation's view of the protocol.
const (
	abOpCont   byte = 0x0
	abOpText   byte = 0x1
	abOpBinary byte = 0x2
	abOpClose  byte = 0x8
	abOpPing   byte = 0x9
	abOpPong   byte = 0xA
)

const (
	// abNoCode is how the replay records a close frame without a payload
	// (RFC 6455 section 7.1.5: "no status code present").
	abNoCode = 1005

	// abQuietWait is how long a fail-fast case listens for an early close
	// frame where no event can prove that the peer under test has read
	// what was sent. It can only let a bad peer pass, never fail a good
	// one.
	abQuietWait = 50 * time.Millisecond

	// abBigCase is the traffic above which a case runs alone, to bound the
	// memory the replay needs under -race.
	abBigCase = 1 << 20

	// abShortCase is the most traffic of a case that runs under -short;
	// the others are mostly the 9.* cases (large messages, many frames).
	abShortCase = 64 << 10
)

// abData is a payload: literal bytes, or pattern repeated (and cut) to n
// bytes as the suite's payload_len does, so that the table does not hold
// the large payloads of the 9.* cases.
type abData struct {
	lit     string
	pattern string
	n       int
}

func abLit(s string) abData { return abData{lit: s} }

func abRep(pattern string, n int) abData { return abData{pattern: pattern, n: n} }

func (d abData) size() int {
	if d.pattern != "" {
		return d.n
	}
	return len(d.lit)
}

func (d abData) bytes() []byte {
	if d.pattern == "" {
		return []byte(d.lit)
	}
	b := bytes.Repeat([]byte(d.pattern), d.n/len(d.pattern)+1)
	return b[:d.n]
}

// abFrame is a frame the scripted peer sends. rsv is the suite's 3-bit
// value (4 is RSV1, 2 is RSV2, 1 is RSV3). With fragSize > 0 the frame
// stands for a whole message cut into frames of fragSize payload bytes:
// op on the first, continuation after, FIN on the last, as the suite's
// sendMessage(fragmentSize=...) sends it.
type abFrame struct {
	fin      bool
	rsv      byte
	op       byte
	payload  abData
	fragSize int
}

type abStepKind int

const (
	// abSendStep writes frames: all of them in one write, or chop bytes
	// per write.
	abSendStep abStepKind = iota
	// abSplitStep writes the single frame in frames up to payload offset
	// cuts[0], then for each further cut listens abQuietWait for an early
	// answer and writes on up to that cut. The rest of the frame is never
	// sent: the cases using it expect a close before it is due.
	abSplitStep
	// abWantMessage expects the next event to be a data message.
	abWantMessage
	// abWantPong expects the next event to be a pong.
	abWantPong
	// abRoundTrips sends frames[0] and waits for its echo, n times.
	abRoundTrips
)

type abStep struct {
	kind   abStepKind
	frames []abFrame
	chop   int
	cuts   []int
	op     byte
	data   abData
	n      int
}

type abEndKind int

const (
	// abEndNormal: once the steps are done the scripted peer starts the
	// closing handshake with 1000, as the suite does for every case that
	// expects a clean close; the peer under test echoes 1000 and its echo
	// loop ends with a *CloseError with code 1000.
	abEndNormal abEndKind = iota
	// abEndEcho: the steps sent a close frame; the peer under test echoes
	// code and its echo loop ends with a *CloseError with code.
	abEndEcho
	// abEndFail: the peer under test fails the connection with code and
	// its echo loop ends with a *ProtocolError with that code.
	abEndFail
)

type abEnd struct {
	kind abEndKind
	code int
}

var abNormal = abEnd{kind: abEndNormal, code: CloseNormalClosure}

func abEchoes(code int) abEnd { return abEnd{kind: abEndEcho, code: code} }

func abFails(code int) abEnd { return abEnd{kind: abEndFail, code: code} }

// abCase is one Autobahn case.
type abCase struct {
	id    string
	steps []abStep
	end   abEnd
	// note says where the expectation is this library's choice among the
	// outcomes the suite accepts, or where the replay departs from the
	// suite's script.
	note string
}

// traffic is how many payload bytes the case sends.
func (c abCase) traffic() int {
	n := 0
	for _, s := range c.steps {
		for _, f := range s.frames {
			k := f.payload.size()
			if s.kind == abRoundTrips {
				k *= s.n
			}
			n += k
		}
	}
	return n
}

// Frame and step constructors, to keep the table close to the suite's own
// wording.

func abFr(fin bool, op byte, p string) abFrame {
	return abFrame{fin: fin, op: op, payload: abLit(p)}
}

func abText(p string) abFrame { return abFr(true, abOpText, p) }

func abBinary(p string) abFrame { return abFr(true, abOpBinary, p) }

func abPing(p string) abFrame { return abFr(true, abOpPing, p) }

func abPongF(p string) abFrame { return abFr(true, abOpPong, p) }

func abRSV(f abFrame, rsv byte) abFrame {
	f.rsv = rsv
	return f
}

// abCloseF is a close frame with code and reason; code < 0 leaves the code
// out, as the suite's sendCloseFrame(code=None) does.
func abCloseF(code int, reason string) abFrame {
	var p []byte
	if code >= 0 {
		p = binary.BigEndian.AppendUint16(p, uint16(code))
	}
	return abFr(true, abOpClose, string(append(p, reason...)))
}

// abSend sends frames in one write (the suite's frames without sync=True,
// which may share a TCP segment).
func abSend(frames ...abFrame) abStep { return abStep{kind: abSendStep, frames: frames} }

// abChop sends frames in writes of n bytes (the suite's chopsize=n).
func abChop(n int, frames ...abFrame) abStep {
	return abStep{kind: abSendStep, frames: frames, chop: n}
}

// abSync sends each frame in a write of its own (the suite's sync=True).
func abSync(frames ...abFrame) []abStep {
	steps := make([]abStep, len(frames))
	for i, f := range frames {
		steps[i] = abSend(f)
	}
	return steps
}

func abEcho(op byte, p string) abStep {
	return abStep{kind: abWantMessage, op: op, data: abLit(p)}
}

func abEchoData(op byte, d abData) abStep {
	return abStep{kind: abWantMessage, op: op, data: d}
}

func abPong(p string) abStep { return abStep{kind: abWantPong, data: abLit(p)} }

// abSteps flattens its arguments, each an abStep or a []abStep.
func abSteps(parts ...any) []abStep {
	var steps []abStep
	for _, p := range parts {
		switch p := p.(type) {
		case abStep:
			steps = append(steps, p)
		case []abStep:
			steps = append(steps, p...)
		default:
			panic(fmt.Sprintf("abSteps: unexpected %T", p))
		}
	}
	return steps
}

// abCases returns every replayed case, in the suite's order.
func abCases() []abCase {
	var cs []abCase
	cs = append(cs, abFraming()...)
	cs = append(cs, abPings()...)
	cs = append(cs, abReserved()...)
	cs = append(cs, abOpcodes()...)
	cs = append(cs, abFragmentation()...)
	cs = append(cs, abUTF8()...)
	cs = append(cs, abClosing()...)
	cs = append(cs, abLimits()...)
	cs = append(cs, abMisc()...)
	return cs
}

// 1.*: text and binary messages of the sizes around the length encodings.
func abFraming() []abCase {
	var cs []abCase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	for _, typ := range []struct {
		group   string
		op      byte
		pattern string
	}{{"1.1", abOpText, "*"}, {"1.2", abOpBinary, "\xfe"}} {
		for i, n := range sizes {
			d := abRep(typ.pattern, n)
			cs = append(cs, abCase{
				id:    fmt.Sprintf("%s.%d", typ.group, i+1),
				steps: abSteps(abSend(abFrame{fin: true, op: typ.op, payload: d}), abEchoData(typ.op, d)),
				end:   abNormal,
			})
		}
		d := abRep(typ.pattern, 65536)
		cs = append(cs, abCase{
			id:    typ.group + ".8",
			steps: abSteps(abChop(997, abFrame{fin: true, op: typ.op, payload: d}), abEchoData(typ.op, d)),
			end:   abNormal,
		})
	}
	return cs
}

// 2.*: pings and pongs.
func abPings() []abCase {
	bin := "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
	p125 := strings.Repeat("\xfe", 125)
	var tenPings, tenPongs []abStep
	var tenChopped []abStep
	for i := 0; i < 10; i++ {
		p := fmt.Sprintf("payload-%d", i)
		tenPings = append(tenPings, abSend(abPing(p)))
		tenChopped = append(tenChopped, abChop(1, abPing(p)))
		tenPongs = append(tenPongs, abPong(p))
	}
	return []abCase{
		{id: "2.1", steps: abSteps(abSend(abPing("")), abPong("")), end: abNormal},
		{id: "2.2", steps: abSteps(abSend(abPing("Hello, world!")), abPong("Hello, world!")), end: abNormal},
		{id: "2.3", steps: abSteps(abSend(abPing(bin)), abPong(bin)), end: abNormal},
		{id: "2.4", steps: abSteps(abSend(abPing(p125)), abPong(p125)), end: abNormal},
		{id: "2.5", steps: abSteps(abSend(abPing(strings.Repeat("\xfe", 126)))), end: abFails(CloseProtocolError)},
		{id: "2.6", steps: abSteps(abChop(1, abPing(p125)), abPong(p125)), end: abNormal},
		{id: "2.7", steps: abSteps(abSend(abPongF(""), abCloseF(1000, ""))), end: abEchoes(1000)},
		{id: "2.8", steps: abSteps(abSend(abPongF("unsolicited pong payload"), abCloseF(1000, ""))), end: abEchoes(1000)},
		{id: "2.9", steps: abSteps(abSend(abPongF("unsolicited pong payload"), abPing("ping payload")), abPong("ping payload")), end: abNormal},
		{id: "2.10", steps: abSteps(tenPings, tenPongs), end: abNormal},
		{id: "2.11", steps: abSteps(tenChopped, tenPongs), end: abNormal},
	}
}

// 3.*: reserved bits without a negotiated extension.
func abReserved() []abCase {
	hello := "Hello, world!"
	failsAfterEcho := "the suite also accepts no echo (NON-STRICT); this library reads in order, so the echo is required"
	return []abCase{
		{id: "3.1", steps: abSteps(abSend(abRSV(abText(hello), 1))), end: abFails(CloseProtocolError)},
		{id: "3.2", steps: abSteps(abSend(abText(hello), abRSV(abText(hello), 2), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError), note: failsAfterEcho},
		{id: "3.3", steps: abSteps(abSync(abText(hello), abRSV(abText(hello), 3), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError), note: failsAfterEcho},
		{id: "3.4", steps: abSteps(abChop(1, abText(hello), abRSV(abText(hello), 4), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError), note: failsAfterEcho},
		{id: "3.5", steps: abSteps(abSend(abRSV(abBinary("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), 5))), end: abFails(CloseProtocolError)},
		// The suite describes 3.6 as a ping but sends a binary frame.
		{id: "3.6", steps: abSteps(abSend(abRSV(abBinary(hello), 6))), end: abFails(CloseProtocolError), note: "described as a ping by the suite, which sends opcode 2; replayed as sent"},
		{id: "3.7", steps: abSteps(abSend(abRSV(abFr(true, abOpClose, ""), 7))), end: abFails(CloseProtocolError)},
	}
}

// 4.*: reserved opcodes.
func abOpcodes() []abCase {
	hello := "Hello, world!"
	var cs []abCase
	for _, g := range []struct {
		group string
		first byte
	}{{"4.1", 3}, {"4.2", 11}} {
		op := g.first
		cs = append(cs,
			abCase{id: g.group + ".1", steps: abSteps(abSend(abFr(true, op, ""))), end: abFails(CloseProtocolError)},
			abCase{id: g.group + ".2", steps: abSteps(abSend(abFr(true, op+1, "reserved opcode payload"))), end: abFails(CloseProtocolError)},
			abCase{id: g.group + ".3", steps: abSteps(abSend(abText(hello), abFr(true, op+2, ""), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError)},
			abCase{id: g.group + ".4", steps: abSteps(abSend(abText(hello), abFr(true, op+3, hello), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError)},
			abCase{id: g.group + ".5", steps: abSteps(abChop(1, abText(hello), abFr(true, op+4, hello), abPing("")), abEcho(abOpText, hello)), end: abFails(CloseProtocolError)},
		)
	}
	return cs
}

// 5.*: fragmentation.
func abFragmentation() []abCase {
	f1, f2 := abFr(false, abOpText, "fragment1"), abFr(true, abOpCont, "fragment2")
	ping := abPing("ping payload")
	orphanFin := []abFrame{abFr(true, abOpCont, "non-continuation payload"), abText("Hello, world!")}
	orphan := []abFrame{abFr(false, abOpCont, "non-continuation payload"), abText("Hello, world!")}
	var twice16, twice17 []abFrame
	for i := 0; i < 2; i++ {
		twice16 = append(twice16, abFr(false, abOpCont, "fragment1"), abFr(false, abOpText, "fragment2"), abFr(true, abOpCont, "fragment3"))
		twice17 = append(twice17, abFr(true, abOpCont, "fragment1"), abFr(false, abOpText, "fragment2"), abFr(true, abOpCont, "fragment3"))
	}
	part1 := []abFrame{abFr(false, abOpText, "fragment1"), abFr(false, abOpCont, "fragment2"), abPing("pongme 1!")}
	part2 := []abFrame{abFr(false, abOpCont, "fragment3"), abFr(false, abOpCont, "fragment4"), abPing("pongme 2!"), abFr(true, abOpCont, "fragment5")}
	joined := "fragment1fragment2fragment3fragment4fragment5"
	return []abCase{
		{id: "5.1", steps: abSteps(abSend(abFr(false, abOpPing, "fragment1"), abFr(true, abOpCont, "fragment2"))), end: abFails(CloseProtocolError)},
		{id: "5.2", steps: abSteps(abSend(abFr(false, abOpPong, "fragment1"), abFr(true, abOpCont, "fragment2"))), end: abFails(CloseProtocolError)},
		{id: "5.3", steps: abSteps(abSend(f1, f2), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.4", steps: abSteps(abSync(f1, f2), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.5", steps: abSteps(abChop(1, f1, f2), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.6", steps: abSteps(abSend(f1, ping, f2), abPong("ping payload"), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.7", steps: abSteps(abSync(f1, ping, f2), abPong("ping payload"), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.8", steps: abSteps(abChop(1, f1, ping, f2), abPong("ping payload"), abEcho(abOpText, "fragment1fragment2")), end: abNormal},
		{id: "5.9", steps: abSteps(abSend(orphanFin...)), end: abFails(CloseProtocolError)},
		{id: "5.10", steps: abSteps(abSync(orphanFin...)), end: abFails(CloseProtocolError)},
		{id: "5.11", steps: abSteps(abChop(1, orphanFin...)), end: abFails(CloseProtocolError)},
		{id: "5.12", steps: abSteps(abSend(orphan...)), end: abFails(CloseProtocolError)},
		{id: "5.13", steps: abSteps(abSync(orphan...)), end: abFails(CloseProtocolError)},
		{id: "5.14", steps: abSteps(abChop(1, orphan...)), end: abFails(CloseProtocolError)},
		{id: "5.15", steps: abSteps(abSend(f1, f2, abFr(false, abOpCont, "fragment3"), abText("fragment4")), abEcho(abOpText, "fragment1fragment2")), end: abFails(CloseProtocolError), note: "the suite also accepts no echo (NON-STRICT); the echo is required here"},
		{id: "5.16", steps: abSteps(abSend(twice16...)), end: abFails(CloseProtocolError)},
		{id: "5.17", steps: abSteps(abSend(twice17...)), end: abFails(CloseProtocolError)},
		{id: "5.18", steps: abSteps(abSend(abFr(false, abOpText, "fragment1"), abText("fragment2"))), end: abFails(CloseProtocolError)},
		// 5.19/5.20: the first pong must come back before the rest of
		// the message is sent (the suite waits a second there).
		{id: "5.19", steps: abSteps(abSend(part1...), abPong("pongme 1!"), abSend(part2...), abPong("pongme 2!"), abEcho(abOpText, joined)), end: abNormal},
		{id: "5.20", steps: abSteps(abSync(part1...), abPong("pongme 1!"), abSync(part2...), abPong("pongme 2!"), abEcho(abOpText, joined)), end: abNormal},
	}
}

// abKosme is "κόσμε", the suite's favourite multi-byte text.
const abKosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

// abUTF8Seq is one payload of the 6.5 to 6.23 groups, with the suite's
// verdict on it.
type abUTF8Seq struct {
	valid bool
	s     string
}

func abValid(ss ...string) []abUTF8Seq   { return abVerdict(true, ss) }
func abInvalid(ss ...string) []abUTF8Seq { return abVerdict(false, ss) }

func abVerdict(valid bool, ss []string) []abUTF8Seq {
	out := make([]abUTF8Seq, len(ss))
	for i, s := range ss {
		out[i] = abUTF8Seq{valid, s}
	}
	return out
}

// abUTF8Groups returns the payloads of the 6.5 to 6.23 groups (the suite's
// createUtf8TestSequences, from Markus Kuhn's UTF-8 decoder stress test),
// group 6.5 first.
func abUTF8Groups() [][]abUTF8Seq {
	var prefixes []abUTF8Seq
	for i := 1; i <= len(abKosme); i++ {
		// The suite's verdict on a prefix is its validator's: valid
		// and complete.
		prefixes = append(prefixes, abUTF8Seq{utf8.ValidString(abKosme[:i]), abKosme[:i]})
	}
	var conts []byte
	for c := 0x80; c < 0xbf; c++ {
		conts = append(conts, byte(c))
	}
	var lonely []string
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s []byte
		for c := r[0]; c < r[1]; c++ {
			s = append(s, byte(c), ' ')
		}
		lonely = append(lonely, string(s))
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	nonChars := []string{"\xef\xbf\xbe", "\xef\xbf\xbf"}
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // beyond U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				if z1 == 0xf0 && z2 == 0x8f {
					continue // overlong
				}
				nonChars = append(nonChars, string([]byte{z1, z2, 0xbf, z3}))
			}
		}
	}
	return [][]abUTF8Seq{
		// 6.5 Some valid UTF-8 sequences
		abValid("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", abKosme),
		// 6.6 All prefixes of a valid UTF-8 string with multi-byte code points
		prefixes,
		// 6.7 First possible sequence of a certain length
		abValid("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"),
		// 6.8 First possible sequence length 5/6 (invalid code points)
		abInvalid("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"),
		// 6.9 Last possible sequence of a certain length
		abValid("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"),
		// 6.10 Last possible sequence length 4/5/6 (invalid code points)
		abInvalid("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"),
		// 6.11 Other boundary conditions
		append(abValid("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), abInvalid("\xf4\x90\x80\x80")...),
		// 6.12 Unexpected continuation bytes
		abInvalid("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80", "\x80\xbf\x80\xbf\x80\xbf", string(conts)),
		// 6.13 Lonely start characters
		abInvalid(lonely...),
		// 6.14 Sequences with last continuation byte missing
		abInvalid(missing...),
		// 6.15 Concatenation of incomplete sequences
		abInvalid(strings.Join(missing, "")),
		// 6.16 Impossible bytes
		abInvalid("\xfe", "\xff", "\xfe\xfe\xff\xff"),
		// 6.17 Examples of an overlong ASCII character
		abInvalid("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"),
		// 6.18 Maximum overlong sequences
		abInvalid("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"),
		// 6.19 Overlong representation of the NUL character
		abInvalid("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"),
		// 6.20 Single UTF-16 surrogates
		abInvalid("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"),
		// 6.21 Paired UTF-16 surrogates
		abInvalid("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"),
		// 6.22 Non-character code points (valid UTF-8)
		abValid(nonChars...),
		// 6.23 Unicode specials (i.e. replacement char)
		abValid("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"),
	}
}

// 6.*: UTF-8 handling.
func abUTF8() []abCase {
	const hello = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	bad := abKosme + "\xed\xa0\x80" + "edited" // invalid at byte 12 (0xa0)
	// 6.4.*: valid part, then the part that makes the text invalid
	// (0x110000 in the UTF-8 scheme; invalid at its second byte, 0x90),
	// then valid rest.
	p1, p2, p3 := abKosme, "\xf4\x90\x80\x80", "edited"
	failFast := p1 + p2 + p3
	probe := abPing("probe")
	probeNote := "a ping after the first fragment proves it was accepted (the suite waits a second instead); the last fragment is never sent: the close must come first"
	splitNote := "whether the first chop was accepted is checked by listening briefly for an early close; the last chop is never sent: the close must come first"

	cs := []abCase{
		{id: "6.1.1", steps: abSteps(abSend(abText("")), abEcho(abOpText, "")), end: abNormal},
		{id: "6.1.2", steps: abSteps(abSend(abFr(false, abOpText, ""), abFr(false, abOpCont, ""), abFr(true, abOpCont, "")), abEcho(abOpText, "")), end: abNormal},
		{id: "6.1.3", steps: abSteps(abSend(abFr(false, abOpText, ""), abFr(false, abOpCont, "middle frame payload"), abFr(true, abOpCont, "")), abEcho(abOpText, "middle frame payload")), end: abNormal},
		{id: "6.2.1", steps: abSteps(abSend(abText(hello)), abEcho(abOpText, hello)), end: abNormal},
		{id: "6.2.2", steps: abSteps(abSend(abFr(false, abOpText, hello[:len("Hello-\u00b5@\u00df\u00f6\u00e4")]), abFr(true, abOpCont, hello[len("Hello-\u00b5@\u00df\u00f6\u00e4"):])), abEcho(abOpText, hello)), end: abNormal},
		{id: "6.2.3", steps: abSteps(abSend(abFrame{op: abOpText, payload: abLit(hello), fragSize: 1}), abEcho(abOpText, hello)), end: abNormal},
		{id: "6.2.4", steps: abSteps(abSend(abFrame{op: abOpText, payload: abLit(abKosme), fragSize: 1}), abEcho(abOpText, abKosme)), end: abNormal},
		{id: "6.3.1", steps: abSteps(abSend(abText(bad))), end: abFails(CloseInvalidFramePayloadData)},
		{id: "6.3.2", steps: abSteps(abSend(abFrame{op: abOpText, payload: abLit(bad), fragSize: 1})), end: abFails(CloseInvalidFramePayloadData)},
		{id: "6.4.1", steps: abSteps(abSend(abFr(false, abOpText, p1)), abSend(probe), abPong("probe"), abSend(abFr(false, abOpCont, p2))), end: abFails(CloseInvalidFramePayloadData), note: probeNote},
		{id: "6.4.2", steps: abSteps(abSend(abFr(false, abOpText, failFast[:12])), abSend(probe), abPong("probe"), abSend(abFr(false, abOpCont, failFast[12:13]))), end: abFails(CloseInvalidFramePayloadData), note: probeNote},
		{id: "6.4.3", steps: []abStep{{kind: abSplitStep, frames: []abFrame{abText(failFast)}, cuts: []int{len(p1), len(p1) + len(p2)}}}, end: abFails(CloseInvalidFramePayloadData), note: splitNote},
		{id: "6.4.4", steps: []abStep{{kind: abSplitStep, frames: []abFrame{abText(failFast)}, cuts: []int{12, 13}}}, end: abFails(CloseInvalidFramePayloadData), note: splitNote},
	}
	for gi, group := range abUTF8Groups() {
		for si, seq := range group {
			c := abCase{
				id:    fmt.Sprintf("6.%d.%d", gi+5, si+1),
				steps: abSteps(abSend(abText(seq.s))),
				end:   abFails(CloseInvalidFramePayloadData),
			}
			if seq.valid {
				c.steps = append(c.steps, abEcho(abOpText, seq.s))
				c.end = abNormal
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// 7.*: closing.
func abClosing() []abCase {
	badReason := abKosme + "\xed\xa0\x80" + "edited"
	cs := []abCase{
		{id: "7.1.1", steps: abSteps(abSend(abText("Hello World!")), abEcho(abOpText, "Hello World!")), end: abNormal},
		{id: "7.1.2", steps: abSteps(abSend(abCloseF(1000, ""), abCloseF(-1, ""))), end: abEchoes(1000)},
		{id: "7.1.3", steps: abSteps(abSend(abCloseF(1000, ""), abPing(""))), end: abEchoes(1000)},
		{id: "7.1.4", steps: abSteps(abSend(abCloseF(1000, ""), abText("Hello World!"))), end: abEchoes(1000)},
		{id: "7.1.5", steps: abSteps(abSend(abFr(false, abOpText, "fragment1"), abCloseF(1000, ""), abFr(true, abOpCont, "fragment2"))), end: abEchoes(1000)},
		{
			id: "7.1.6",
			steps: abSteps(
				abSend(abFrame{fin: true, op: abOpText, payload: abRep("BAsd7&jh23", 256<<10)}, abText("Hello World!"), abCloseF(1000, ""), abPing("")),
				abEchoData(abOpText, abRep("BAsd7&jh23", 256<<10)), abEcho(abOpText, "Hello World!")),
			end:  abEchoes(1000),
			note: "informational in the suite; this library reads in order, so both echoes come before the close",
		},
		{id: "7.3.1", steps: abSteps(abSend(abCloseF(-1, ""))), end: abEchoes(abNoCode), note: "the suite wants 1000 or an empty close; the library echoes the empty close"},
		{id: "7.3.2", steps: abSteps(abSend(abCloseF(-1, "a"))), end: abFails(CloseProtocolError)},
		{id: "7.3.3", steps: abSteps(abSend(abCloseF(1000, ""))), end: abEchoes(1000)},
		{id: "7.3.4", steps: abSteps(abSend(abCloseF(1000, "Hello World!"))), end: abEchoes(1000)},
		{id: "7.3.5", steps: abSteps(abSend(abCloseF(1000, strings.Repeat("*", 123)))), end: abEchoes(1000)},
		{id: "7.3.6", steps: abSteps(abSend(abCloseF(1000, strings.Repeat("*", 124)))), end: abFails(CloseProtocolError)},
		{id: "7.5.1", steps: abSteps(abSend(abCloseF(1000, badReason))), end: abFails(CloseInvalidFramePayloadData), note: "the suite accepts 1002 or 1007; the library sends 1007"},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, abCase{
			id:    fmt.Sprintf("7.7.%d", i+1),
			steps: abSteps(abSend(abCloseF(code, ""))),
			end:   abEchoes(code),
			note:  "the suite accepts 1000 or the code; the library echoes the code",
		})
	}
	// The current suite's list. Versions before 2017 also had 1012 to
	// 1015 here; 1012 to 1014 are registered with IANA since and the
	// library accepts them.
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, abCase{
			id:    fmt.Sprintf("7.9.%d", i+1),
			steps: abSteps(abSend(abCloseF(code, ""))),
			end:   abFails(CloseProtocolError),
		})
	}
	for i, code := range []int{5000, 65535} {
		cs = append(cs, abCase{
			id:    fmt.Sprintf("7.13.%d", i+1),
			steps: abSteps(abSend(abCloseF(code, ""))),
			end:   abFails(CloseProtocolError),
			note:  "informational in the suite (undefined by RFC 6455); the library treats codes past 4999 as invalid",
		})
	}
	return cs
}

// 9.*: large messages, fragment and chop sizes, many round trips. Only
// the outcome is checked; the suite's timings are not.
func abLimits() []abCase {
	type kind struct {
		op      byte
		pattern string
	}
	text, bin := kind{abOpText, "BAsd7&jh23"}, kind{abOpBinary, "\x00\xfe\x23\xfa\xf0"}
	var cs []abCase
	add := func(id string, step abStep, echo abData, op byte) {
		cs = append(cs, abCase{id: id, steps: abSteps(step, abEchoData(op, echo)), end: abNormal})
	}
	// 9.1, 9.2: one frame of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, n := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20} {
			d := abRep(k.pattern, n)
			add(fmt.Sprintf("9.%d.%d", gi+1, i+1), abSend(abFrame{fin: true, op: k.op, payload: d}), d, k.op)
		}
	}
	// 9.3, 9.4: 4 MiB in fragments of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, fs := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
			d := abRep("*", 4<<20)
			add(fmt.Sprintf("9.%d.%d", gi+3, i+1), abSend(abFrame{op: k.op, payload: d, fragSize: fs}), d, k.op)
		}
	}
	// 9.5, 9.6: 1 MiB in one frame, written in chops of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, chop := range []int{64, 128, 256, 512, 1024, 2048} {
			d := abRep(k.pattern, 1<<20)
			add(fmt.Sprintf("9.%d.%d", gi+5, i+1), abChop(chop, abFrame{fin: true, op: k.op, payload: d}), d, k.op)
		}
	}
	// 9.7, 9.8: 1000 round trips of one message each.
	for gi, k := range []kind{{abOpText, "*"}, {abOpBinary, "\xfe"}} {
		for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
			cs = append(cs, abCase{
				id:    fmt.Sprintf("9.%d.%d", gi+7, i+1),
				steps: []abStep{{kind: abRoundTrips, frames: []abFrame{{fin: true, op: k.op, payload: abRep(k.pattern, n)}}, n: 1000}},
				end:   abNormal,
			})
		}
	}
	return cs
}

// 10.1.1: a 64 KiB text message auto-fragmented by the suite into frames
// of 1300 bytes.
func abMisc() []abCase {
	d := abRep("*", 65536)
	return []abCase{{
		id:    "10.1.1",
		steps: abSteps(abSend(abFrame{op: abOpText, payload: d, fragSize: 1300}), abEchoData(abOpText, d)),
		end:   abNormal,
	}}
}

// The scripted peer: the fuzzer's role, over raw TCP.

// abEvent is what the scripted peer received: a whole data message (frames
// reassembled), a control frame, or, with err set, the end of the stream.
type abEvent struct {
	op      byte
	payload []byte
	code    int // close frames: the status code, or abNoCode
	err     error
	// compressed: the message's first frame had RSV1 (only with deflate
	// set on the peer); payload is then still compressed.
	compressed bool
}

// errABClosed marks an orderly end of the stream: the peer under test
// closed TCP at a frame boundary (a reset counts: a peer that closes with
// unread data in its buffer resets the connection).
var errABClosed = errors.New("TCP connection closed")

func (ev abEvent) String() string {
	switch {
	case ev.err != nil:
		return ev.err.Error()
	case ev.op == abOpText || ev.op == abOpBinary:
		kind := "text"
		if ev.op == abOpBinary {
			kind = "binary"
		}
		return fmt.Sprintf("%s message of %d bytes (%q)", kind, len(ev.payload), abClip(ev.payload))
	case ev.op == abOpClose:
		return fmt.Sprintf("close frame with code %d (%q)", ev.code, abClip(ev.payload))
	case ev.op == abOpPing:
		return fmt.Sprintf("ping (%q)", abClip(ev.payload))
	case ev.op == abOpPong:
		return fmt.Sprintf("pong (%q)", abClip(ev.payload))
	}
	return fmt.Sprintf("frame with opcode %d", ev.op)
}

func abClip(p []byte) []byte {
	if len(p) > 32 {
		return p[:32]
	}
	return p
}

type abPeer struct {
	t      *testing.T
	conn   net.Conn
	br     *bufio.Reader
	client bool // we play the client: our frames are masked, the peer's not
	events chan abEvent
	last   *abEvent // the terminal event, once seen
	// writeErr is set when a write failed: the peer under test may have
	// failed the connection already. Later writes are skipped and the
	// expectations decide.
	writeErr error
	// deflate: permessage-deflate was negotiated, so RSV1 may mark the
	// first frame of a data message (RFC 7692 section 6). Set before run
	// or start.
	deflate bool
}

// newABPeer returns the scripted peer on conn, whose handshake is done; br
// holds what was read past the handshake. run starts reading.
func newABPeer(t *testing.T, conn net.Conn, br *bufio.Reader, client bool) *abPeer {
	return &abPeer{t: t, conn: conn, br: br, client: client, events: make(chan abEvent, 64)}
}

// readLoop turns the byte stream from the peer under test into events,
// checking on the way that the peer's frames are well-formed: anything a
// conforming peer must not send ends the stream with an error.
func (p *abPeer) readLoop() {
	defer close(p.events)
	var msgOp byte     // opcode of the message being reassembled, 0 if none
	var msgRSV1 bool   // its first frame had RSV1
	var parts [][]byte // its frames' payloads, joined once at the end
	for {
		fin, rsv, op, payload, err := p.readFrame()
		if err == nil {
			err = p.checkFrame(fin, rsv, op, len(payload), msgOp)
		}
		if err != nil {
			p.events <- abEvent{err: err}
			return
		}
		switch op {
		case abOpText, abOpBinary, abOpCont:
			if op != abOpCont {
				msgOp, msgRSV1 = op, rsv&abRSV1 != 0
			}
			parts = append(parts, payload)
			if fin {
				p.events <- abEvent{op: msgOp, payload: bytes.Join(parts, nil), compressed: msgRSV1}
				msgOp, msgRSV1, parts = 0, false, nil
			}
		case abOpClose:
			ev := abEvent{op: op, payload: payload, code: abNoCode}
			if len(payload) >= 2 {
				ev.code = int(binary.BigEndian.Uint16(payload))
				ev.payload = payload[2:]
			}
			p.events <- ev
		default:
			p.events <- abEvent{op: op, payload: payload}
		}
	}
}

// checkFrame applies RFC 6455 section 5 to a frame from the peer under
// test.
func (p *abPeer) checkFrame(fin bool, rsv, op byte, n int, msgOp byte) error {
	var allowed byte
	if p.deflate && (op == abOpText || op == abOpBinary) {
		allowed = abRSV1
	}
	switch {
	case rsv&^allowed != 0:
		return fmt.Errorf("peer sent RSV bits %#x on a frame with opcode %d", rsv, op)
	case op > abOpBinary && op < abOpClose, op > abOpPong:
		return fmt.Errorf("peer sent reserved opcode %d", op)
	case op >= abOpClose && (!fin || n > 125):
		return fmt.Errorf("peer sent a bad control frame (opcode %d, fin %v, %d bytes)", op, fin, n)
	case op == abOpCont && msgOp == 0:
		return errors.New("peer sent a continuation frame outside a message")
	case (op == abOpText || op == abOpBinary) && msgOp != 0:
		return errors.New("peer started a message inside a message")
	case op == abOpClose && n == 1:
		return errors.New("peer sent a close frame with a 1-byte payload")
	}
	return nil
}

// abRSV1 is RSV1 as readFrame reports it (the bit in place in the first
// header byte).
const abRSV1 byte = 0x40

// readFrame reads one frame, unmasking it; a frame from a server must not
// be masked and one from a client must be.
func (p *abPeer) readFrame() (fin bool, rsv, op byte, payload []byte, err error) {
	var hdr [8]byte
	p.conn.SetReadDeadline(time.Now().Add(testWait))
	if _, err := io.ReadFull(p.br, hdr[:2]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = errABClosed
		}
		return false, 0, 0, nil, err
	}
	fin, rsv, op = hdr[0]&0x80 != 0, hdr[0]&0x70, hdr[0]&0x0f
	masked := hdr[1]&0x80 != 0
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(p.br, hdr[:2]); err != nil {
			return false, 0, 0, nil, fmt.Errorf("reading frame header: %w", err)
		}
		n = uint64(binary.BigEndian.Uint16(hdr[:2]))
	case 127:
		if _, err := io.ReadFull(p.br, hdr[:8]); err != nil {
			return false, 0, 0, nil, fmt.Errorf("reading frame header: %w", err)
		}
		n = binary.BigEndian.Uint64(hdr[:8])
	}
	if masked == p.client {
		return false, 0, 0, nil, fmt.Errorf("peer sent a frame with mask bit %v", masked)
	}
	if n > 64<<20 {
		return false, 0, 0, nil, fmt.Errorf("peer sent a %d-byte frame", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(p.br, key[:]); err != nil {
			return false, 0, 0, nil, fmt.Errorf("reading frame header: %w", err)
		}
	}
	payload = make([]byte, n)
	for off := 0; off < len(payload); {
		// The deadline is for progress: big frames take longer.
		p.conn.SetReadDeadline(time.Now().Add(testWait))
		k, err := io.ReadFull(p.br, payload[off:min(len(payload), off+1<<20)])
		off += k
		if err != nil {
			return false, 0, 0, nil, fmt.Errorf("reading %d-byte payload at %d: %w", n, off, err)
		}
	}
	if masked {
		abMask(key, payload)
	}
	return fin, rsv, op, payload, nil
}

// abMask applies the masking key to b, which starts at payload offset 0,
// eight bytes at a time (the 9.* cases mask hundreds of megabytes under
// -race).
func abMask(key [4]byte, b []byte) {
	k32 := uint64(binary.LittleEndian.Uint32(key[:]))
	k := k32 | k32<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// appendFrame appends a frame to dst, masked with a fresh key when we play
// the client.
func (p *abPeer) appendFrame(dst []byte, fin bool, rsv, op byte, payload []byte) []byte {
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	var b1 byte
	if p.client {
		b1 = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, b0, b1|byte(n))
	case n <= 0xffff:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !p.client {
		return append(dst, payload...)
	}
	var key [4]byte
	for key == [4]byte{} { // a zero key would hide a peer that forgets to unmask
		binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	}
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	abMask(key, dst[start:])
	return dst
}

// wire encodes frames as they go on the wire.
func (p *abPeer) wire(frames []abFrame) []byte {
	size := 0
	for _, f := range frames {
		n := f.payload.size()
		size += n + 14
		if f.fragSize > 0 {
			size += 14 * (n / f.fragSize)
		}
	}
	b := make([]byte, 0, size)
	for _, f := range frames {
		data := f.payload.bytes()
		if f.fragSize == 0 {
			b = p.appendFrame(b, f.fin, f.rsv, f.op, data)
			continue
		}
		op := f.op
		for first := true; first || len(data) > 0; first = false {
			n := min(f.fragSize, len(data))
			b = p.appendFrame(b, n == len(data), f.rsv, op, data[:n])
			data, op = data[n:], abOpCont
		}
	}
	return b
}

// write writes b in writes of at most chop bytes (0: one write, cut in
// pieces of 256 KiB only so that each write's deadline measures progress
// in the largest cases).
func (p *abPeer) write(b []byte, chop int) {
	if chop <= 0 {
		chop = 256 << 10
	}
	for len(b) > 0 && p.writeErr == nil {
		n := min(chop, len(b))
		p.conn.SetWriteDeadline(time.Now().Add(testWait))
		if _, err := p.conn.Write(b[:n]); err != nil {
			p.writeErr = err
			p.t.Logf("write failed (the peer under test may have failed the connection): %v", err)
		}
		b = b[n:]
	}
}

// next returns the next event, or the terminal one again once the stream
// has ended.
func (p *abPeer) next() abEvent {
	if p.last != nil {
		return *p.last
	}
	// A backstop only: the reader's deadlines end the stream when the
	// peer under test stops making progress, however long a big message
	// takes as a whole.
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	var ev abEvent
	select {
	case e, ok := <-p.events:
		ev = e
		if !ok {
			ev = abEvent{err: errors.New("reader stopped")}
		}
	case <-timer.C:
		ev = abEvent{err: errors.New("no event in time")}
	}
	if ev.err != nil {
		p.last = &ev
		var ne net.Error
		if errors.As(ev.err, &ne) && ne.Timeout() || ev.err.Error() == "no event in time" {
			// A peer that made no progress: show where everyone is.
			buf := make([]byte, 1<<20)
			p.t.Logf("%v; goroutines:\n%s", ev.err, buf[:runtime.Stack(buf, true)])
		}
	}
	return ev
}

// quiet checks that nothing arrives within d.
func (p *abPeer) quiet(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-p.events:
		if ok && ev.err != nil {
			p.last = &ev
		}
		p.t.Errorf("expected nothing yet, got %v", ev)
		return false
	case <-timer.C:
		return true
	}
}

// wantMessage checks that the next event is the message (op, want).
func (p *abPeer) wantMessage(op byte, want []byte) bool {
	ev := p.next()
	if ev.err != nil || ev.op != op {
		p.t.Errorf("expected echo of a %d-byte message with opcode %d, got %v", len(want), op, ev)
		return false
	}
	if !bytes.Equal(ev.payload, want) {
		i := 0
		for i < len(want) && i < len(ev.payload) && want[i] == ev.payload[i] {
			i++
		}
		p.t.Errorf("echo differs from the message sent: got %d bytes, want %d, first difference at byte %d", len(ev.payload), len(want), i)
		return false
	}
	return true
}

// run plays the case's script, then checks how the connection ends.
//
// Everything the script sends or expects is encoded before the reader
// starts: the reader's deadlines measure the peer under test, and masking
// 16 MiB under -race on a busy machine can take longer than they allow.
func (p *abPeer) run(c abCase) {
	t := p.t
	wires := make([][]byte, len(c.steps))
	wants := make([][]byte, len(c.steps))
	for i, st := range c.steps {
		switch st.kind {
		case abSendStep, abSplitStep:
			wires[i] = p.wire(st.frames)
		case abRoundTrips:
			wires[i] = p.wire(st.frames)
			wants[i] = st.frames[0].payload.bytes()
		case abWantMessage, abWantPong:
			wants[i] = st.data.bytes()
		}
	}
	closeWire := p.wire([]abFrame{abCloseF(CloseNormalClosure, "")})
	p.start()

	for i, st := range c.steps {
		ok := true
		switch st.kind {
		case abSendStep:
			p.write(wires[i], st.chop)
		case abSplitStep:
			b := wires[i]
			hdr := len(b) - st.frames[0].payload.size()
			from := 0
			for j, cut := range st.cuts {
				if j > 0 && !p.quiet(abQuietWait) {
					ok = false
					break
				}
				p.write(b[from:hdr+cut], 0)
				from = hdr + cut
			}
		case abWantMessage:
			ok = p.wantMessage(st.op, wants[i])
		case abWantPong:
			ev := p.next()
			if ev.err != nil || ev.op != abOpPong || !bytes.Equal(ev.payload, wants[i]) {
				t.Errorf("expected pong (%q), got %v", wants[i], ev)
				ok = false
			}
		case abRoundTrips:
			for j := 0; j < st.n && ok; j++ {
				p.write(wires[i], 0)
				ok = p.wantMessage(st.frames[0].op, wants[i])
			}
		}
		if !ok {
			t.Errorf("case %s failed at step %d", c.id, i+1)
			return
		}
	}
	p.finish(c.end, closeWire)
}

// start starts reading from the peer under test; the test's cleanup
// closes the connection and waits for the reader.
func (p *abPeer) start() {
	go p.readLoop()
	p.t.Cleanup(func() {
		p.conn.Close()
		for range p.events {
		}
	})
}

// finish checks how the connection ends once the script is done. For a
// normal end it first sends closeWire, the encoded close frame with 1000.
func (p *abPeer) finish(end abEnd, closeWire []byte) {
	if end.kind == abEndNormal {
		p.write(closeWire, 0)
	}
	ev := p.next()
	if ev.err != nil || ev.op != abOpClose || ev.code != end.code {
		p.t.Errorf("expected close frame with code %d, got %v", end.code, ev)
		return
	}
	// Nothing may follow a close frame, and the peer under test must
	// close TCP: as the server after the closing handshake or after
	// failing the connection, as our client when its echo loop ends.
	if ev := p.next(); !errors.Is(ev.err, errABClosed) {
		p.t.Errorf("expected TCP close after the close frame, got %v", ev)
	}
}

// abCheckEnd checks the error that ended the echo loop of the peer under
// test against how the case ends. If the case failed already, it closes
// nc so that the loop ends at once, and only logs the loop's error.
func abCheckEnd(t *testing.T, end abEnd, nc net.Conn, errc <-chan error) {
	t.Helper()
	if t.Failed() {
		nc.Close()
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(testWait):
		t.Fatal("the echo loop under test did not end")
	}
	if t.Failed() {
		t.Logf("echo loop under test ended with: %v", err)
		return
	}
	switch end.kind {
	case abEndFail:
		var pe *ProtocolError
		if assert.ErrorAs(t, err, &pe, "echo loop error") {
			assert.Equal(t, end.code, pe.Code, "ProtocolError.Code (%v)", pe)
		}
	default:
		var ce *CloseError
		if assert.ErrorAs(t, err, &ce, "echo loop error") {
			assert.Equal(t, end.code, ce.Code, "CloseError.Code (%v)", ce)
		}
	}
}

// abAcceptKey computes Sec-WebSocket-Accept for key (RFC 6455 section 4.2.2).
func abAcceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func abNewKey(t *testing.T) string {
	var b [16]byte
	_, err := crand.Read(b[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b[:])
}

// abRun runs each case as a subtest of t through runCase. Cases moving
// more than abBigCase bytes run one at a time, before the others, which
// run in parallel. Under -short, cases that send more than abShortCase
// payload bytes are skipped.
func abRun(t *testing.T, runCase func(*testing.T, abCase)) {
	for _, c := range abCases() {
		t.Run(c.id, func(t *testing.T) {
			if testing.Short() && c.traffic() > abShortCase {
				t.Skipf("-short: sends %d payload bytes, -short runs only cases of up to %d; the full replay runs without -short", c.traffic(), abShortCase)
			}
			if c.traffic() < abBigCase {
				t.Parallel()
			}
			runCase(t, c)
		})
	}
}

// TestAutobahnTable checks the table against the suite's case counts per
// group and its UTF-8 verdicts against the standard library's.
func TestAutobahnTable(t *testing.T) {
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, c := range abCases() {
		require.False(t, seen[c.id], "duplicate case %s", c.id)
		seen[c.id] = true
		parts := strings.Split(c.id, ".")
		counts[strings.Join(parts[:len(parts)-1], ".")]++
	}
	want := map[string]int{
		"1.1": 8, "1.2": 8, "2": 11, "3": 7, "4.1": 5, "4.2": 5, "5": 20,
		"6.1": 3, "6.2": 4, "6.3": 2, "6.4": 4, "6.5": 5, "6.6": 11, "6.7": 4, "6.8": 2,
		"6.9": 4, "6.10": 3, "6.11": 5, "6.12": 8, "6.13": 5, "6.14": 10, "6.15": 1,
		"6.16": 3, "6.17": 5, "6.18": 5, "6.19": 5, "6.20": 7, "6.21": 8, "6.22": 34, "6.23": 7,
		"7.1": 6, "7.3": 6, "7.5": 1, "7.7": 13, "7.9": 9, "7.13": 2,
		"9.1": 6, "9.2": 6, "9.3": 9, "9.4": 9, "9.5": 6, "9.6": 6, "9.7": 6, "9.8": 6,
		"10.1": 1,
	}
	assert.Equal(t, want, counts)
	for gi, group := range abUTF8Groups() {
		for si, seq := range group {
			assert.Equal(t, utf8.ValidString(seq.s), seq.valid, "6.%d.%d %x", gi+5, si+1, seq.s)
		}
	}
}
