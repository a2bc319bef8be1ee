package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func FuzzParseFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58})
	f.Add([]byte{0x82, 0x7E, 0x01, 0x00})
	f.Add([]byte{0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})
	f.Add([]byte{0x82, 0xFF, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 1, 2, 3, 4})
	f.Add([]byte{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4})
	f.Add([]byte{0x0B, 0x00})
	f.Add([]byte{0xF8, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		hl := frameHeaderLen(b[0], b[1])
		if hl < 2 || hl > maxFrameHeaderSize {
			t.Fatalf("frameHeaderLen(%#x, %#x) = %d", b[0], b[1], hl)
		}
		if len(b) < hl {
			return
		}
		h, n, perr := parseFrameHeader(b)
		if perr != nil {
			if perr.Code != CloseProtocolError {
				t.Fatalf("% x: error code %d", b[:hl], perr.Code)
			}
			l := b[1] & 0x7f
			topBit := l == 127 && b[2]&0x80 != 0
			long16 := l == 126 && binary.BigEndian.Uint16(b[2:]) > 125
			long64 := l == 127 && binary.BigEndian.Uint64(b[2:]) > 0xffff
			if !topBit && !(l == 126 && !long16) && !(l == 127 && !long64) {
				t.Fatalf("% x: rejected: %v", b[:hl], perr)
			}
			return
		}
		if n != hl {
			t.Fatalf("% x: parsed %d bytes, frameHeaderLen says %d", b[:hl], n, hl)
		}
		if h.length < 0 {
			t.Fatalf("% x: negative length %d", b[:hl], h.length)
		}
		for _, isServer := range []bool{false, true} {
			for _, allowed := range []byte{0, rsv1Bit} {
				hc := h
				if perr := checkFrameHeader(&hc, isServer, allowed); perr != nil && perr.Code != CloseProtocolError {
					t.Fatalf("% x: check error code %d", b[:hl], perr.Code)
				}
			}
		}

		enc := appendFrameHeader(nil, h.fin, h.rsv, h.opcode, int(h.length), h.masked, h.key)
		if len(enc) != headerSize(int(h.length), h.masked) {
			t.Fatalf("% x: re-encoded to %d bytes, headerSize says %d", b[:hl], len(enc), headerSize(int(h.length), h.masked))
		}
		h2, n2, perr := parseFrameHeader(enc)
		if perr != nil || n2 != len(enc) || h2 != h {
			t.Fatalf("% x: re-encoded as % x, parsed back as %+v (%d bytes, %v), want %+v", b[:hl], enc, h2, n2, perr, h)
		}
		// Only minimal encodings are accepted, and ours is minimal, so
		// the header re-encodes to the very same bytes.
		if !bytes.Equal(enc, b[:hl]) {
			t.Fatalf("% x: re-encoded differently: % x", b[:hl], enc)
		}
	})
}

func FuzzMask(f *testing.F) {
	f.Add(uint32(0x3d21fa37), 0, []byte("Hello"), uint8(0))
	f.Add(uint32(0xffffffff), 3, bytes.Repeat([]byte{0xAA}, 100), uint8(3))
	f.Add(uint32(1), 1, make([]byte, 33), uint8(1))
	f.Add(uint32(0x01020304), 7, []byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, k uint32, pos int, data []byte, off uint8) {
		key := [4]byte{byte(k), byte(k >> 8), byte(k >> 16), byte(k >> 24)}
		if pos < 0 {
			pos = -(pos + 1)
		}
		o := int(off) % (len(data) + 1)
		want := cloneBytes(data)
		wantPos := maskReference(key, pos, want[o:])
		got := cloneBytes(data)
		gotPos := maskBytes(key, pos, got[o:])
		if !bytes.Equal(got, want) || gotPos != wantPos {
			t.Fatalf("key %x pos %d off %d len %d: got pos %d, want %d; bytes equal %v", key, pos, o, len(data), gotPos, wantPos, bytes.Equal(got, want))
		}
	})
}

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("κόσμε"), uint(3))
	f.Add([]byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"), uint(12))
	f.Add([]byte("\xf4\x90\x80\x80"), uint(1))
	f.Add([]byte("\xf0\x9f\x98"), uint(2))
	f.Add([]byte("\xc0\x80"), uint(1))
	f.Add([]byte("abc"), uint(0))
	f.Fuzz(func(t *testing.T, b []byte, cut uint) {
		var v utf8Validator
		whole := v.write(b) && v.complete()
		if whole != utf8.Valid(b) {
			t.Fatalf("% x whole: validator %v, utf8.Valid %v", b, whole, !whole)
		}
		c := int(cut % uint(len(b)+1))
		v.reset()
		ok1 := v.write(b[:c])
		split := ok1 && v.write(b[c:]) && v.complete()
		if split != utf8.Valid(b) {
			t.Fatalf("% x cut at %d: validator %v, utf8.Valid %v", b, c, split, !split)
		}
		// The first piece is judged on its own merits: rejected exactly
		// when it is no prefix of valid text.
		if ok1 != isValidUTF8PrefixLinear(b[:c]) {
			t.Fatalf("% x cut at %d: first piece accepted %v", b, c, ok1)
		}
		if len(b) <= 64 {
			checkPiecesValid(t, b, []int{c}, "fuzz two pieces")
		}
	})
}

