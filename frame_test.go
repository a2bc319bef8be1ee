package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lengthBoundaries are the payload lengths at which the encoding of the
// length field changes, with their neighbours.
var lengthBoundaries = []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 32, 1<<63 - 1}

func TestUnitFrameHeaderRoundTrip(t *testing.T) {
	type variant struct {
		fin    bool
		rsv    byte
		opcode byte
	}
	variants := []variant{
		{true, 0, opText},
		{false, 0, opText},
		{true, 0, opBinary},
		{false, 0, opContinuation},
		{true, 0, opContinuation},
		{true, rsv1Bit, opText},
		{false, rsv2Bit, opBinary},
		{true, rsv3Bit, opBinary},
		{true, rsvBits, opText},
		{true, 0, opClose},
		{true, 0, opPing},
		{true, 0, opPong},
		{true, 0, 0x3}, // reserved opcodes still encode and decode
		{false, rsvBits, 0xF},
	}
	keys := [][4]byte{{}, {0x37, 0xfa, 0x21, 0x3d}, {0xff, 0xff, 0xff, 0xff}}
	for _, length := range lengthBoundaries {
		for _, v := range variants {
			for _, masked := range []bool{false, true} {
				for _, key := range keys {
					if !masked && key != ([4]byte{}) {
						continue
					}
					name := fmt.Sprintf("len=%d/fin=%v/rsv=%#x/op=%d/masked=%v/key=%x", length, v.fin, v.rsv, v.opcode, masked, key)
					prefix := []byte{0xAA} // appending after existing bytes
					b := appendFrameHeader(prefix, v.fin, v.rsv, v.opcode, length, masked, key)
					require.Equal(t, byte(0xAA), b[0], name)
					hdr := b[1:]
					require.Len(t, hdr, headerSize(length, masked), name)
					require.Equal(t, len(hdr), frameHeaderLen(hdr[0], hdr[1]), name)

					h, n, perr := parseFrameHeader(hdr)
					require.Nil(t, perr, name)
					assert.Equal(t, len(hdr), n, name)
					want := frameHeader{fin: v.fin, rsv: v.rsv, opcode: v.opcode, masked: masked, length: int64(length)}
					if masked {
						want.key = key
					}
					assert.Equal(t, want, h, name)

					// Trailing payload bytes must not disturb parsing.
					h2, n2, perr := parseFrameHeader(append(append([]byte(nil), hdr...), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14))
					require.Nil(t, perr, name)
					assert.Equal(t, n, n2, name)
					assert.Equal(t, h, h2, name)
				}
			}
		}
	}
}

func TestUnitFrameHeaderMinimalEncoding(t *testing.T) {
	// The length field uses the shortest form RFC 6455 section 5.2 allows.
	for _, tc := range []struct {
		length int
		b1     byte
		size   int
	}{
		{0, 0, 2}, {1, 1, 2}, {125, 125, 2},
		{126, 126, 4}, {127, 126, 4}, {65535, 126, 4},
		{65536, 127, 10}, {1 << 32, 127, 10}, {1<<63 - 1, 127, 10},
	} {
		b := appendFrameHeader(nil, true, 0, opBinary, tc.length, false, [4]byte{})
		assert.Equal(t, tc.b1, b[1], "length %d", tc.length)
		assert.Len(t, b, tc.size, "length %d", tc.length)
		assert.Equal(t, tc.size, headerSize(tc.length, false), "length %d", tc.length)
		assert.Equal(t, tc.size+4, headerSize(tc.length, true), "length %d", tc.length)
	}
}

