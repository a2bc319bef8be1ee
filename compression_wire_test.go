package websocket

// The independent side of the permessage-deflate tests: a frame codec, a
// reference receiver and a peer's compressor written from RFC 6455 and
// RFC 7692 with compress/flate and flatetest, never with the library's
// code, so that the library is checked against an independent reading of
// the RFCs.

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

const permessageDeflate = "permessage-deflate"

// ---- an independent frame codec --------------------------------------------

// wireFrame is one frame as it crossed the wire, payload unmasked.
type wireFrame struct {
	fin     bool
	rsv     byte // RSV1..RSV3 where they sit in the first byte
	op      byte
	masked  bool
	payload []byte
}

const (
	wireRSV1 = 0x40
	wireRSV2 = 0x20
)

func readWireFrame(r io.Reader) (wireFrame, error) {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:2]); err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, h[:2]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(h[:2]))
	case 127:
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(h[:8])
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, err
		}
	}
	if n > 64<<20 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= key[i&3]
		}
	}
	return f, nil
}

// encodeFrame encodes a frame; mask is set for a client's frames.
func encodeFrame(fin bool, rsv, op byte, payload []byte, mask bool) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var m byte
	if mask {
		m = 0x80
	}
	b := make([]byte, 0, 14+len(payload))
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, m|byte(n))
	case n <= 0xffff:
		b = append(b, b0, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := [4]byte{0x9b, 0x17, 0x3c, 0xe2}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// closedByFrame is the close frame that ended a stream.
type closedByFrame struct{ code int }

func (e *closedByFrame) Error() string { return fmt.Sprintf("close frame %d", e.code) }

// wireMessage is one data message as it crossed the wire.
type wireMessage struct {
	op         byte
	compressed bool // RSV1 on the first frame
	frames     []wireFrame
	payload    []byte // the frames' payloads, joined
}

// readWireMessage reads the next data message, skipping pings and pongs. A
// close frame gives a *closedByFrame error.
func readWireMessage(r io.Reader) (wireMessage, error) {
	var m wireMessage
	for {
		f, err := readWireFrame(r)
		if err != nil {
			return m, err
		}
		if f.op >= 8 {
			if f.op == opClose {
				code := CloseNoStatusReceived
				if len(f.payload) >= 2 {
					code = int(binary.BigEndian.Uint16(f.payload))
				}
				return m, &closedByFrame{code}
			}
			continue
		}
		if len(m.frames) == 0 {
			m.op = f.op
			m.compressed = f.rsv&wireRSV1 != 0
		}
		m.frames = append(m.frames, f)
		m.payload = append(m.payload, f.payload...)
		if f.fin {
			return m, nil
		}
	}
}

// readCloseCode reads frames until a close frame and returns its code.
func readCloseCode(r io.Reader) (int, error) {
	for {
		_, err := readWireMessage(r)
		var ce *closedByFrame
		if errors.As(err, &ce) {
			return ce.code, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// checkFraming checks the RFC 6455 and RFC 7692 rules our writer must
// follow for m: continuation frames after the first, RSV1 on the first frame
// only, masking on the client's frames only, and a compressed message's
// non-final fragments each ending with a complete sync flush.
func checkFraming(t *testing.T, m wireMessage, masked bool) {
	t.Helper()
	require.NotEmpty(t, m.frames)
	require.Contains(t, []byte{opText, opBinary}, m.op)
	for i, f := range m.frames {
		assert.Equal(t, masked, f.masked, "frame %d masking", i)
		if i == 0 {
			assert.Zero(t, f.rsv&^wireRSV1, "RSV2/RSV3 on the first frame")
			continue
		}
		assert.Equal(t, byte(opContinuation), f.op, "frame %d opcode", i)
		assert.Zero(t, f.rsv, "RSV bits on continuation frame %d", i)
	}
	if m.compressed {
		for i, f := range m.frames[:len(m.frames)-1] {
			assert.True(t, bytes.HasSuffix(f.payload, []byte{0, 0, 0xff, 0xff}), "non-final compressed fragment %d does not end with a sync flush", i)
		}
	}
}

// ---- a reference receiver ----------------------------------------------------

// referenceInflater inflates the compressed messages of one direction as RFC 7692 asks
// of a receiver, twice: with compress/flate (one stream across messages
// with context takeover, else a fresh one each), and with flatetest's
// Inflater,
// which also fails on any back-reference farther than the window, within a
// message or across messages, that compress/flate would follow, and on
// anything but the sync flush our writer ends every message with.
type referenceInflater struct {
	takeover bool
	ref      flatetest.Inflater
	src      bytes.Buffer // with takeover, the input of the one stream
	fr       io.ReadCloser
}

func newReferenceInflater(takeover bool, windowBits int) *referenceInflater {
	return &referenceInflater{takeover: takeover, ref: flatetest.Inflater{Window: 1 << windowBits, Takeover: takeover}}
}

// emptyFinalBlock is an empty final stored block: after a message's data and
// the restored sync flush it lets compress/flate end with io.EOF.
var emptyFinalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// syncFlushTail is the end of the sync flush that RFC 7692 removes from each
// message.
var syncFlushTail = []byte{0x00, 0x00, 0xff, 0xff}

func (z *referenceInflater) inflate(payload []byte) ([]byte, flatetest.Stats, error) {
	want, err := z.ref.Inflate(payload)
	st := z.ref.Stats
	if err != nil {
		return nil, st, fmt.Errorf("reference: %w", err)
	}

	in := make([]byte, 0, len(payload)+len(syncFlushTail)+len(emptyFinalBlock))
	in = append(append(in, payload...), syncFlushTail...)
	var got []byte
	if z.takeover {
		z.src.Write(in)
		if z.fr == nil {
			z.fr = stdflate.NewReader(&z.src)
		}
		// The stream goes on: read exactly this message's output.
		got = make([]byte, len(want))
		_, err = io.ReadFull(z.fr, got)
	} else {
		in = append(in, emptyFinalBlock...)
		if z.fr == nil {
			z.fr = stdflate.NewReader(bytes.NewReader(in))
		} else if err = z.fr.(stdflate.Resetter).Reset(bytes.NewReader(in), nil); err != nil {
			return nil, st, err
		}
		got, err = io.ReadAll(z.fr)
	}
	if err != nil {
		return nil, st, fmt.Errorf("compress/flate: %w", err)
	}
	if !bytes.Equal(got, want) {
		return nil, st, errors.New("compress/flate and the reference disagree")
	}
	return bytes.Clone(want), st, nil
}

// peerDeflater compresses messages as a peer does: a sync flush ends each
// message and its 00 00 ff ff is removed. With a 32 KiB window the
// compressor is compress/flate, one stdflate.Writer kept across messages with
// takeover. compress/flate cannot be held to a smaller window (and a
// dictionary of the last 2^bits bytes does not do it: a reference from
// the middle of a message may reach farther back into it than the window),
// so below 15 bits the compressor is the library's encoder, whose every
// message is audited against the window before it is sent.
type peerDeflater struct {
	takeover bool
	bits     int
	level    int
	buf      bytes.Buffer
	fw       *stdflate.Writer
	own      *flate.Encoder
	ref      *flatetest.Inflater // below 15 bits: the receiver's view
}

func newPeerDeflater(takeover bool, windowBits, level int) *peerDeflater {
	return &peerDeflater{takeover: takeover, bits: windowBits, level: level}
}

func (d *peerDeflater) compress(msg []byte) []byte {
	if d.bits < 15 {
		return d.compressOwn(msg)
	}
	d.buf.Reset()
	switch {
	case d.fw == nil:
		d.fw, _ = stdflate.NewWriter(&d.buf, d.level)
	case !d.takeover:
		d.fw.Reset(&d.buf)
	}
	d.fw.Write(msg)
	d.fw.Flush()
	out := d.buf.Bytes()
	if !bytes.HasSuffix(out, syncFlushTail) {
		panic("compress/flate: no sync flush")
	}
	return bytes.Clone(out[:len(out)-len(syncFlushTail)])
}

func (d *peerDeflater) compressOwn(msg []byte) []byte {
	if d.own == nil {
		d.own = flate.NewEncoder(d.bits, d.level, d.takeover)
		d.ref = &flatetest.Inflater{Window: 1 << d.bits, Takeover: d.takeover}
	}
	z := d.own.Compress(nil, msg)
	out, err := d.ref.Inflate(z)
	if err != nil {
		panic(fmt.Sprintf("the peer's own compressor oversteps the window: %v", err))
	}
	if !bytes.Equal(out, msg) {
		panic("the peer's own compressor is wrong")
	}
	return z
}