// isValidUTF8PrefixLinear is isValidUTF8Prefix in linear time, for long inputs:
// b is a valid prefix when it is valid, or valid text followed by the
// start of one more character.
func isValidUTF8PrefixLinear(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for k := 1; k <= 3 && k <= len(b); k++ {
		if utf8.Valid(b[:len(b)-k]) && isValidUTF8Prefix(b[len(b)-k:]) {
			return true
		}
	}
	return false
}

func FuzzParseExtensions(f *testing.F) {
	f.Add(`permessage-deflate; client_max_window_bits, x-foo; a="b c"; d=1`)
	f.Add(`permessage-deflate; server_no_context_takeover; client_max_window_bits=10`)
	f.Add(`x; a="b\"c\\d"`)
	f.Add(`x; a=`)
	f.Add(`, ;;= "`)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		offers, ok := parseExtensions(http.Header{"Sec-Websocket-Extensions": {s}}, -1)
		for _, o := range offers {
			if !isHTTPToken(o.Name) {
				t.Fatalf("%q: extension name %q is not a token", s, o.Name)
			}
			for _, p := range o.Params {
				if !isHTTPToken(p.Name) {
					t.Fatalf("%q: parameter name %q is not a token", s, p.Name)
				}
				// A value is never empty; no value means Value "".
				if p.HasValue == (p.Value == "") {
					t.Fatalf("%q: parameter %+v", s, p)
				}
			}
		}
		for _, o := range offers {
			if len(o.Params) > maxExtensionParams || o.TooManyParams && len(o.Params) != maxExtensionParams {
				t.Fatalf("%q: %d parameters kept, too many: %v", s, len(o.Params), o.TooManyParams)
			}
			if o.TooManyParams {
				// Formatting drops the parameters that were not kept.
				ok = false
			}
		}
		if !ok {
			return
		}
		// What parsed, formatted again, parses to the same offers.
		again, ok := parseExtensions(http.Header{"Sec-Websocket-Extensions": {formatExtensions(offers)}}, -1)
		if !ok || fmt.Sprint(again) != fmt.Sprint(offers) {
			t.Fatalf("%q parsed to %+v; formatted as %q it parses to %+v (%v)", s, offers, formatExtensions(offers), again, ok)
		}
	})
}

func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

func formatExtensions(offers []extensionOffer) string {
	var b strings.Builder
	for i, o := range offers {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(o.Name)
		for _, p := range o.Params {
			b.WriteString("; ")
			b.WriteString(p.Name)
			if p.HasValue {
				b.WriteString(`="`)
				for j := 0; j < len(p.Value); j++ {
					if c := p.Value[j]; c == '"' || c == '\\' {
						b.WriteByte('\\')
					}
					b.WriteByte(p.Value[j])
				}
				b.WriteByte('"')
			}
		}
	}
	return b.String()
}

type readResult struct {
	typ  int
	data []byte
	// skipped: the reader abandoned the message after reading data, a
	// prefix of it, and the Conn discarded the rest.
	skipped bool
}

// referenceOutcome is what reading a byte stream to its end must produce: the
// data messages in order, then one error.
type referenceOutcome struct {
	msgs []readResult
	// err is one of "close" (a *CloseError with code and text), "protocol"
	// (a *ProtocolError with code) or "limit" (ErrReadLimit).
	err  string
	code int
	text string
}

