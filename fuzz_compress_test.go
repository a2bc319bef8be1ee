package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"testing"
	"unicode/utf8"

	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// FuzzInflate reads compressed messages through a Conn: arbitrary bytes as
// the payloads of up to four messages, compressed or not, fragmented or
// not, text or binary, with or without context takeover, in any window,
// read whole or in small pieces, some abandoned half read. The Conn must
// never panic, must fail only with the documented errors, and must return
// what compress/flate makes of every payload it decodes.

// inflateWant is what reading one message may give.
type inflateWant struct {
	out []byte // the message (or, when it fails, what may come of it first)
	// success: the message may arrive, as out. failLimit, failData: it
	// may fail with ErrReadLimit, or with a *ProtocolError with code 1007.
	success, failLimit, failData bool
}

// expectInflate works out what reading a message of type typ whose
// payloads are frames may give, after history (with takeover) in a window
// of wsize bytes.
func expectInflate(t *testing.T, frames [][]byte, compressed, text bool, history []byte, takeover bool, wsize int, limit int64) inflateWant {
	payload := bytes.Join(frames, nil)
	var e inflateWant
	if !compressed {
		e.out = payload
		e.success = true
		// The limit is checked against each frame's declared length
		// before its payload is read, UTF-8 as the payload arrives.
		var n int64
		for _, f := range frames {
			n += int64(len(f))
			if limit > 0 && n > limit {
				e.failLimit, e.success = true, false
				break
			}
			if text && !isValidUTF8PrefixLinear(payload[:n]) {
				e.failData, e.success = true, false
				break
			}
		}
		if e.success && text && !utf8.Valid(payload) {
			e.failData, e.success = true, false
		}
		return e
	}
	x, err := flatetest.Expect(payload, history, takeover, wsize)
	if err != nil {
		t.Fatal(err)
	}
	ok := !x.Corrupt // the reference inflates it
	e.out, e.success, e.failData = x.Out, x.OK, x.Corrupt
	// The output is checked as it comes: its length against the limit,
	// and its text. Bytes decoded before a failure may count.
	if limit > 0 && int64(len(e.out)) > limit {
		e.failLimit = true
		if ok {
			e.success = false
		}
	}
	if !e.success && limit > 0 {
		// The decoder may go past compress/flate's point of failure by
		// up to a window before it is sure.
		e.failLimit = e.failLimit || int64(len(e.out)+wsize) > limit
	}
	if text && !utf8.Valid(e.out) {
		e.failData = true
		if ok {
			e.success = false
		}
	}
	return e
}

func FuzzInflate(f *testing.F) {
	// Seeds: compress/flate's output for up to four messages, joined, the
	// cuts at the messages' boundaries.
	seed := func(takeover bool, flags uint32, limit uint16, msgs ...string) {
		d := newPeerDeflater(takeover, 15, flate.BestSpeed)
		var data []byte
		var cuts []uint16
		for _, m := range msgs {
			data = append(data, d.compress([]byte(m))...)
			cuts = append(cuts, uint16(len(data)))
		}
		for len(cuts) < 3 {
			cuts = append(cuts, uint16(len(data)))
		}
		if takeover {
			flags |= 1
		}
		f.Add(data, cuts[0], cuts[1], cuts[2], flags, limit)
	}
	hello := "hello hello hello, compressed world"
	json := `{"id":1,"type":"message","text":"the quick brown fox jumps over the lazy dog"}`
	seed(true, 0x2|7<<4, 0, hello, hello, json, json)
	seed(false, 0x2|7<<4|0x4, 0, hello, hello, json)
	seed(true, 7<<4|0x80|2<<8, 0, json, hello, json)
	seed(true, 1<<4|0x8|3<<8|1<<14, 20, json, json, hello)
	seed(true, 0x2|7<<4|0x4|5<<11, 0, "", hello, "")
	seed(false, 0x2|0<<4|6<<8, 40, json+json+json, hello)
	f.Add(append(deflateFinal([]byte(hello)), 0), uint16(0), uint16(0), uint16(0), uint32(0x2|7<<4), uint16(0))
	f.Add([]byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, uint16(8), uint16(8), uint16(8), uint32(7<<4), uint16(0))
	f.Add([]byte{0xff, 0xff, 0xff}, uint16(1), uint16(2), uint16(3), uint32(0x2|7<<4), uint16(0))
	// A stored block whose last four bytes are the restored tail: the
	// input ends at a block boundary without a separate sync flush, which
	// zlib (and so the reference) accepts.
	f.Add([]byte("00#\x00\xdc\xff0000000000000000000000000000000"), uint16(1), uint16(42), uint16(31), uint32(10312), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2, cut3 uint16, flags uint32, limit uint16) {
		fuzzInflate(t, data, [3]uint16{cut1, cut2, cut3}, flags, limit)
	})
}