func TestUnitFrameHeaderKnownBytes(t *testing.T) {
	hello := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	for _, tc := range []struct {
		name    string
		fin     bool
		rsv     byte
		opcode  byte
		length  int
		masked  bool
		key     [4]byte
		payload string // masked with key when masked
		want    []byte // header followed by the (masked) payload
	}{
		{
			name: "unmasked text Hello", fin: true, opcode: opText, length: 5, payload: "Hello",
			want: []byte{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
		},
		{
			name: "masked text Hello", fin: true, opcode: opText, length: 5, masked: true, key: hello, payload: "Hello",
			want: []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
		},
		{
			name: "first fragment Hel", fin: false, opcode: opText, length: 3, payload: "Hel",
			want: []byte{0x01, 0x03, 0x48, 0x65, 0x6c},
		},
		{
			name: "last fragment lo", fin: true, opcode: opContinuation, length: 2, payload: "lo",
			want: []byte{0x80, 0x02, 0x6c, 0x6f},
		},
		{
			name: "unmasked ping Hello", fin: true, opcode: opPing, length: 5, payload: "Hello",
			want: []byte{0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f},
		},
		{
			name: "masked pong Hello", fin: true, opcode: opPong, length: 5, masked: true, key: hello, payload: "Hello",
			want: []byte{0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58},
		},
		{
			name: "256 bytes binary", fin: true, opcode: opBinary, length: 256,
			want: []byte{0x82, 0x7E, 0x01, 0x00},
		},
		{
			name: "64KiB binary", fin: true, opcode: opBinary, length: 65536,
			want: []byte{0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00},
		},
		{
			name: "rsv1 text empty", fin: true, rsv: rsv1Bit, opcode: opText, length: 0,
			want: []byte{0xC1, 0x00},
		},
		{
			name: "close masked empty", fin: true, opcode: opClose, masked: true, key: [4]byte{1, 2, 3, 4},
			want: []byte{0x88, 0x80, 1, 2, 3, 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := appendFrameHeader(nil, tc.fin, tc.rsv, tc.opcode, tc.length, tc.masked, tc.key)
			p := []byte(tc.payload)
			if tc.masked {
				maskBytes(tc.key, 0, p)
			}
			got = append(got, p...)
			require.Equal(t, tc.want, got)

			h, n, perr := parseFrameHeader(tc.want)
			require.Nil(t, perr)
			assert.Equal(t, len(tc.want)-len(tc.payload), n)
			assert.Equal(t, tc.fin, h.fin)
			assert.Equal(t, tc.rsv, h.rsv)
			assert.Equal(t, tc.opcode, h.opcode)
			assert.Equal(t, tc.masked, h.masked)
			assert.Equal(t, int64(tc.length), h.length)
			if tc.masked {
				assert.Equal(t, tc.key, h.key)
				q := append([]byte(nil), tc.want[n:]...)
				maskBytes(h.key, 0, q)
				assert.Equal(t, tc.payload, string(q))
			}
		})
	}
}

func TestUnitFrameHeaderTopBitRejected(t *testing.T) {
	for _, l := range [][8]byte{
		{0x80, 0, 0, 0, 0, 0, 0, 0},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x80, 0, 0, 0, 0, 0, 0, 1},
	} {
		for _, b1 := range []byte{0x7f, 0xff} {
			b := append([]byte{0x82, b1}, l[:]...)
			b = append(b, 1, 2, 3, 4)
			_, _, perr := parseFrameHeader(b)
			require.NotNil(t, perr, "% x", b)
			assert.Equal(t, CloseProtocolError, perr.Code)
			assert.True(t, strings.HasPrefix(perr.Error(), "websocket: "), perr.Error())
		}
	}
	// The largest legal length parses.
	h, _, perr := parseFrameHeader([]byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	require.Nil(t, perr)
	assert.Equal(t, int64(1<<63-1), h.length)
}

func TestUnitFrameHeaderLen(t *testing.T) {
	for _, tc := range []struct {
		b1   byte
		want int
	}{
		{0x00, 2}, {0x7d, 2}, {0x7e, 4}, {0x7f, 10},
		{0x80, 6}, {0xfd, 6}, {0xfe, 8}, {0xff, 14},
	} {
		assert.Equal(t, tc.want, frameHeaderLen(0x81, tc.b1), "b1 %#x", tc.b1)
	}
}

func TestUnitCheckFrameHeader(t *testing.T) {
	type tcase struct {
		name       string
		h          frameHeader
		isServer   bool
		allowedRSV byte
		ok         bool
	}
	// fromClient is a valid frame as a server receives it.
	fromClient := func(fin bool, rsv, opcode byte, length int64) frameHeader {
		return frameHeader{fin: fin, rsv: rsv, opcode: opcode, masked: true, length: length, key: [4]byte{1, 2, 3, 4}}
	}
	var cases []tcase
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases,
			tcase{name: fmt.Sprintf("reserved opcode %#x server", op), h: fromClient(true, 0, op, 0), isServer: true},
			tcase{name: fmt.Sprintf("reserved opcode %#x client", op), h: frameHeader{fin: true, opcode: op}, isServer: false},
			tcase{name: fmt.Sprintf("reserved opcode %#x with rsv1 allowed", op), h: fromClient(true, 0, op, 0), isServer: true, allowedRSV: rsv1Bit},
		)
	}
	for _, op := range []byte{opContinuation, opText, opBinary, opClose, opPing, opPong} {
		cases = append(cases,
			tcase{name: fmt.Sprintf("opcode %d from client", op), h: fromClient(true, 0, op, 0), isServer: true, ok: true},
			tcase{name: fmt.Sprintf("opcode %d from server", op), h: frameHeader{fin: true, opcode: op, length: 125}, ok: true},
			tcase{name: fmt.Sprintf("opcode %d unmasked to server", op), h: frameHeader{fin: true, opcode: op}, isServer: true},
			tcase{name: fmt.Sprintf("opcode %d masked to client", op), h: fromClient(true, 0, op, 0), isServer: false},
		)
	}
	for _, rsv := range []byte{rsv1Bit, rsv2Bit, rsv3Bit, rsv1Bit | rsv2Bit, rsvBits} {
		for _, op := range []byte{opText, opBinary, opContinuation} {
			cases = append(cases,
				tcase{name: fmt.Sprintf("rsv %#x op %d none allowed", rsv, op), h: fromClient(true, rsv, op, 10), isServer: true},
				tcase{name: fmt.Sprintf("rsv %#x op %d rsv1 allowed", rsv, op), h: fromClient(true, rsv, op, 10), isServer: true, allowedRSV: rsv1Bit, ok: rsv == rsv1Bit},
				tcase{name: fmt.Sprintf("rsv %#x op %d client none allowed", rsv, op), h: frameHeader{fin: false, rsv: rsv, opcode: op}},
				tcase{name: fmt.Sprintf("rsv %#x op %d client rsv1 allowed", rsv, op), h: frameHeader{fin: false, rsv: rsv, opcode: op}, allowedRSV: rsv1Bit, ok: rsv == rsv1Bit},
			)
		}
	}
	for _, op := range []byte{opClose, opPing, opPong} {
		cases = append(cases,
			tcase{name: fmt.Sprintf("control %d length 125", op), h: fromClient(true, 0, op, 125), isServer: true, ok: true},
			tcase{name: fmt.Sprintf("control %d length 126", op), h: fromClient(true, 0, op, 126), isServer: true},
			tcase{name: fmt.Sprintf("control %d length 65536", op), h: fromClient(true, 0, op, 65536), isServer: true},
			tcase{name: fmt.Sprintf("control %d client length 126", op), h: frameHeader{fin: true, opcode: op, length: 126}},
			tcase{name: fmt.Sprintf("control %d fragmented", op), h: fromClient(false, 0, op, 0), isServer: true},
			tcase{name: fmt.Sprintf("control %d client fragmented", op), h: frameHeader{opcode: op}},
			tcase{name: fmt.Sprintf("control %d rsv1 not allowed", op), h: fromClient(true, rsv1Bit, op, 0), isServer: true},
			// Per-message compression never applies to control frames.
			tcase{name: fmt.Sprintf("control %d rsv1 allowed", op), h: fromClient(true, rsv1Bit, op, 0), isServer: true, allowedRSV: rsv1Bit},
			tcase{name: fmt.Sprintf("control %d client rsv1 allowed", op), h: frameHeader{fin: true, rsv: rsv1Bit, opcode: op}, allowedRSV: rsv1Bit},
			tcase{name: fmt.Sprintf("control %d rsv2", op), h: fromClient(true, rsv2Bit, op, 0), isServer: true, allowedRSV: rsv1Bit},
		)
	}
	cases = append(cases,
		tcase{name: "data frame length 126", h: fromClient(true, 0, opBinary, 126), isServer: true, ok: true},
		tcase{name: "data frame huge length", h: fromClient(false, 0, opBinary, 1<<63-1), isServer: true, ok: true},
		tcase{name: "data fragment", h: fromClient(false, 0, opText, 1), isServer: true, ok: true},
	)
	for _, tc := range cases {
		h := tc.h
		perr := checkFrameHeader(&h, tc.isServer, tc.allowedRSV)
		if tc.ok {
			assert.Nil(t, perr, tc.name)
			continue
		}
		if assert.NotNil(t, perr, tc.name) {
			assert.Equal(t, CloseProtocolError, perr.Code, tc.name)
			assert.True(t, strings.HasPrefix(perr.Error(), "websocket: "), tc.name)
			// The reason goes into a close frame.
			assert.LessOrEqual(t, len(perr.Reason), maxControlPayload-2, tc.name)
			var target *ProtocolError
			assert.True(t, errors.As(error(perr), &target), tc.name)
		}
		assert.Equal(t, tc.h, h, "checkFrameHeader must not modify the header: %s", tc.name)
	}
}