// referenceRead decodes stream the slow and obvious way, as a Conn on the given
// side with read limit limit (0: none) and default handlers must see it.
func referenceRead(stream []byte, isServer bool, limit int64) referenceOutcome {
	var out referenceOutcome
	eof := func() referenceOutcome {
		out.err, out.code, out.text = "close", CloseAbnormalClosure, "unexpected EOF"
		return out
	}
	protocol := func(code int) referenceOutcome {
		out.err, out.code = "protocol", code
		return out
	}
	msgType := 0
	var msg []byte
	for {
		if len(stream) < 2 {
			return eof()
		}
		b0, b1 := stream[0], stream[1]
		fin, rsv, op, masked := b0&0x80 != 0, b0&0x70, b0&0x0f, b1&0x80 != 0
		length := uint64(b1 & 0x7f)
		hl := 2
		switch length {
		case 126:
			hl += 2
		case 127:
			hl += 8
		}
		if masked {
			hl += 4
		}
		if len(stream) < hl {
			return eof()
		}
		switch length {
		case 126:
			length = uint64(stream[2])<<8 | uint64(stream[3])
			if length < 126 {
				return protocol(CloseProtocolError)
			}
		case 127:
			length = 0
			for _, c := range stream[2:10] {
				length = length<<8 | uint64(c)
			}
			if length >= 1<<63 || length < 1<<16 {
				return protocol(CloseProtocolError)
			}
		}
		var key [4]byte
		if masked {
			copy(key[:], stream[hl-4:hl])
		}
		control := op >= 8
		switch {
		case op > 10 || (op > 2 && op < 8):
			return protocol(CloseProtocolError)
		case rsv != 0:
			return protocol(CloseProtocolError)
		case masked != isServer:
			return protocol(CloseProtocolError)
		case control && (length > 125 || !fin):
			return protocol(CloseProtocolError)
		}
		stream = stream[hl:]
		unmask := func(p []byte) []byte {
			q := cloneBytes(p)
			if masked {
				for i := range q {
					q[i] ^= key[i%4]
				}
			}
			return q
		}
		if control {
			if uint64(len(stream)) < length {
				return eof()
			}
			p := unmask(stream[:length])
			stream = stream[length:]
			if op != opClose {
				continue
			}
			switch {
			case len(p) == 0:
				out.err, out.code = "close", CloseNoStatusReceived
				return out
			case len(p) == 1:
				return protocol(CloseProtocolError)
			}
			code := int(p[0])<<8 | int(p[1])
			if !(code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999) {
				return protocol(CloseProtocolError)
			}
			if !utf8.Valid(p[2:]) {
				return protocol(CloseInvalidFramePayloadData)
			}
			out.err, out.code, out.text = "close", code, string(p[2:])
			return out
		}
		switch {
		case op == opContinuation && msgType == 0:
			return protocol(CloseProtocolError)
		case op != opContinuation && msgType != 0:
			return protocol(CloseProtocolError)
		}
		if op != opContinuation {
			msgType, msg = int(op), []byte{}
		}
		if limit > 0 && length > uint64(limit)-uint64(len(msg)) {
			out.err = "limit"
			return out
		}
		avail := length
		if uint64(len(stream)) < avail {
			avail = uint64(len(stream))
		}
		msg = append(msg, unmask(stream[:avail])...)
		stream = stream[avail:]
		if msgType == TextMessage && !isValidUTF8PrefixLinear(msg) {
			return protocol(CloseInvalidFramePayloadData)
		}
		if avail < length {
			return eof()
		}
		if fin {
			if msgType == TextMessage && !utf8.Valid(msg) {
				return protocol(CloseInvalidFramePayloadData)
			}
			out.msgs = append(out.msgs, readResult{typ: msgType, data: msg})
			msgType = 0
		}
	}
}