// fuzzInflate runs one FuzzInflate input. flags: bit 0 context
// takeover, bit 1 text, bit 2 fragmented (in three frames, a ping among
// them), bit 3 the Conn is a server (masked frames), bits 4-6 the window
// (8 + value bits), bit 7 the second message uncompressed, bits 8-10 the
// read size (0: ReadMessage, else 1<<(value-1) bytes a read), bits 11-13
// the network read size, bits 16-23 which messages are abandoned after
// one read.
func fuzzInflate(t *testing.T, data []byte, cuts [3]uint16, flags uint32, limit uint16) {
	takeover := flags&1 != 0
	text := flags&2 != 0
	fragmented := flags&4 != 0
	isServer := flags&8 != 0
	bits := 8 + int(flags>>4&7)
	wsize := max(1<<bits, 512) // the decoder keeps at least 512 bytes
	readChunk := 0
	if k := flags >> 8 & 7; k > 0 {
		readChunk = 1 << (k - 1)
	}
	netChunk := int(flags >> 11 & 7)
	skip := uint8(flags >> 16)

	// The payloads.
	var payloads [][]byte
	prev := 0
	for _, c := range cuts {
		c := min(int(c), len(data))
		if c < prev {
			c = prev
		}
		payloads = append(payloads, data[prev:c])
		prev = c
	}
	payloads = append(payloads, data[prev:])

	typ := byte(opBinary)
	if text {
		typ = opText
	}
	var stream []byte
	frames := make([][][]byte, len(payloads))
	compressed := make([]bool, len(payloads))
	for i, p := range payloads {
		compressed[i] = !(i == 1 && flags&0x80 != 0)
		var rsv byte
		if compressed[i] {
			rsv = wireRSV1
		}
		if !fragmented {
			frames[i] = [][]byte{p}
			stream = append(stream, encodeFrame(true, rsv, typ, p, isServer)...)
			continue
		}
		a, b := len(p)/3, 2*len(p)/3
		frames[i] = [][]byte{p[:a], p[a:b], p[b:]}
		stream = append(stream, encodeFrame(false, rsv, typ, p[:a], isServer)...)
		stream = append(stream, encodeFrame(true, 0, opPing, []byte("ping"), isServer)...)
		stream = append(stream, encodeFrame(false, 0, opContinuation, p[a:b], isServer)...)
		stream = append(stream, encodeFrame(true, 0, opContinuation, p[b:], isServer)...)
	}

	nc := &chunkedConn{data: stream, chunk: netChunk}
	c := newConn(nc, isServer, 0, 0, nil, nil)
	c.enableCompression(pmdParams{
		serverNoContextTakeover: !takeover, clientNoContextTakeover: !takeover,
		serverMaxWindowBits: bits, clientMaxWindowBits: bits,
	}, &CompressionOptions{})
	c.SetReadLimit(int64(limit))
	got, err := readAllMessages(t, c, readChunk, skip, len(payloads))
	if _, _, err2 := c.ReadMessage(); err2 != err {
		t.Fatalf("error %v, then %v", err, err2)
	}

	// Walk the messages with the reference.
	var history []byte
	exps := make([]inflateWant, 0, len(payloads))
	expect := func(i int) inflateWant {
		for len(exps) <= i {
			j := len(exps)
			e := expectInflate(t, frames[j], compressed[j], text, history, takeover, wsize, int64(limit))
			exps = append(exps, e)
			if compressed[j] && takeover {
				history = append(history, e.out...)
			}
		}
		return exps[i]
	}
	for i, m := range got {
		e := expect(i)
		if m.typ != int(typ) {
			t.Fatalf("message %d: type %d", i, m.typ)
		}
		if m.skipped {
			if !bytes.HasPrefix(e.out, m.data) {
				t.Fatalf("message %d (abandoned): read % x, want a prefix of % x", i, m.data, e.out)
			}
			if !e.success && i != len(got)-1 {
				t.Fatalf("message %d (abandoned) must fail (%+v), but the next one came", i, e)
			}
			continue
		}
		if !e.success {
			t.Fatalf("message %d: read % x, but it must fail (%+v)", i, m.data, e)
		}
		if !bytes.Equal(m.data, e.out) {
			t.Fatalf("message %d: read % x, want % x", i, m.data, e.out)
		}
	}

	// The error: the peer going away after the last message, or the
	// failure of the message after the last read (or of the last, when
	// it was abandoned and its rest failed to inflate).
	n := len(got)
	allowed := func(e inflateWant) bool {
		var pe *ProtocolError
		switch {
		case errors.Is(err, ErrReadLimit):
			return e.failLimit
		case errors.As(err, &pe):
			return e.failData && pe.Code == CloseInvalidFramePayloadData
		}
		return false
	}
	ok := false
	if n > 0 && got[n-1].skipped {
		ok = allowed(expect(n - 1))
	}
	if !ok && n < len(payloads) {
		ok = allowed(expect(n))
	}
	if !ok && n == len(payloads) {
		var ce *CloseError
		ok = errors.As(err, &ce) && ce.Code == CloseAbnormalClosure
	}
	if !ok {
		var e inflateWant
		if n < len(payloads) {
			e = expect(n)
		}
		t.Fatalf("after %d messages: error %v (%T); next message %+v", n, err, err, e)
	}
}

func TestCompressFuzzInflateSeeds(t *testing.T) {
	// The oracle's own checks are flatetest's TestFlateMessage and
	// TestExpect.
	const msg = "the quick brown fox jumps over the lazy dog"
	d := newPeerDeflater(true, 15, flate.BestCompression)
	a := d.compress([]byte(msg))
	b := d.compress([]byte(msg))

	// A few inputs in every configuration.
	for i, in := range [][]byte{
		append(bytes.Clone(a), b...),
		bytes.Repeat(a, 3),
		append(deflateFinal([]byte("hello")), a...),
		{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'},
	} {
		for flags := uint32(0); flags < 1<<12; flags += 0x35 {
			t.Run(fmt.Sprintf("%d/%#x", i, flags), func(t *testing.T) {
				fuzzInflate(t, in, [3]uint16{uint16(len(a)), uint16(len(a) + len(b)), uint16(len(in))}, flags|uint32(i)<<16, uint16(flags%3*10))
			})
		}
	}
}