func TestUnitParseClosePayload(t *testing.T) {
	withCode := func(code int, reason string) []byte {
		return append([]byte{byte(code >> 8), byte(code)}, reason...)
	}
	type tcase struct {
		name     string
		p        []byte
		wantCode int // the close code, or the ProtocolError's code when errCode != 0
		wantText string
		errCode  int
	}
	cases := []tcase{
		{name: "empty", p: nil, wantCode: CloseNoStatusReceived},
		{name: "empty non-nil", p: []byte{}, wantCode: CloseNoStatusReceived},
		{name: "one byte", p: []byte{0x03}, errCode: CloseProtocolError},
		{name: "one byte zero", p: []byte{0}, errCode: CloseProtocolError},
		{name: "invalid UTF-8 reason", p: withCode(1000, "\xff"), errCode: CloseInvalidFramePayloadData},
		{name: "truncated UTF-8 reason", p: withCode(1000, "ok \xce"), errCode: CloseInvalidFramePayloadData},
		{name: "surrogate reason", p: withCode(1001, "\xed\xa0\x80"), errCode: CloseInvalidFramePayloadData},
		{name: "invalid code wins over invalid UTF-8", p: withCode(999, "\xff"), errCode: CloseProtocolError},
		{name: "123-byte reason", p: withCode(1000, strings.Repeat("r", 123)), wantCode: 1000, wantText: strings.Repeat("r", 123)},
		{name: "UTF-8 reason", p: withCode(4000, "κόσμε"), wantCode: 4000, wantText: "κόσμε"},
	}
	for _, code := range []int{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, tcase{name: fmt.Sprintf("code %d", code), p: withCode(code, ""), errCode: CloseProtocolError})
		cases = append(cases, tcase{name: fmt.Sprintf("code %d with reason", code), p: withCode(code, "why"), errCode: CloseProtocolError})
	}
	var okCodes []int
	for c := 1000; c <= 1003; c++ {
		okCodes = append(okCodes, c)
	}
	for c := 1007; c <= 1014; c++ {
		okCodes = append(okCodes, c)
	}
	okCodes = append(okCodes, 3000, 3999, 4000, 4999)
	for _, code := range okCodes {
		cases = append(cases, tcase{name: fmt.Sprintf("code %d", code), p: withCode(code, ""), wantCode: code})
		cases = append(cases, tcase{name: fmt.Sprintf("code %d with reason", code), p: withCode(code, "bye"), wantCode: code, wantText: "bye"})
	}
	for _, tc := range cases {
		code, text, perr := parseClosePayload(tc.p)
		if tc.errCode != 0 {
			if assert.NotNil(t, perr, tc.name) {
				assert.Equal(t, tc.errCode, perr.Code, tc.name)
				assert.True(t, strings.HasPrefix(perr.Error(), "websocket: "), tc.name)
			}
			continue
		}
		assert.Nil(t, perr, tc.name)
		assert.Equal(t, tc.wantCode, code, tc.name)
		assert.Equal(t, tc.wantText, text, tc.name)
	}
}

