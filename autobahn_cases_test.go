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
// here first; conformanceCase.note says where that is a choice.

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
	wireOpCont   byte = 0x0
	wireOpText   byte = 0x1
	wireOpBinary byte = 0x2
	wireOpClose  byte = 0x8
	wireOpPing   byte = 0x9
	wireOpPong   byte = 0xA
)

const (
	// noStatusCode is how the replay records a close frame without a payload
	// (RFC 6455 section 7.1.5: "no status code present").
	noStatusCode = 1005

	// quietWait is how long a fail-fast case listens for an early close
	// frame where no event can prove that the peer under test has read
	// what was sent. It can only let a bad peer pass, never fail a good
	// one.
	quietWait = 50 * time.Millisecond

	// bigCaseTraffic is the traffic above which a case runs alone, to bound the
	// memory the replay needs under -race.
	bigCaseTraffic = 1 << 20

	// shortCaseTraffic is the most traffic of a case that runs under -short;
	// the others are mostly the 9.* cases (large messages, many frames).
	shortCaseTraffic = 64 << 10
)

// payloadSpec is a payload: literal bytes, or pattern repeated (and cut) to n
// bytes as the suite's payload_len does, so that the table does not hold
// the large payloads of the 9.* cases.
type payloadSpec struct {
	lit     string
	pattern string
	n       int
}

func literal(s string) payloadSpec { return payloadSpec{lit: s} }

func repeated(pattern string, n int) payloadSpec { return payloadSpec{pattern: pattern, n: n} }

func (d payloadSpec) size() int {
	if d.pattern != "" {
		return d.n
	}
	return len(d.lit)
}

func (d payloadSpec) bytes() []byte {
	if d.pattern == "" {
		return []byte(d.lit)
	}
	b := bytes.Repeat([]byte(d.pattern), d.n/len(d.pattern)+1)
	return b[:d.n]
}

// scriptFrame is a frame the scripted peer sends. rsv is the suite's 3-bit
// value (4 is RSV1, 2 is RSV2, 1 is RSV3). With fragSize > 0 the frame
// stands for a whole message cut into frames of fragSize payload bytes:
// op on the first, continuation after, FIN on the last, as the suite's
// sendMessage(fragmentSize=...) sends it.
type scriptFrame struct {
	fin      bool
	rsv      byte
	op       byte
	payload  payloadSpec
	fragSize int
}

type stepKind int

const (
	// stepSend writes frames: all of them in one write, or chop bytes
	// per write.
	stepSend stepKind = iota
	// stepSplit writes the single frame in frames up to payload offset
	// cuts[0], then for each further cut listens quietWait for an early
	// answer and writes on up to that cut. The rest of the frame is never
	// sent: the cases using it expect a close before it is due.
	stepSplit
	// stepWantMessage expects the next event to be a data message.
	stepWantMessage
	// stepWantPong expects the next event to be a pong.
	stepWantPong
	// stepRoundTrips sends frames[0] and waits for its echo, n times.
	stepRoundTrips
)

type scriptStep struct {
	kind   stepKind
	frames []scriptFrame
	chop   int
	cuts   []int
	op     byte
	data   payloadSpec
	n      int
}

type caseEndKind int

const (
	// endNormal: once the steps are done the scripted peer starts the
	// closing handshake with 1000, as the suite does for every case that
	// expects a clean close; the peer under test echoes 1000 and its echo
	// loop ends with a *CloseError with code 1000.
	endNormal caseEndKind = iota
	// endEchoesClose: the steps sent a close frame; the peer under test echoes
	// code and its echo loop ends with a *CloseError with code.
	endEchoesClose
	// endFails: the peer under test fails the connection with code and
	// its echo loop ends with a *ProtocolError with that code.
	endFails
)

type caseEnd struct {
	kind caseEndKind
	code int
}

var closesNormally = caseEnd{kind: endNormal, code: CloseNormalClosure}

func echoesClose(code int) caseEnd { return caseEnd{kind: endEchoesClose, code: code} }

func failsConn(code int) caseEnd { return caseEnd{kind: endFails, code: code} }

// conformanceCase is one Autobahn case.
type conformanceCase struct {
	id    string
	steps []scriptStep
	end   caseEnd
	// note says where the expectation is this library's choice among the
	// outcomes the suite accepts, or where the replay departs from the
	// suite's script.
	note string
}

// traffic is how many payload bytes the case sends.
func (c conformanceCase) traffic() int {
	n := 0
	for _, s := range c.steps {
		for _, f := range s.frames {
			k := f.payload.size()
			if s.kind == stepRoundTrips {
				k *= s.n
			}
			n += k
		}
	}
	return n
}

// Frame and step constructors, to keep the table close to the suite's own
// wording.

func frameOf(fin bool, op byte, p string) scriptFrame {
	return scriptFrame{fin: fin, op: op, payload: literal(p)}
}

func textFrame(p string) scriptFrame { return frameOf(true, wireOpText, p) }

func binaryFrame(p string) scriptFrame { return frameOf(true, wireOpBinary, p) }

func pingFrame(p string) scriptFrame { return frameOf(true, wireOpPing, p) }

func pongFrame(p string) scriptFrame { return frameOf(true, wireOpPong, p) }

func withRSV(f scriptFrame, rsv byte) scriptFrame {
	f.rsv = rsv
	return f
}

