package websocket

import (
	"encoding/binary"
	"unicode/utf8"
)

// Frame opcodes (RFC 6455 section 5.2). The data and control opcodes equal
// the exported message type constants.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Bits of the first two header bytes.
const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	rsvBits = rsv1Bit | rsv2Bit | rsv3Bit
	maskBit = 0x80
)

const (
	// maxFrameHeaderSize is 2 fixed bytes, 8 bytes of extended length and
	// 4 bytes of masking key.
	maxFrameHeaderSize = 14
	// maxControlPayload is the largest payload a control frame may carry.
	maxControlPayload = 125
)

// isControl reports whether opcode is a control opcode (high bit set).
func isControl(opcode byte) bool { return opcode&0x8 != 0 }

// isKnownOpcode reports whether RFC 6455 defines opcode; 3-7 and B-F are
// reserved.
func isKnownOpcode(opcode byte) bool {
	return opcode <= opBinary || (opcode >= opClose && opcode <= opPong)
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	fin    bool
	rsv    byte // the RSV bits in place (a subset of rsvBits)
	opcode byte
	masked bool
	length int64
	key    [4]byte
}

// frameHeaderLen returns the full header length announced by the first two
// header bytes.
func frameHeaderLen(b0, b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&maskBit != 0 {
		n += 4
	}
	return n
}

// parseFrameHeader decodes the header at the start of b, which must hold at
// least frameHeaderLen(b[0], b[1]) bytes, and returns it with its length.
// Beyond the layout it checks the length's encoding (RFC 6455 section 5.2):
// a 64-bit length with the most significant bit set, and a length written
// in more bytes than it needs, are refused.
func parseFrameHeader(b []byte) (h frameHeader, n int, err *ProtocolError) {
	b0, b1 := b[0], b[1]
	h.fin = b0&finBit != 0
	h.rsv = b0 & rsvBits
	h.opcode = b0 & 0xf
	h.masked = b1&maskBit != 0
	n = 2
	switch l := b1 & 0x7f; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		if h.length <= 125 {
			return h, 0, errNonMinimalLength
		}
		n = 4
	case 127:
		v := binary.BigEndian.Uint64(b[2:])
		if v>>63 != 0 {
			return h, 0, &ProtocolError{Code: CloseProtocolError, Reason: "frame length has the most significant bit set"}
		}
		if v <= 0xffff {
			return h, 0, errNonMinimalLength
		}
		h.length = int64(v)
		n = 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		copy(h.key[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// errNonMinimalLength is the failure of a frame length written in more
// bytes than it needs; it is shared since a ProtocolError is never changed.
var errNonMinimalLength = &ProtocolError{Code: CloseProtocolError, Reason: "frame length not in its minimal encoding"}

// checkFrameHeader applies the rules of RFC 6455 section 5 that a header
// must meet on its own: known opcode, RSV bits only where allowedRSV
// permits them, masking by clients only, and short final control frames.
func checkFrameHeader(h *frameHeader, isServer bool, allowedRSV byte) *ProtocolError {
	switch {
	case !isKnownOpcode(h.opcode):
		return &ProtocolError{Code: CloseProtocolError, Reason: "reserved opcode " + hexByte(h.opcode)}
	case h.rsv&^allowedRSV != 0:
		return &ProtocolError{Code: CloseProtocolError, Reason: "reserved bits set without a negotiated extension"}
	case isServer && !h.masked:
		return &ProtocolError{Code: CloseProtocolError, Reason: "client frame is not masked"}
	case !isServer && h.masked:
		return &ProtocolError{Code: CloseProtocolError, Reason: "server frame is masked"}
	}
	if isControl(h.opcode) {
		switch {
		case h.length > maxControlPayload:
			return &ProtocolError{Code: CloseProtocolError, Reason: "control frame payload longer than 125 bytes"}
		case !h.fin:
			return &ProtocolError{Code: CloseProtocolError, Reason: "fragmented control frame"}
		case h.rsv != 0:
			return &ProtocolError{Code: CloseProtocolError, Reason: "reserved bits set on a control frame"}
		}
	}
	return nil
}

func hexByte(b byte) string {
	const digits = "0123456789ABCDEF"
	return "0x" + string([]byte{digits[b>>4], digits[b&0xf]})
}

// appendFrameHeader appends a header for a frame of length payload bytes to
// dst. If masked, key is written as the masking key.
func appendFrameHeader(dst []byte, fin bool, rsv, opcode byte, length int, masked bool, key [4]byte) []byte {
	b0 := opcode | rsv
	if fin {
		b0 |= finBit
	}
	var b1 byte
	if masked {
		b1 = maskBit
	}
	switch {
	case length <= 125:
		dst = append(dst, b0, b1|byte(length))
	case length <= 0xffff:
		dst = append(dst, b0, b1|126, byte(length>>8), byte(length))
	default:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(length))
	}
	if masked {
		dst = append(dst, key[:]...)
	}
	return dst
}

// headerSize returns how many bytes appendFrameHeader writes.
func headerSize(length int, masked bool) int {
	n := 2
	switch {
	case length > 0xffff:
		n += 8
	case length > 125:
		n += 2
	}
	if masked {
		n += 4
	}
	return n
}

// isValidReceivedCloseCode reports whether a peer may send code in a close
// frame (RFC 6455 section 7.4): the defined codes other than those that
// must never be on the wire, and the ranges for extensions, frameworks and
// applications.
func isValidReceivedCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// parseClosePayload decodes a received close frame's payload. An empty
// payload yields CloseNoStatusReceived.
func parseClosePayload(p []byte) (code int, text string, err *ProtocolError) {
	switch {
	case len(p) == 0:
		return CloseNoStatusReceived, "", nil
	case len(p) == 1:
		return 0, "", &ProtocolError{Code: CloseProtocolError, Reason: "close frame payload of one byte"}
	}
	code = int(binary.BigEndian.Uint16(p))
	if !isValidReceivedCloseCode(code) {
		return 0, "", &ProtocolError{Code: CloseProtocolError, Reason: "invalid close code in close frame"}
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &ProtocolError{Code: CloseInvalidFramePayloadData, Reason: "invalid UTF-8 in close frame reason"}
	}
	return code, string(p[2:]), nil
}

// FormatCloseMessage formats closeCode and text as a WebSocket close message.
// An empty message is returned for code CloseNoStatusReceived, which must
// not be sent on the wire.
func FormatCloseMessage(closeCode int, text string) []byte {
	if closeCode == CloseNoStatusReceived {
		// Non-nil, for callers that check for nil.
		return []byte{}
	}
	buf := make([]byte, 2, 2+len(text))
	binary.BigEndian.PutUint16(buf, uint16(closeCode))
	return append(buf, text...)
}
