package flatetest

import (
	"bytes"
	"compress/flate"
	"testing"
)

// flush compresses msgs with one flate.Writer, each ended by a sync flush
// whose tail is removed, as a peer with context takeover sends them.
func flush(msgs ...string) [][]byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b.Reset()
		fw.Write([]byte(m))
		fw.Flush()
		out[i] = bytes.Clone(bytes.TrimSuffix(b.Bytes(), tail))
	}
	return out
}

// final compresses msg as a stream that ends with a final block.
func final(msg string) []byte {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	fw.Write([]byte(msg))
	fw.Close()
	return b.Bytes()
}

// TestFlateMessage checks the compress/flate oracle on known input, so
// that agreement with it means something.
func TestFlateMessage(t *testing.T) {
	const msg = "the quick brown fox jumps over the lazy dog"
	ab := flush(msg, msg)
	a, b := ab[0], ab[1]
	out, ok := FlateMessage(a, nil)
	if !ok || string(out) != msg {
		t.Fatalf("valid message: %q %v", out, ok)
	}
	if _, ok := FlateMessage(b, nil); ok {
		t.Fatal("a reference to missing history accepted")
	}
	if out, ok := FlateMessage(b, out); !ok || string(out) != msg {
		t.Fatalf("with its history: %q %v", out, ok)
	}
	if _, ok := FlateMessage(a[:len(a)-2], nil); ok {
		t.Fatal("a truncated message accepted")
	}
	f := final("x")
	if _, ok := FlateMessage(f, nil); !ok {
		t.Fatal("a final block refused")
	}
	if _, ok := FlateMessage(append(f, 0), nil); ok {
		t.Fatal("data after a final block accepted")
	}
}

// TestExpect checks Expect where the references agree and where only
// compress/flate accepts.
func TestExpect(t *testing.T) {
	const msg = "the quick brown fox jumps over the lazy dog"
	ab := flush(msg, msg)
	e, err := Expect(ab[0], nil, true, 1<<15)
	if err != nil || !e.OK || e.Corrupt || string(e.Out) != msg {
		t.Fatalf("valid message: %+v %v", e, err)
	}
	e, err = Expect(ab[1], []byte(msg), true, 1<<15)
	if err != nil || !e.OK || string(e.Out) != msg {
		t.Fatalf("with its history: %+v %v", e, err)
	}
	e, err = Expect(ab[1], []byte(msg), false, 1<<15)
	if err != nil || e.OK || !e.Corrupt {
		t.Fatalf("without takeover the history does not count: %+v %v", e, err)
	}
	// A reference 100 bytes back, beyond a 64-byte window: the reference
	// refuses what compress/flate follows.
	r := Random(1, 100)
	twice := string(r) + string(r)
	e, err = Expect(flush(twice)[0], nil, true, 64)
	if err != nil || !e.OK || !e.Corrupt || string(e.Out) != twice {
		t.Fatalf("a reference beyond the window: %+v %v", e, err)
	}
}