// closeFrame is a close frame with code and reason; code < 0 leaves the code
// out, as the suite's sendCloseFrame(code=None) does.
func closeFrame(code int, reason string) scriptFrame {
	var p []byte
	if code >= 0 {
		p = binary.BigEndian.AppendUint16(p, uint16(code))
	}
	return frameOf(true, wireOpClose, string(append(p, reason...)))
}

// sendFrames sends frames in one write (the suite's frames without sync=True,
// which may share a TCP segment).
func sendFrames(frames ...scriptFrame) scriptStep { return scriptStep{kind: stepSend, frames: frames} }

// sendChopped sends frames in writes of n bytes (the suite's chopsize=n).
func sendChopped(n int, frames ...scriptFrame) scriptStep {
	return scriptStep{kind: stepSend, frames: frames, chop: n}
}

// sendSynced sends each frame in a write of its own (the suite's sync=True).
func sendSynced(frames ...scriptFrame) []scriptStep {
	steps := make([]scriptStep, len(frames))
	for i, f := range frames {
		steps[i] = sendFrames(f)
	}
	return steps
}

func wantEcho(op byte, p string) scriptStep {
	return scriptStep{kind: stepWantMessage, op: op, data: literal(p)}
}

func wantEchoOf(op byte, d payloadSpec) scriptStep {
	return scriptStep{kind: stepWantMessage, op: op, data: d}
}

func wantPong(p string) scriptStep { return scriptStep{kind: stepWantPong, data: literal(p)} }

// script flattens its arguments, each an scriptStep or a []scriptStep.
func script(parts ...any) []scriptStep {
	var steps []scriptStep
	for _, p := range parts {
		switch p := p.(type) {
		case scriptStep:
			steps = append(steps, p)
		case []scriptStep:
			steps = append(steps, p...)
		default:
			panic(fmt.Sprintf("script: unexpected %T", p))
		}
	}
	return steps
}

// conformanceCases returns every replayed case, in the suite's order.
func conformanceCases() []conformanceCase {
	var cs []conformanceCase
	cs = append(cs, framingCases()...)
	cs = append(cs, pingCases()...)
	cs = append(cs, reservedBitsCases()...)
	cs = append(cs, opcodeCases()...)
	cs = append(cs, fragmentationCases()...)
	cs = append(cs, utf8HandlingCases()...)
	cs = append(cs, closingCases()...)
	cs = append(cs, limitsCases()...)
	cs = append(cs, miscCases()...)
	return cs
}

// 1.*: text and binary messages of the sizes around the length encodings.
func framingCases() []conformanceCase {
	var cs []conformanceCase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	for _, typ := range []struct {
		group   string
		op      byte
		pattern string
	}{{"1.1", wireOpText, "*"}, {"1.2", wireOpBinary, "\xfe"}} {
		for i, n := range sizes {
			d := repeated(typ.pattern, n)
			cs = append(cs, conformanceCase{
				id:    fmt.Sprintf("%s.%d", typ.group, i+1),
				steps: script(sendFrames(scriptFrame{fin: true, op: typ.op, payload: d}), wantEchoOf(typ.op, d)),
				end:   closesNormally,
			})
		}
		d := repeated(typ.pattern, 65536)
		cs = append(cs, conformanceCase{
			id:    typ.group + ".8",
			steps: script(sendChopped(997, scriptFrame{fin: true, op: typ.op, payload: d}), wantEchoOf(typ.op, d)),
			end:   closesNormally,
		})
	}
	return cs
}

// 2.*: pings and pongs.
func pingCases() []conformanceCase {
	bin := "\x00\xff\xfe\xfd\xfc\xfb\x00\xff"
	p125 := strings.Repeat("\xfe", 125)
	var tenPings, tenPongs []scriptStep
	var tenChopped []scriptStep
	for i := 0; i < 10; i++ {
		p := fmt.Sprintf("payload-%d", i)
		tenPings = append(tenPings, sendFrames(pingFrame(p)))
		tenChopped = append(tenChopped, sendChopped(1, pingFrame(p)))
		tenPongs = append(tenPongs, wantPong(p))
	}
	return []conformanceCase{
		{id: "2.1", steps: script(sendFrames(pingFrame("")), wantPong("")), end: closesNormally},
		{id: "2.2", steps: script(sendFrames(pingFrame("Hello, world!")), wantPong("Hello, world!")), end: closesNormally},
		{id: "2.3", steps: script(sendFrames(pingFrame(bin)), wantPong(bin)), end: closesNormally},
		{id: "2.4", steps: script(sendFrames(pingFrame(p125)), wantPong(p125)), end: closesNormally},
		{id: "2.5", steps: script(sendFrames(pingFrame(strings.Repeat("\xfe", 126)))), end: failsConn(CloseProtocolError)},
		{id: "2.6", steps: script(sendChopped(1, pingFrame(p125)), wantPong(p125)), end: closesNormally},
		{id: "2.7", steps: script(sendFrames(pongFrame(""), closeFrame(1000, ""))), end: echoesClose(1000)},
		{id: "2.8", steps: script(sendFrames(pongFrame("unsolicited pong payload"), closeFrame(1000, ""))), end: echoesClose(1000)},
		{id: "2.9", steps: script(sendFrames(pongFrame("unsolicited pong payload"), pingFrame("ping payload")), wantPong("ping payload")), end: closesNormally},
		{id: "2.10", steps: script(tenPings, tenPongs), end: closesNormally},
		{id: "2.11", steps: script(tenChopped, tenPongs), end: closesNormally},
	}
}

