package flate

import (
	"bytes"
	"compress/flate"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// FuzzEncoder round-trips random messages at random window sizes and
// levels through compress/flate and the reference inflater.
func FuzzEncoder(f *testing.F) {
	f.Add([]byte("hello hello hello"), uint8(7), uint8(7), true, uint8(2))
	f.Add(bytes.Repeat([]byte("ab"), 600), uint8(0), uint8(3), true, uint8(3))
	f.Add(flatetest.Random(1, 700), uint8(1), uint8(1), false, uint8(1))
	f.Add(bytes.Join(flatetest.ChatJSON(1, 4), nil), uint8(7), uint8(1), true, uint8(4))
	f.Add([]byte{}, uint8(3), uint8(0), true, uint8(0))
	f.Add(append(bytes.Repeat([]byte("ABCD"), 100), make([]byte, 400)...), uint8(7), uint8(2), true, uint8(0x81))
	f.Fuzz(func(t *testing.T, data []byte, wb, lv uint8, takeover bool, parts uint8) {
		wbits := minWindowBits + int(wb%8)
		level := int(lv%12) - 2
		k := 1 + int(parts%5)
		msgs := make([][]byte, k)
		for i := range msgs {
			msgs[i] = data[i*len(data)/k : (i+1)*len(data)/k]
		}
		var comps [][]byte
		if parts&0x80 == 0 {
			comps = compressAll(t, wbits, level, takeover, msgs)
		} else {
			// The level changes from message to message.
			d := NewEncoder(wbits, level, takeover)
			for i, m := range msgs {
				d.SetLevel(int((int(lv)+5*i)%12) - 2)
				comps = append(comps, d.Compress(nil, m))
			}
		}
		checkFlate(t, wbits, takeover, msgs, comps)
		checkStrict(t, wbits, takeover, msgs, comps)
		for i, c := range comps {
			require.LessOrEqual(t, len(c), len(msgs[i])+5*(len(msgs[i])/65535+1)+1, "message %d grew", i)
		}
	})
}

// FuzzDecoder decodes arbitrary bytes as the payloads of up to four
// messages, with or without context takeover, in any window, cut into
// runs of any size, read whole or in small pieces, some abandoned after
// one read (and drained, as a connection skips a message), and one
// perhaps ended by an error of the input. The Decoder must never panic,
// must fail only with ErrCorrupt or the input's error, and must return
// what the reference and compress/flate make of every payload it decodes.
func FuzzDecoder(f *testing.F) {
	// Seeds: the Encoder's and compress/flate's output for a few
	// messages, joined, the cuts at the messages' boundaries.
	seed := func(takeover bool, flags uint32, msgs ...string) {
		e := NewEncoder(15, 1, takeover)
		var data []byte
		var cuts []uint16
		for _, m := range msgs {
			data = e.Compress(data, []byte(m))
			cuts = append(cuts, uint16(len(data)))
		}
		for len(cuts) < 3 {
			cuts = append(cuts, uint16(len(data)))
		}
		if takeover {
			flags |= 1
		}
		f.Add(data, cuts[0], cuts[1], cuts[2], flags)
	}
	hello := "hello hello hello, compressed world"
	json := `{"id":1,"type":"message","text":"the quick brown fox jumps over the lazy dog"}`
	seed(true, 7<<4, hello, hello, json, json)
	seed(false, 7<<4|2<<8|3<<11, hello, hello, json)
	seed(true, 7<<4|1<<16|4, json, hello, json)
	seed(true, 1<<4|3<<8|1<<11|1<<2, json, json, hello)
	seed(true, 7<<4|5<<11, "", hello, "")
	final := flateFinal(f, flate.BestSpeed, []byte(hello), nil)
	f.Add(append(final, 0), uint16(0), uint16(0), uint16(0), uint32(7<<4))
	f.Add(final, uint16(len(final)), uint16(len(final)), uint16(len(final)), uint32(7<<4|1<<11))
	f.Add([]byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, uint16(8), uint16(8), uint16(8), uint32(7<<4))
	f.Add([]byte{0xff, 0xff, 0xff}, uint16(1), uint16(2), uint16(3), uint32(7<<4))
	f.Add([]byte("00#\x00\xdc\xff0000000000000000000000000000000"), uint16(1), uint16(42), uint16(31), uint32(10312))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2, cut3 uint16, flags uint32) {
		fuzzDecoder(t, data, [3]uint16{cut1, cut2, cut3}, flags)
	})
}

// errFuzzInput is the input's own error in FuzzDecoder.
var errFuzzInput = errors.New("the input failed")

// fuzzDecoder runs one FuzzDecoder input. flags: bit 0 context takeover,
// bit 2 the input of the last message fails (with errFuzzInput) after
// its first run, bits 4-6 the window (8 + value bits), bits 8-10 the read
// size (0: DecodeAhead, then whole; else 1<<(value-1) bytes a read), bits
// 11-13 the run size (0: the payload in one run), bits 16-19 which
// messages are abandoned after one read.
func fuzzDecoder(t *testing.T, data []byte, cuts [3]uint16, flags uint32) {
	takeover := flags&1 != 0
	failLast := flags&4 != 0
	bits := 8 + int(flags>>4&7)
	wsize := max(1<<bits, minDecodeWindow)
	readSize := 0
	if k := flags >> 8 & 7; k > 0 {
		readSize = 1 << (k - 1)
	}
	runSize := int(flags >> 11 & 7)
	skip := flags >> 16 & 15

	var payloads [][]byte
	prev := 0
	for _, c := range cuts {
		c := min(max(int(c), prev), len(data))
		payloads = append(payloads, data[prev:c])
		prev = c
	}
	payloads = append(payloads, data[prev:])

	d, in := newTestDecoder(bits, takeover)
	var history []byte
	for i, p := range payloads {
		e, err := flatetest.Expect(p, history, takeover, wsize)
		if err != nil {
			t.Fatal(err)
		}
		in.set(p, runSize)
		if failLast && i == len(payloads)-1 {
			in.runs = in.runs[:min(1, len(in.runs))]
			in.err = errFuzzInput
		}
		got, err := readDecoded(d, readSize, skip&(1<<i) != 0)
		switch {
		case err == nil && !e.OK:
			t.Fatalf("message %d: read % x, but it must fail (%+v)", i, got, e)
		case err == nil && !bytes.Equal(got, e.Out):
			t.Fatalf("message %d: read % x, want % x", i, got, e.Out)
		case err == ErrCorrupt && !e.Corrupt:
			t.Fatalf("message %d: corrupt, but it decodes to % x", i, e.Out)
		case err == errFuzzInput && in.err == nil:
			t.Fatalf("message %d: the input's error, which it never returned", i)
		case err != nil && err != ErrCorrupt && err != errFuzzInput:
			t.Fatalf("message %d: error %v", i, err)
		case err == nil && d.Active():
			t.Fatalf("message %d: still active after its end", i)
		}
		if err != nil {
			if d.Active() {
				t.Fatalf("message %d: still active after %v", i, err)
			}
			return
		}
		history = append(history, got...)
	}
}