func TestUnitIsValidReceivedCloseCode(t *testing.T) {
	for code := -1; code <= 70000; code++ {
		want := (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
		if got := isValidReceivedCloseCode(code); got != want {
			t.Fatalf("isValidReceivedCloseCode(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestUnitFormatCloseMessage(t *testing.T) {
	m := FormatCloseMessage(CloseNoStatusReceived, "ignored")
	require.NotNil(t, m)
	assert.Empty(t, m)

	assert.Equal(t, []byte{0x03, 0xe8}, FormatCloseMessage(CloseNormalClosure, ""))
	assert.Equal(t, []byte{0x03, 0xe9, 'b', 'y', 'e'}, FormatCloseMessage(CloseGoingAway, "bye"))
	assert.Equal(t, []byte{0x13, 0x87, 'x'}, FormatCloseMessage(4999, "x"))

	// What FormatCloseMessage produces, parseClosePayload reads back.
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999} {
		reason := strings.Repeat("é", 61) // 122 bytes
		c, text, perr := parseClosePayload(FormatCloseMessage(code, reason))
		require.Nil(t, perr)
		assert.Equal(t, code, c)
		assert.Equal(t, reason, text)
	}
	m = FormatCloseMessage(CloseNormalClosure, "abc")
	assert.True(t, bytes.Equal(m, []byte{0x03, 0xe8, 'a', 'b', 'c'}))
}

func TestUnitOpcodeClassification(t *testing.T) {
	for op := byte(0); op < 16; op++ {
		assert.Equal(t, op >= 8, isControl(op), "isControl(%d)", op)
		known := op <= 2 || (op >= 8 && op <= 10)
		assert.Equal(t, known, isKnownOpcode(op), "isKnownOpcode(%d)", op)
	}
	assert.Equal(t, TextMessage, opText)
	assert.Equal(t, BinaryMessage, opBinary)
	assert.Equal(t, CloseMessage, opClose)
	assert.Equal(t, PingMessage, opPing)
	assert.Equal(t, PongMessage, opPong)
}