// 3.*: reserved bits without a negotiated extension.
func reservedBitsCases() []conformanceCase {
	hello := "Hello, world!"
	failsAfterEcho := "the suite also accepts no echo (NON-STRICT); this library reads in order, so the echo is required"
	return []conformanceCase{
		{id: "3.1", steps: script(sendFrames(withRSV(textFrame(hello), 1))), end: failsConn(CloseProtocolError)},
		{id: "3.2", steps: script(sendFrames(textFrame(hello), withRSV(textFrame(hello), 2), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError), note: failsAfterEcho},
		{id: "3.3", steps: script(sendSynced(textFrame(hello), withRSV(textFrame(hello), 3), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError), note: failsAfterEcho},
		{id: "3.4", steps: script(sendChopped(1, textFrame(hello), withRSV(textFrame(hello), 4), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError), note: failsAfterEcho},
		{id: "3.5", steps: script(sendFrames(withRSV(binaryFrame("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), 5))), end: failsConn(CloseProtocolError)},
		// The suite describes 3.6 as a ping but sends a binary frame.
		{id: "3.6", steps: script(sendFrames(withRSV(binaryFrame(hello), 6))), end: failsConn(CloseProtocolError), note: "described as a ping by the suite, which sends opcode 2; replayed as sent"},
		{id: "3.7", steps: script(sendFrames(withRSV(frameOf(true, wireOpClose, ""), 7))), end: failsConn(CloseProtocolError)},
	}
}

// 4.*: reserved opcodes.
func opcodeCases() []conformanceCase {
	hello := "Hello, world!"
	var cs []conformanceCase
	for _, g := range []struct {
		group string
		first byte
	}{{"4.1", 3}, {"4.2", 11}} {
		op := g.first
		cs = append(cs,
			conformanceCase{id: g.group + ".1", steps: script(sendFrames(frameOf(true, op, ""))), end: failsConn(CloseProtocolError)},
			conformanceCase{id: g.group + ".2", steps: script(sendFrames(frameOf(true, op+1, "reserved opcode payload"))), end: failsConn(CloseProtocolError)},
			conformanceCase{id: g.group + ".3", steps: script(sendFrames(textFrame(hello), frameOf(true, op+2, ""), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError)},
			conformanceCase{id: g.group + ".4", steps: script(sendFrames(textFrame(hello), frameOf(true, op+3, hello), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError)},
			conformanceCase{id: g.group + ".5", steps: script(sendChopped(1, textFrame(hello), frameOf(true, op+4, hello), pingFrame("")), wantEcho(wireOpText, hello)), end: failsConn(CloseProtocolError)},
		)
	}
	return cs
}

// 5.*: fragmentation.
func fragmentationCases() []conformanceCase {
	f1, f2 := frameOf(false, wireOpText, "fragment1"), frameOf(true, wireOpCont, "fragment2")
	ping := pingFrame("ping payload")
	orphanFin := []scriptFrame{frameOf(true, wireOpCont, "non-continuation payload"), textFrame("Hello, world!")}
	orphan := []scriptFrame{frameOf(false, wireOpCont, "non-continuation payload"), textFrame("Hello, world!")}
	var twice16, twice17 []scriptFrame
	for i := 0; i < 2; i++ {
		twice16 = append(twice16, frameOf(false, wireOpCont, "fragment1"), frameOf(false, wireOpText, "fragment2"), frameOf(true, wireOpCont, "fragment3"))
		twice17 = append(twice17, frameOf(true, wireOpCont, "fragment1"), frameOf(false, wireOpText, "fragment2"), frameOf(true, wireOpCont, "fragment3"))
	}
	part1 := []scriptFrame{frameOf(false, wireOpText, "fragment1"), frameOf(false, wireOpCont, "fragment2"), pingFrame("pongme 1!")}
	part2 := []scriptFrame{frameOf(false, wireOpCont, "fragment3"), frameOf(false, wireOpCont, "fragment4"), pingFrame("pongme 2!"), frameOf(true, wireOpCont, "fragment5")}
	joined := "fragment1fragment2fragment3fragment4fragment5"
	return []conformanceCase{
		{id: "5.1", steps: script(sendFrames(frameOf(false, wireOpPing, "fragment1"), frameOf(true, wireOpCont, "fragment2"))), end: failsConn(CloseProtocolError)},
		{id: "5.2", steps: script(sendFrames(frameOf(false, wireOpPong, "fragment1"), frameOf(true, wireOpCont, "fragment2"))), end: failsConn(CloseProtocolError)},
		{id: "5.3", steps: script(sendFrames(f1, f2), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.4", steps: script(sendSynced(f1, f2), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.5", steps: script(sendChopped(1, f1, f2), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.6", steps: script(sendFrames(f1, ping, f2), wantPong("ping payload"), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.7", steps: script(sendSynced(f1, ping, f2), wantPong("ping payload"), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.8", steps: script(sendChopped(1, f1, ping, f2), wantPong("ping payload"), wantEcho(wireOpText, "fragment1fragment2")), end: closesNormally},
		{id: "5.9", steps: script(sendFrames(orphanFin...)), end: failsConn(CloseProtocolError)},
		{id: "5.10", steps: script(sendSynced(orphanFin...)), end: failsConn(CloseProtocolError)},
		{id: "5.11", steps: script(sendChopped(1, orphanFin...)), end: failsConn(CloseProtocolError)},
		{id: "5.12", steps: script(sendFrames(orphan...)), end: failsConn(CloseProtocolError)},
		{id: "5.13", steps: script(sendSynced(orphan...)), end: failsConn(CloseProtocolError)},
		{id: "5.14", steps: script(sendChopped(1, orphan...)), end: failsConn(CloseProtocolError)},
		{id: "5.15", steps: script(sendFrames(f1, f2, frameOf(false, wireOpCont, "fragment3"), textFrame("fragment4")), wantEcho(wireOpText, "fragment1fragment2")), end: failsConn(CloseProtocolError), note: "the suite also accepts no echo (NON-STRICT); the echo is required here"},
		{id: "5.16", steps: script(sendFrames(twice16...)), end: failsConn(CloseProtocolError)},
		{id: "5.17", steps: script(sendFrames(twice17...)), end: failsConn(CloseProtocolError)},
		{id: "5.18", steps: script(sendFrames(frameOf(false, wireOpText, "fragment1"), textFrame("fragment2"))), end: failsConn(CloseProtocolError)},
		// 5.19/5.20: the first pong must come back before the rest of
		// the message is sent (the suite waits a second there).
		{id: "5.19", steps: script(sendFrames(part1...), wantPong("pongme 1!"), sendFrames(part2...), wantPong("pongme 2!"), wantEcho(wireOpText, joined)), end: closesNormally},
		{id: "5.20", steps: script(sendSynced(part1...), wantPong("pongme 1!"), sendSynced(part2...), wantPong("pongme 2!"), wantEcho(wireOpText, joined)), end: closesNormally},
	}
}

// kosme is "κόσμε", the suite's favourite multi-byte text.
const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

// utf8Sequence is one payload of the 6.5 to 6.23 groups, with the suite's
// verdict on it.
type utf8Sequence struct {
	valid bool
	s     string
}

func validUTF8(ss ...string) []utf8Sequence   { return utf8Verdicts(true, ss) }
func invalidUTF8(ss ...string) []utf8Sequence { return utf8Verdicts(false, ss) }

func utf8Verdicts(valid bool, ss []string) []utf8Sequence {
	out := make([]utf8Sequence, len(ss))
	for i, s := range ss {
		out[i] = utf8Sequence{valid, s}
	}
	return out
}

// utf8Groups returns the payloads of the 6.5 to 6.23 groups (the suite's
// createUtf8TestSequences, from Markus Kuhn's UTF-8 decoder stress test),
// group 6.5 first.
func utf8Groups() [][]utf8Sequence {
	var prefixes []utf8Sequence
	for i := 1; i <= len(kosme); i++ {
		// The suite's verdict on a prefix is its validator's: valid
		// and complete.
		prefixes = append(prefixes, utf8Sequence{utf8.ValidString(kosme[:i]), kosme[:i]})
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
	return [][]utf8Sequence{
		// 6.5 Some valid UTF-8 sequences
		validUTF8("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme),
		// 6.6 All prefixes of a valid UTF-8 string with multi-byte code points
		prefixes,
		// 6.7 First possible sequence of a certain length
		validUTF8("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"),
		// 6.8 First possible sequence length 5/6 (invalid code points)
		invalidUTF8("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"),
		// 6.9 Last possible sequence of a certain length
		validUTF8("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"),
		// 6.10 Last possible sequence length 4/5/6 (invalid code points)
		invalidUTF8("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"),
		// 6.11 Other boundary conditions
		append(validUTF8("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), invalidUTF8("\xf4\x90\x80\x80")...),
		// 6.12 Unexpected continuation bytes
		invalidUTF8("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80", "\x80\xbf\x80\xbf\x80\xbf", string(conts)),
		// 6.13 Lonely start characters
		invalidUTF8(lonely...),
		// 6.14 Sequences with last continuation byte missing
		invalidUTF8(missing...),
		// 6.15 Concatenation of incomplete sequences
		invalidUTF8(strings.Join(missing, "")),
		// 6.16 Impossible bytes
		invalidUTF8("\xfe", "\xff", "\xfe\xfe\xff\xff"),
		// 6.17 Examples of an overlong ASCII character
		invalidUTF8("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"),
		// 6.18 Maximum overlong sequences
		invalidUTF8("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"),
		// 6.19 Overlong representation of the NUL character
		invalidUTF8("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"),
		// 6.20 Single UTF-16 surrogates
		invalidUTF8("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"),
		// 6.21 Paired UTF-16 surrogates
		invalidUTF8("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"),
		// 6.22 Non-character code points (valid UTF-8)
		validUTF8(nonChars...),
		// 6.23 Unicode specials (i.e. replacement char)
		validUTF8("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"),
	}
}

// 6.*: UTF-8 handling.
func utf8HandlingCases() []conformanceCase {
	const hello = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	bad := kosme + "\xed\xa0\x80" + "edited" // invalid at byte 12 (0xa0)
	// 6.4.*: valid part, then the part that makes the text invalid
	// (0x110000 in the UTF-8 scheme; invalid at its second byte, 0x90),
	// then valid rest.
	p1, p2, p3 := kosme, "\xf4\x90\x80\x80", "edited"
	failFast := p1 + p2 + p3
	probe := pingFrame("probe")
	probeNote := "a ping after the first fragment proves it was accepted (the suite waits a second instead); the last fragment is never sent: the close must come first"
	splitNote := "whether the first chop was accepted is checked by listening briefly for an early close; the last chop is never sent: the close must come first"

	cs := []conformanceCase{
		{id: "6.1.1", steps: script(sendFrames(textFrame("")), wantEcho(wireOpText, "")), end: closesNormally},
		{id: "6.1.2", steps: script(sendFrames(frameOf(false, wireOpText, ""), frameOf(false, wireOpCont, ""), frameOf(true, wireOpCont, "")), wantEcho(wireOpText, "")), end: closesNormally},
		{id: "6.1.3", steps: script(sendFrames(frameOf(false, wireOpText, ""), frameOf(false, wireOpCont, "middle frame payload"), frameOf(true, wireOpCont, "")), wantEcho(wireOpText, "middle frame payload")), end: closesNormally},
		{id: "6.2.1", steps: script(sendFrames(textFrame(hello)), wantEcho(wireOpText, hello)), end: closesNormally},
		{id: "6.2.2", steps: script(sendFrames(frameOf(false, wireOpText, hello[:len("Hello-\u00b5@\u00df\u00f6\u00e4")]), frameOf(true, wireOpCont, hello[len("Hello-\u00b5@\u00df\u00f6\u00e4"):])), wantEcho(wireOpText, hello)), end: closesNormally},
		{id: "6.2.3", steps: script(sendFrames(scriptFrame{op: wireOpText, payload: literal(hello), fragSize: 1}), wantEcho(wireOpText, hello)), end: closesNormally},
		{id: "6.2.4", steps: script(sendFrames(scriptFrame{op: wireOpText, payload: literal(kosme), fragSize: 1}), wantEcho(wireOpText, kosme)), end: closesNormally},
		{id: "6.3.1", steps: script(sendFrames(textFrame(bad))), end: failsConn(CloseInvalidFramePayloadData)},
		{id: "6.3.2", steps: script(sendFrames(scriptFrame{op: wireOpText, payload: literal(bad), fragSize: 1})), end: failsConn(CloseInvalidFramePayloadData)},
		{id: "6.4.1", steps: script(sendFrames(frameOf(false, wireOpText, p1)), sendFrames(probe), wantPong("probe"), sendFrames(frameOf(false, wireOpCont, p2))), end: failsConn(CloseInvalidFramePayloadData), note: probeNote},
		{id: "6.4.2", steps: script(sendFrames(frameOf(false, wireOpText, failFast[:12])), sendFrames(probe), wantPong("probe"), sendFrames(frameOf(false, wireOpCont, failFast[12:13]))), end: failsConn(CloseInvalidFramePayloadData), note: probeNote},
		{id: "6.4.3", steps: []scriptStep{{kind: stepSplit, frames: []scriptFrame{textFrame(failFast)}, cuts: []int{len(p1), len(p1) + len(p2)}}}, end: failsConn(CloseInvalidFramePayloadData), note: splitNote},
		{id: "6.4.4", steps: []scriptStep{{kind: stepSplit, frames: []scriptFrame{textFrame(failFast)}, cuts: []int{12, 13}}}, end: failsConn(CloseInvalidFramePayloadData), note: splitNote},
	}
	for gi, group := range utf8Groups() {
		for si, seq := range group {
			c := conformanceCase{
				id:    fmt.Sprintf("6.%d.%d", gi+5, si+1),
				steps: script(sendFrames(textFrame(seq.s))),
				end:   failsConn(CloseInvalidFramePayloadData),
			}
			if seq.valid {
				c.steps = append(c.steps, wantEcho(wireOpText, seq.s))
				c.end = closesNormally
			}
			cs = append(cs, c)
		}
	}
	return cs
}

// 7.*: closing.
func closingCases() []conformanceCase {
	badReason := kosme + "\xed\xa0\x80" + "edited"
	cs := []conformanceCase{
		{id: "7.1.1", steps: script(sendFrames(textFrame("Hello World!")), wantEcho(wireOpText, "Hello World!")), end: closesNormally},
		{id: "7.1.2", steps: script(sendFrames(closeFrame(1000, ""), closeFrame(-1, ""))), end: echoesClose(1000)},
		{id: "7.1.3", steps: script(sendFrames(closeFrame(1000, ""), pingFrame(""))), end: echoesClose(1000)},
		{id: "7.1.4", steps: script(sendFrames(closeFrame(1000, ""), textFrame("Hello World!"))), end: echoesClose(1000)},
		{id: "7.1.5", steps: script(sendFrames(frameOf(false, wireOpText, "fragment1"), closeFrame(1000, ""), frameOf(true, wireOpCont, "fragment2"))), end: echoesClose(1000)},
		{
			id: "7.1.6",
			steps: script(
				sendFrames(scriptFrame{fin: true, op: wireOpText, payload: repeated("BAsd7&jh23", 256<<10)}, textFrame("Hello World!"), closeFrame(1000, ""), pingFrame("")),
				wantEchoOf(wireOpText, repeated("BAsd7&jh23", 256<<10)), wantEcho(wireOpText, "Hello World!")),
			end:  echoesClose(1000),
			note: "informational in the suite; this library reads in order, so both echoes come before the close",
		},
		{id: "7.3.1", steps: script(sendFrames(closeFrame(-1, ""))), end: echoesClose(noStatusCode), note: "the suite wants 1000 or an empty close; the library echoes the empty close"},
		{id: "7.3.2", steps: script(sendFrames(closeFrame(-1, "a"))), end: failsConn(CloseProtocolError)},
		{id: "7.3.3", steps: script(sendFrames(closeFrame(1000, ""))), end: echoesClose(1000)},
		{id: "7.3.4", steps: script(sendFrames(closeFrame(1000, "Hello World!"))), end: echoesClose(1000)},
		{id: "7.3.5", steps: script(sendFrames(closeFrame(1000, strings.Repeat("*", 123)))), end: echoesClose(1000)},
		{id: "7.3.6", steps: script(sendFrames(closeFrame(1000, strings.Repeat("*", 124)))), end: failsConn(CloseProtocolError)},
		{id: "7.5.1", steps: script(sendFrames(closeFrame(1000, badReason))), end: failsConn(CloseInvalidFramePayloadData), note: "the suite accepts 1002 or 1007; the library sends 1007"},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, conformanceCase{
			id:    fmt.Sprintf("7.7.%d", i+1),
			steps: script(sendFrames(closeFrame(code, ""))),
			end:   echoesClose(code),
			note:  "the suite accepts 1000 or the code; the library echoes the code",
		})
	}
	// The current suite's list. Versions before 2017 also had 1012 to
	// 1015 here; 1012 to 1014 are registered with IANA since and the
	// library accepts them.
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, conformanceCase{
			id:    fmt.Sprintf("7.9.%d", i+1),
			steps: script(sendFrames(closeFrame(code, ""))),
			end:   failsConn(CloseProtocolError),
		})
	}
	for i, code := range []int{5000, 65535} {
		cs = append(cs, conformanceCase{
			id:    fmt.Sprintf("7.13.%d", i+1),
			steps: script(sendFrames(closeFrame(code, ""))),
			end:   failsConn(CloseProtocolError),
			note:  "informational in the suite (undefined by RFC 6455); the library treats codes past 4999 as invalid",
		})
	}
	return cs
}

// 9.*: large messages, fragment and chop sizes, many round trips. Only
// the outcome is checked; the suite's timings are not.
func limitsCases() []conformanceCase {
	type kind struct {
		op      byte
		pattern string
	}
	text, bin := kind{wireOpText, "BAsd7&jh23"}, kind{wireOpBinary, "\x00\xfe\x23\xfa\xf0"}
	var cs []conformanceCase
	add := func(id string, step scriptStep, echo payloadSpec, op byte) {
		cs = append(cs, conformanceCase{id: id, steps: script(step, wantEchoOf(op, echo)), end: closesNormally})
	}
	// 9.1, 9.2: one frame of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, n := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20} {
			d := repeated(k.pattern, n)
			add(fmt.Sprintf("9.%d.%d", gi+1, i+1), sendFrames(scriptFrame{fin: true, op: k.op, payload: d}), d, k.op)
		}
	}
	// 9.3, 9.4: 4 MiB in fragments of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, fs := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
			d := repeated("*", 4<<20)
			add(fmt.Sprintf("9.%d.%d", gi+3, i+1), sendFrames(scriptFrame{op: k.op, payload: d, fragSize: fs}), d, k.op)
		}
	}
	// 9.5, 9.6: 1 MiB in one frame, written in chops of increasing size.
	for gi, k := range []kind{text, bin} {
		for i, chop := range []int{64, 128, 256, 512, 1024, 2048} {
			d := repeated(k.pattern, 1<<20)
			add(fmt.Sprintf("9.%d.%d", gi+5, i+1), sendChopped(chop, scriptFrame{fin: true, op: k.op, payload: d}), d, k.op)
		}
	}
	// 9.7, 9.8: 1000 round trips of one message each.
	for gi, k := range []kind{{wireOpText, "*"}, {wireOpBinary, "\xfe"}} {
		for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
			cs = append(cs, conformanceCase{
				id:    fmt.Sprintf("9.%d.%d", gi+7, i+1),
				steps: []scriptStep{{kind: stepRoundTrips, frames: []scriptFrame{{fin: true, op: k.op, payload: repeated(k.pattern, n)}}, n: 1000}},
				end:   closesNormally,
			})
		}
	}
	return cs
}

// 10.1.1: a 64 KiB text message auto-fragmented by the suite into frames
// of 1300 bytes.
func miscCases() []conformanceCase {
	d := repeated("*", 65536)
	return []conformanceCase{{
		id:    "10.1.1",
		steps: script(sendFrames(scriptFrame{op: wireOpText, payload: d, fragSize: 1300}), wantEchoOf(wireOpText, d)),
		end:   closesNormally,
	}}
}

// The scripted peer: the fuzzer's role, over raw TCP.

// peerEvent is what the scripted peer received: a whole data message (frames
// reassembled), a control frame, or, with err set, the end of the stream.
type peerEvent struct {
	op      byte
	payload []byte
	code    int // close frames: the status code, or noStatusCode
	err     error
	// compressed: the message's first frame had RSV1 (only with deflate
	// set on the peer); payload is then still compressed.
	compressed bool
}

// errPeerClosedTCP marks an orderly end of the stream: the peer under test
// closed TCP at a frame boundary (a reset counts: a peer that closes with
// unread data in its buffer resets the connection).
var errPeerClosedTCP = errors.New("TCP connection closed")

func (ev peerEvent) String() string {
	switch {
	case ev.err != nil:
		return ev.err.Error()
	case ev.op == wireOpText || ev.op == wireOpBinary:
		kind := "text"
		if ev.op == wireOpBinary {
			kind = "binary"
		}
		return fmt.Sprintf("%s message of %d bytes (%q)", kind, len(ev.payload), clip32(ev.payload))
	case ev.op == wireOpClose:
		return fmt.Sprintf("close frame with code %d (%q)", ev.code, clip32(ev.payload))
	case ev.op == wireOpPing:
		return fmt.Sprintf("ping (%q)", clip32(ev.payload))
	case ev.op == wireOpPong:
		return fmt.Sprintf("pong (%q)", clip32(ev.payload))
	}
	return fmt.Sprintf("frame with opcode %d", ev.op)
}

func clip32(p []byte) []byte {
	if len(p) > 32 {
		return p[:32]
	}
	return p
}

type scriptedPeer struct {
	t      *testing.T
	conn   net.Conn
	br     *bufio.Reader
	client bool // we play the client: our frames are masked, the peer's not
	events chan peerEvent
	last   *peerEvent // the terminal event, once seen
	// writeErr is set when a write failed: the peer under test may have
	// failed the connection already. Later writes are skipped and the
	// expectations decide.
	writeErr error
	// deflate: permessage-deflate was negotiated, so RSV1 may mark the
	// first frame of a data message (RFC 7692 section 6). Set before run
	// or start.
	deflate bool
}

// newScriptedPeer returns the scripted peer on conn, whose handshake is done; br
// holds what was read past the handshake. run starts reading.
func newScriptedPeer(t *testing.T, conn net.Conn, br *bufio.Reader, client bool) *scriptedPeer {
	return &scriptedPeer{t: t, conn: conn, br: br, client: client, events: make(chan peerEvent, 64)}
}

// readLoop turns the byte stream from the peer under test into events,
// checking on the way that the peer's frames are well-formed: anything a
// conforming peer must not send ends the stream with an error.
func (p *scriptedPeer) readLoop() {
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
			p.events <- peerEvent{err: err}
			return
		}
		switch op {
		case wireOpText, wireOpBinary, wireOpCont:
			if op != wireOpCont {
				msgOp, msgRSV1 = op, rsv&wireRSV1 != 0
			}
			parts = append(parts, payload)
			if fin {
				p.events <- peerEvent{op: msgOp, payload: bytes.Join(parts, nil), compressed: msgRSV1}
				msgOp, msgRSV1, parts = 0, false, nil
			}
		case wireOpClose:
			ev := peerEvent{op: op, payload: payload, code: noStatusCode}
			if len(payload) >= 2 {
				ev.code = int(binary.BigEndian.Uint16(payload))
				ev.payload = payload[2:]
			}
			p.events <- ev
		default:
			p.events <- peerEvent{op: op, payload: payload}
		}
	}
}

// checkFrame applies RFC 6455 section 5 to a frame from the peer under
// test.
func (p *scriptedPeer) checkFrame(fin bool, rsv, op byte, n int, msgOp byte) error {
	var allowed byte
	if p.deflate && (op == wireOpText || op == wireOpBinary) {
		allowed = wireRSV1
	}
	switch {
	case rsv&^allowed != 0:
		return fmt.Errorf("peer sent RSV bits %#x on a frame with opcode %d", rsv, op)
	case op > wireOpBinary && op < wireOpClose, op > wireOpPong:
		return fmt.Errorf("peer sent reserved opcode %d", op)
	case op >= wireOpClose && (!fin || n > 125):
		return fmt.Errorf("peer sent a bad control frame (opcode %d, fin %v, %d bytes)", op, fin, n)
	case op == wireOpCont && msgOp == 0:
		return errors.New("peer sent a continuation frame outside a message")
	case (op == wireOpText || op == wireOpBinary) && msgOp != 0:
		return errors.New("peer started a message inside a message")
	case op == wireOpClose && n == 1:
		return errors.New("peer sent a close frame with a 1-byte payload")
	}
	return nil
}

// readFrame reads one frame, unmasking it; a frame from a server must not
// be masked and one from a client must be.
func (p *scriptedPeer) readFrame() (fin bool, rsv, op byte, payload []byte, err error) {
	var hdr [8]byte
	p.conn.SetReadDeadline(time.Now().Add(testWait))
	if _, err := io.ReadFull(p.br, hdr[:2]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			err = errPeerClosedTCP
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
		maskPayload(key, payload)
	}
	return fin, rsv, op, payload, nil
}

// maskPayload applies the masking key to b, which starts at payload offset 0,
// eight bytes at a time (the 9.* cases mask hundreds of megabytes under
// -race).
func maskPayload(key [4]byte, b []byte) {
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
func (p *scriptedPeer) appendFrame(dst []byte, fin bool, rsv, op byte, payload []byte) []byte {
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
	maskPayload(key, dst[start:])
	return dst
}

// wire encodes frames as they go on the wire.
func (p *scriptedPeer) wire(frames []scriptFrame) []byte {
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
			data, op = data[n:], wireOpCont
		}
	}
	return b
}

// write writes b in writes of at most chop bytes (0: one write, cut in
// pieces of 256 KiB only so that each write's deadline measures progress
// in the largest cases).
func (p *scriptedPeer) write(b []byte, chop int) {
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
func (p *scriptedPeer) next() peerEvent {
	if p.last != nil {
		return *p.last
	}
	// A backstop only: the reader's deadlines end the stream when the
	// peer under test stops making progress, however long a big message
	// takes as a whole.
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	var ev peerEvent
	select {
	case e, ok := <-p.events:
		ev = e
		if !ok {
			ev = peerEvent{err: errors.New("reader stopped")}
		}
	case <-timer.C:
		ev = peerEvent{err: errors.New("no event in time")}
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
func (p *scriptedPeer) quiet(d time.Duration) bool {
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
func (p *scriptedPeer) wantMessage(op byte, want []byte) bool {
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
func (p *scriptedPeer) run(c conformanceCase) {
	t := p.t
	wires := make([][]byte, len(c.steps))
	wants := make([][]byte, len(c.steps))
	for i, st := range c.steps {
		switch st.kind {
		case stepSend, stepSplit:
			wires[i] = p.wire(st.frames)
		case stepRoundTrips:
			wires[i] = p.wire(st.frames)
			wants[i] = st.frames[0].payload.bytes()
		case stepWantMessage, stepWantPong:
			wants[i] = st.data.bytes()
		}
	}
	closeWire := p.wire([]scriptFrame{closeFrame(CloseNormalClosure, "")})
	p.start()

	for i, st := range c.steps {
		ok := true
		switch st.kind {
		case stepSend:
			p.write(wires[i], st.chop)
		case stepSplit:
			b := wires[i]
			hdr := len(b) - st.frames[0].payload.size()
			from := 0
			for j, cut := range st.cuts {
				if j > 0 && !p.quiet(quietWait) {
					ok = false
					break
				}
				p.write(b[from:hdr+cut], 0)
				from = hdr + cut
			}
		case stepWantMessage:
			ok = p.wantMessage(st.op, wants[i])
		case stepWantPong:
			ev := p.next()
			if ev.err != nil || ev.op != wireOpPong || !bytes.Equal(ev.payload, wants[i]) {
				t.Errorf("expected pong (%q), got %v", wants[i], ev)
				ok = false
			}
		case stepRoundTrips:
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
func (p *scriptedPeer) start() {
	go p.readLoop()
	p.t.Cleanup(func() {
		p.conn.Close()
		for range p.events {
		}
	})
}

// finish checks how the connection ends once the script is done. For a
// normal end it first sends closeWire, the encoded close frame with 1000.
func (p *scriptedPeer) finish(end caseEnd, closeWire []byte) {
	if end.kind == endNormal {
		p.write(closeWire, 0)
	}
	ev := p.next()
	if ev.err != nil || ev.op != wireOpClose || ev.code != end.code {
		p.t.Errorf("expected close frame with code %d, got %v", end.code, ev)
		return
	}
	// Nothing may follow a close frame, and the peer under test must
	// close TCP: as the server after the closing handshake or after
	// failing the connection, as our client when its echo loop ends.
	if ev := p.next(); !errors.Is(ev.err, errPeerClosedTCP) {
		p.t.Errorf("expected TCP close after the close frame, got %v", ev)
	}
}

// checkCaseEnd checks the error that ended the echo loop of the peer under
// test against how the case ends. If the case failed already, it closes
// nc so that the loop ends at once, and only logs the loop's error.
func checkCaseEnd(t *testing.T, end caseEnd, nc net.Conn, errc <-chan error) {
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
	case endFails:
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

// acceptKeyFor computes Sec-WebSocket-Accept for key (RFC 6455 section 4.2.2).
func acceptKeyFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func newChallengeKey(t *testing.T) string {
	var b [16]byte
	_, err := crand.Read(b[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b[:])
}

// runConformanceCases runs each case as a subtest of t through runCase. Cases moving
// more than bigCaseTraffic bytes run one at a time, before the others, which
// run in parallel. Under -short, cases that send more than shortCaseTraffic
// payload bytes are skipped.
func runConformanceCases(t *testing.T, runCase func(*testing.T, conformanceCase)) {
	for _, c := range conformanceCases() {
		t.Run(c.id, func(t *testing.T) {
			if testing.Short() && c.traffic() > shortCaseTraffic {
				t.Skipf("-short: sends %d payload bytes, -short runs only cases of up to %d; the full replay runs without -short", c.traffic(), shortCaseTraffic)
			}
			if c.traffic() < bigCaseTraffic {
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
	for _, c := range conformanceCases() {
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
	for gi, group := range utf8Groups() {
		for si, seq := range group {
			assert.Equal(t, utf8.ValidString(seq.s), seq.valid, "6.%d.%d %x", gi+5, si+1, seq.s)
		}
	}
}