// checkAgainstReference compares what a Conn read with the reference outcome.
// When the reader abandoned the last message just before the error, the
// error may have come while discarding it, so the reference may or may not
// count that message as complete.
func checkAgainstReference(t *testing.T, stream []byte, got []readResult, err error, want referenceOutcome) {
	t.Helper()
	n := len(got)
	if n > 0 && got[n-1].skipped && len(want.msgs) == n-1 {
		got = got[:n-1]
	}
	if len(got) != len(want.msgs) {
		t.Fatalf("stream % x: read %d messages, want %d (err %v, want %s %d)", stream, len(got), len(want.msgs), err, want.err, want.code)
	}
	for i, m := range got {
		w := want.msgs[i]
		if m.typ != w.typ {
			t.Fatalf("stream % x: message %d has type %d, want %d", stream, i, m.typ, w.typ)
		}
		if m.skipped && !bytes.HasPrefix(w.data, m.data) || !m.skipped && !bytes.Equal(m.data, w.data) {
			t.Fatalf("stream % x: message %d is % x (skipped %v), want % x", stream, i, m.data, m.skipped, w.data)
		}
	}
	var ce *CloseError
	var pe *ProtocolError
	switch {
	case err == nil:
		t.Fatalf("stream % x: no error at the end", stream)
	case want.err == "close":
		if !errors.As(err, &ce) || ce.Code != want.code || ce.Text != want.text {
			t.Fatalf("stream % x: error %v, want close %d %q", stream, err, want.code, want.text)
		}
	case want.err == "protocol":
		if !errors.As(err, &pe) || pe.Code != want.code {
			t.Fatalf("stream % x: error %v, want protocol error %d", stream, err, want.code)
		}
	case want.err == "limit":
		if !errors.Is(err, ErrReadLimit) {
			t.Fatalf("stream % x: error %v, want ErrReadLimit", stream, err)
		}
	}
}

// readAllMessages reads c to its first error with ReadMessage, or with NextReader
// and reads of at most chunk bytes when chunk > 0. In the latter case,
// message i is abandoned after one read when bit i%8 of skip is set.
func readAllMessages(t *testing.T, c *Conn, chunk int, skip uint8, maxMessages int) ([]readResult, error) {
	var msgs []readResult
	for i := 0; ; i++ {
		if i > maxMessages {
			t.Fatalf("more than %d messages", maxMessages)
		}
		if chunk <= 0 {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return msgs, err
			}
			msgs = append(msgs, readResult{typ: typ, data: p})
			continue
		}
		typ, r, err := c.NextReader()
		if err != nil {
			return msgs, err
		}
		m := readResult{typ: typ, data: []byte{}}
		buf := make([]byte, chunk)
		for {
			n, err := r.Read(buf)
			m.data = append(m.data, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				// The same error must come back from NextReader.
				_, _, err2 := c.NextReader()
				if err2 != err {
					t.Fatalf("Read error %v, then NextReader error %v", err, err2)
				}
				return msgs, err
			}
			if skip>>(i%8)&1 != 0 {
				m.skipped = true
				break
			}
		}
		msgs = append(msgs, m)
		if m.skipped {
			// An abandoned reader sees io.EOF once the next message
			// has been asked for.
			defer func(r io.Reader) {
				if n, err := r.Read(buf); n != 0 || err != io.EOF {
					t.Errorf("abandoned reader: Read = %d, %v", n, err)
				}
			}(r)
		}
	}
}

// fuzzReadStream reads stream through a Conn configured from the fuzz
// parameters and checks the outcome against the reference decoder.
func fuzzReadStream(t *testing.T, stream []byte, isServer bool, netChunk, readChunk, skip uint8, limit uint16, smallBuf bool) {
	bufSize := 0
	if smallBuf {
		bufSize = 1 // rounded up to the smallest workable size
	}
	// Bytes beyond the first 16 are pipelined after the handshake,
	// exercising newConn's pending argument.
	pending := []byte(nil)
	rest := stream
	if netChunk%2 == 1 && len(stream) > 16 {
		pending, rest = stream[:16], stream[16:]
	}
	nc := &chunkedConn{data: rest, chunk: int(netChunk % 32)}
	c := newConn(nc, isServer, bufSize, 0, nil, pending)
	c.SetReadLimit(int64(limit))
	msgs, err := readAllMessages(t, c, int(readChunk%64), skip, len(stream)/2+1)
	checkAgainstReference(t, stream, msgs, err, referenceRead(stream, isServer, int64(limit)))
	// The error is permanent.
	_, _, err2 := c.ReadMessage()
	if err2 != err {
		t.Fatalf("stream % x: error %v, then %v", stream, err, err2)
	}
}

