package flatetest

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
)

// tail is the end of the sync flush that RFC 7692 removes from each
// message.
var tail = []byte{0x00, 0x00, 0xff, 0xff}

// finalBlock is an empty final stored block: after a message's data and
// the restored sync flush it lets compress/flate end with io.EOF.
var finalBlock = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

// countReader counts the bytes compress/flate takes: it reads through
// io.ByteReader, so no more than it needs.
type countReader struct {
	b []byte
	n int
}

func (r *countReader) Read(p []byte) (int, error) {
	if r.n == len(r.b) {
		return 0, io.EOF
	}
	k := copy(p, r.b[r.n:])
	r.n += k
	return k, nil
}

func (r *countReader) ReadByte() (byte, error) {
	if r.n == len(r.b) {
		return 0, io.EOF
	}
	r.n++
	return r.b[r.n-1], nil
}

// flateRun inflates in after the history dict with compress/flate, and
// reports how many bytes of in it took.
func flateRun(in, dict []byte) ([]byte, int, error) {
	r := &countReader{b: in}
	out, err := io.ReadAll(flate.NewReaderDict(r, dict))
	return out, r.n, err
}

// FlateMessage inflates a message's payload with compress/flate as RFC
// 7692 defines it: the payload and the restored sync flush must end at a
// block boundary, or
// contain a final block (BFINAL) after which nothing of the payload is
// left. Being at a block boundary is told apart from a truncated block by
// appending two different empty final blocks: both must decode cleanly
// and alike. ok false means the payload is invalid; out is then what
// compress/flate decoded before it stopped.
func FlateMessage(payload, dict []byte) (out []byte, ok bool) {
	in := append(bytes.Clone(payload), tail...)
	out, n, err := flateRun(append(bytes.Clone(in), finalBlock...), dict)
	switch {
	case err != nil:
		return out, false
	case n <= len(in):
		// A final block of the payload ended the stream.
		return out, n >= len(payload)
	case n < len(in)+len(finalBlock):
		return out, false
	}
	out2, n2, err := flateRun(append(bytes.Clone(in), 0x03, 0x00), dict)
	return out, err == nil && n2 == len(in)+2 && bytes.Equal(out, out2)
}

// Expectation is what a receiver may make of one compressed message.
type Expectation struct {
	// Out is the message, or when it fails what a receiver may have
	// passed on of it first.
	Out []byte
	// OK: the message may inflate, to Out. Corrupt: it may fail as
	// corrupt. One of them holds, or both (where the references differ
	// in what they accept, as below).
	OK, Corrupt bool
}

// Expect works out what a permessage-deflate receiver with a window of
// wsize bytes may make of payload after history (the output of the
// messages before it, which counts only with context takeover), by the
// reference Inflater as a peer's message is read (EndPeer) and by
// compress/flate. It fails when the two accept the payload and disagree
// on its output.
func Expect(payload, history []byte, takeover bool, wsize int) (Expectation, error) {
	var dict []byte
	if takeover {
		dict = history[max(0, len(history)-wsize):]
	}
	ref := &Inflater{Window: wsize, Takeover: true, End: EndPeer, Hist: bytes.Clone(dict)}
	out, err := ref.Inflate(payload)
	ok := err == nil
	e := Expectation{Out: out, OK: ok, Corrupt: !ok}
	if flateOut, flateOK := FlateMessage(payload, dict); flateOK {
		if ok && !bytes.Equal(flateOut, out) {
			return e, fmt.Errorf("compress/flate (% x) and the reference (% x) disagree on % x", flateOut, out, payload)
		}
		if !ok {
			// compress/flate keeps a 32 KiB window whatever the
			// dictionary, so it follows references farther back than
			// the window; it also takes a code-length code of one
			// one-bit code, which zlib refuses. Either outcome is
			// allowed.
			e.Out, e.OK = flateOut, true
		}
	}
	return e, nil
}