// readFuzzSeeds are streams worth starting from, as a client sends them to
// a server (masked), for both FuzzReadFrames and the table test.
func readFuzzSeeds() [][]byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	frame := func(fin bool, op byte, payload []byte) []byte {
		b := appendFrameHeader(nil, fin, 0, op, len(payload), true, key)
		hl := len(b)
		b = append(b, payload...)
		maskBytes(key, 0, b[hl:])
		return b
	}
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	return [][]byte{
		{},
		frame(true, opText, []byte("Hello")),
		cat(frame(false, opText, []byte("Hel")), frame(true, opPing, []byte("p")), frame(true, opContinuation, []byte("lo"))),
		cat(frame(true, opBinary, bytes.Repeat([]byte{7}, 300)), frame(true, opClose, FormatCloseMessage(1000, "bye"))),
		cat(frame(false, opText, []byte("\xce")), frame(true, opContinuation, []byte("\xba"))),
		frame(true, opText, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")),
		frame(true, opClose, []byte{0x03}),
		frame(true, opClose, FormatCloseMessage(1005, "")),
		frame(true, opClose, FormatCloseMessage(1000, "\xff")),
		cat(frame(true, opText, nil), frame(true, opClose, nil)),
		frame(true, opContinuation, []byte("x")),
		cat(frame(false, opBinary, []byte("x")), frame(true, opBinary, []byte("y"))),
		frame(false, opPing, nil),
		frame(true, 0x3, nil),
		appendFrameHeader(nil, true, 0, opBinary, 1<<62, true, key),
		{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4},
		{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, // unmasked: fine for a client
		frame(true, opText, []byte("trunc"))[:8],
	}
}

func FuzzReadFrames(f *testing.F) {
	for i, s := range readFuzzSeeds() {
		f.Add(s, i%2 == 0, uint8(i), uint8(i*7), uint8(0), uint16(0), i%3 == 0)
	}
	f.Add(readFuzzSeeds()[2], true, uint8(0), uint8(1), uint8(0xff), uint16(0), false)
	f.Add(readFuzzSeeds()[3], true, uint8(0), uint8(0), uint8(0), uint16(100), false)
	f.Add(readFuzzSeeds()[3], true, uint8(1), uint8(5), uint8(1), uint16(300), true)
	f.Fuzz(func(t *testing.T, stream []byte, isServer bool, netChunk, readChunk, skip uint8, limit uint16, smallBuf bool) {
		fuzzReadStream(t, stream, isServer, netChunk, readChunk, skip, limit, smallBuf)
	})
}

func TestUnitReadFramesReference(t *testing.T) {
	// The fuzz seeds, run in every configuration, as ordinary tests.
	for i, s := range readFuzzSeeds() {
		for _, isServer := range []bool{true, false} {
			for _, netChunk := range []uint8{0, 1, 3, 7} {
				for _, readChunk := range []uint8{0, 1, 5, 63} {
					for _, skip := range []uint8{0, 0xff, 0x55} {
						if readChunk == 0 && skip != 0 {
							continue
						}
						for _, limit := range []uint16{0, 4, 299, 300} {
							for _, smallBuf := range []bool{false, true} {
								name := fmt.Sprintf("seed%d/server=%v/net=%d/read=%d/skip=%#x/limit=%d/small=%v", i, isServer, netChunk, readChunk, skip, limit, smallBuf)
								t.Run(name, func(t *testing.T) {
									fuzzReadStream(t, s, isServer, netChunk, readChunk, skip, limit, smallBuf)
								})
							}
						}
					}
				}
			}
		}
	}
}

func TestUnitRefReadSanity(t *testing.T) {
	// The reference decoder on known streams, so that agreement with it
	// means something.
	seeds := readFuzzSeeds()
	out := referenceRead(seeds[1], true, 0)
	require.Equal(t, []readResult{{typ: TextMessage, data: []byte("Hello")}}, out.msgs)
	assert.Equal(t, "close", out.err)
	assert.Equal(t, CloseAbnormalClosure, out.code)

	out = referenceRead(seeds[2], true, 0)
	require.Equal(t, []readResult{{typ: TextMessage, data: []byte("Hello")}}, out.msgs)

	out = referenceRead(seeds[3], true, 0)
	require.Len(t, out.msgs, 1)
	assert.Equal(t, "close", out.err)
	assert.Equal(t, 1000, out.code)
	assert.Equal(t, "bye", out.text)
	assert.Equal(t, "limit", referenceRead(seeds[3], true, 299).err)
	assert.Equal(t, "protocol", referenceRead(seeds[3], false, 0).err)

	out = referenceRead(seeds[5], true, 0)
	assert.Equal(t, "protocol", out.err)
	assert.Equal(t, CloseInvalidFramePayloadData, out.code)
}
