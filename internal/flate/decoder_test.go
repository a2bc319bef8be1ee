package flate

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// testInput is a Decoder's input in tests: the runs of the current
// message, then io.EOF (or err, when set, as a connection's failure).
type testInput struct {
	runs  [][]byte
	store [][]byte // runs' backing array, reused from message to message
	err   error
}

func (in *testInput) next() ([]byte, error) {
	if len(in.runs) == 0 {
		if in.err != nil {
			return nil, in.err
		}
		return nil, io.EOF
	}
	r := in.runs[0]
	in.runs = in.runs[1:]
	return r, nil
}

// set makes payload the input of the next message, in runs of size bytes
// (all at once for 0).
func (in *testInput) set(payload []byte, size int) {
	in.store = in.store[:0]
	for size > 0 && len(payload) > size {
		in.store = append(in.store, payload[:size])
		payload = payload[size:]
	}
	if len(payload) > 0 {
		in.store = append(in.store, payload)
	}
	in.runs = in.store
}

func newTestDecoder(windowBits int, takeover bool) (*Decoder, *testInput) {
	in := &testInput{}
	return NewDecoder(windowBits, takeover, in.next), in
}

// readMessage decodes payload, arriving in runs of runSize bytes, as the
// next message, and reads it with readDecoded.
func readMessage(d *Decoder, in *testInput, payload []byte, runSize, readSize int) ([]byte, error) {
	in.set(payload, runSize)
	return readDecoded(d, readSize, false)
}

// readDecoded reads the current message to its end: with readSize 0
// through DecodeAhead and then one Read of what is left, else in Reads of
// readSize bytes. With abandon it reads once and then drains the rest into
// scratch, as a connection does with a message the application skips. It
// returns what was delivered, and the error that ended the message (nil
// at io.EOF, by which the decoder must have given back its pooled memory).
func readDecoded(d *Decoder, readSize int, abandon bool) ([]byte, error) {
	d.Start()
	var out []byte
	if readSize == 0 {
		n, err := d.DecodeAhead()
		if err != nil {
			return nil, err
		}
		if n > d.WindowSize() {
			return nil, fmt.Errorf("decoded %d bytes ahead, more than the window", n)
		}
		readSize = 64 << 10
	}
	buf := make([]byte, readSize)
	for reads := 0; ; reads++ {
		if abandon && reads == 1 {
			buf = make([]byte, 4096)
		}
		n, err := d.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			if d.Active() || d.tables != nil {
				return out, errors.New("the message ended, but the decoder holds its pooled memory")
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// flateFinal compresses msg as a whole stream, ended by a final block.
func flateFinal(t testing.TB, level int, msg, dict []byte) []byte {
	var zb bytes.Buffer
	fw, err := flate.NewWriterDict(&zb, level, dict)
	require.NoError(t, err)
	_, err = fw.Write(msg)
	require.NoError(t, err)
	require.NoError(t, fw.Close())
	return zb.Bytes()
}

func TestDecoderMessages(t *testing.T) {
	chat := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"type":"message","room":"general","user":"user%d","text":"hello number %d","ts":%d}`, i%7, i, 1700000000+i))
	}
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			d, in := newTestDecoder(15, takeover)
			fc := flatetest.NewStdCompressor(t, flate.BestCompression)
			for i := 0; i < 300; i++ {
				msg := chat(i)
				z := fc.Compress(t, msg, !takeover)
				// Whole, in halves, a byte at a time; delivered ahead,
				// or read in pieces.
				runSize := []int{0, (len(z) + 1) / 2, 1}[i%3]
				readSize := []int{0, 7}[i%2]
				got, err := readMessage(d, in, z, runSize, readSize)
				require.NoError(t, err, "message %d", i)
				require.Equal(t, string(msg), string(got), "message %d", i)
				require.Nil(t, d.tables, "the decoding tables go back to the pool between messages")
			}
		})
	}
}

// TestDecoderEmptyRuns feeds a message with empty runs between its bytes,
// which the Decoder skips though a connection never supplies them.
func TestDecoderEmptyRuns(t *testing.T) {
	d, in := newTestDecoder(15, true)
	z := flatetest.NewStdCompressor(t, flate.BestSpeed).Compress(t, []byte("hello, hello, hello"), false)
	final := flateFinal(t, flate.BestSpeed, []byte("final"), nil)
	for _, payload := range [][]byte{z, final} {
		var runs [][]byte
		for i := range payload {
			runs = append(runs, nil, payload[i:i+1])
		}
		in.runs = append(runs, nil)
		d.Start()
		got, err := io.ReadAll(d)
		require.NoError(t, err)
		require.Contains(t, []string{"hello, hello, hello", "final"}, string(got))
	}
}

func TestDecoderFinalBlockAndStored(t *testing.T) {
	d, in := newTestDecoder(15, true)
	// A complete stream with BFINAL set, as RFC 7692 7.2.3.4 allows, then
	// a stored block message.
	got, err := readMessage(d, in, flateFinal(t, flate.BestSpeed, []byte("final block message"), nil), 0, 0)
	require.NoError(t, err)
	require.Equal(t, "final block message", string(got))
	stored := []byte{0x00, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'}
	got, err = readMessage(d, in, stored, 3, 2)
	require.NoError(t, err)
	require.Equal(t, "hello", string(got))
}

// TestDecoderTakeoverAcrossFinalBlock sends, with context takeover, a
// message that ends with BFINAL set and then one whose back-references
// reach into it: the window must survive the end of a final block (RFC 7692
// 7.2.3.4 lets a message end that way; the LZ77 window still carries over).
func TestDecoderTakeoverAcrossFinalBlock(t *testing.T) {
	d, in := newTestDecoder(15, true)
	first := []byte("the quick brown fox jumps over the lazy dog, ends with BFINAL")
	msg1 := flateFinal(t, flate.BestCompression, first, nil)

	second := []byte("over the lazy dog, the quick brown fox jumps")
	var zb bytes.Buffer
	fw, err := flate.NewWriterDict(&zb, flate.BestCompression, first)
	require.NoError(t, err)
	fw.Write(second)
	require.NoError(t, fw.Flush())
	msg2 := bytes.TrimSuffix(zb.Bytes(), testTail)
	// The second message must really refer back into the first: without
	// that history it does not decode.
	_, err = io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(msg2), bytes.NewReader(append(bytes.Clone(testTail), testFinal...)))))
	require.Error(t, err, "the second message makes no back-reference into the first")

	got, err := readMessage(d, in, msg1, 0, 0)
	require.NoError(t, err)
	require.Equal(t, string(first), string(got))
	got, err = readMessage(d, in, msg2, 0, 0)
	require.NoError(t, err)
	require.Equal(t, string(second), string(got))
}

// TestDecoderCorrupt checks that data that does not inflate ends its
// message with ErrCorrupt, delivering at most what came before the fault.
func TestDecoderCorrupt(t *testing.T) {
	final := flateFinal(t, flate.BestSpeed, []byte("x"), nil)
	valid := flatetest.NewStdCompressor(t, flate.BestSpeed).Compress(t, []byte("valid"), true)
	for _, tc := range []struct {
		name    string
		payload []byte
		runs    [][]byte // instead of payload, when set
	}{
		{name: "corrupt data", payload: []byte{0xff, 0xff, 0xff}},
		{name: "block type 3", payload: []byte{0x07}},
		{name: "data after a final block", payload: append(bytes.Clone(final), 1, 2, 3)},
		{name: "data after a final block, in a later run", runs: [][]byte{final, {1}}},
		{name: "a reference before the history", payload: []byte{0x03, 0x02, 0x00}},
		{name: "a stream cut short", payload: valid[:len(valid)-2]},
		{name: "stored length check", payload: []byte{0x00, 3, 0, 0, 0, 'a', 'b', 'c'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, readSize := range []int{0, 1} {
				d, in := newTestDecoder(15, false)
				in.set(tc.payload, 0)
				if tc.runs != nil {
					in.runs = tc.runs
				}
				d.Start()
				var err error
				if readSize == 0 {
					_, err = d.DecodeAhead()
				}
				for err == nil {
					_, err = d.Read(make([]byte, 1))
				}
				require.Same(t, ErrCorrupt, err)
				require.False(t, d.Active(), "the message ends with the error")
				n, err := d.Read(make([]byte, 1))
				require.Equal(t, 0, n)
				require.Equal(t, io.EOF, err, "nothing more until the next Start")
			}
		})
	}
}

// TestDecoderInputError checks that an error of next ends the message and
// comes back unchanged, wherever it falls.
func TestDecoderInputError(t *testing.T) {
	errConn := errors.New("the connection failed")
	msg := bytes.Join(flatetest.ChatJSON(3, 20), nil)
	z := flatetest.NewStdCompressor(t, flate.BestSpeed).Compress(t, msg, true)
	for _, cut := range []int{0, 1, len(z) / 2, len(z)} {
		for _, ahead := range []bool{true, false} {
			d, in := newTestDecoder(15, true)
			in.set(z[:cut], 0)
			in.err = errConn
			d.Start()
			var err error
			if ahead {
				_, err = d.DecodeAhead()
			}
			for err == nil {
				_, err = d.Read(make([]byte, 100))
			}
			require.Same(t, errConn, err, "cut at %d", cut)
			require.False(t, d.Active())
		}
	}
}

// TestDecoderLeniency: where the data ends short of what RFC 7692 asks,
// the Decoder accepts what zlib-based peers accept.
func TestDecoderLeniency(t *testing.T) {
	final := flateFinal(t, flate.BestSpeed, []byte("final"), nil)
	for _, tc := range []struct {
		name string
		runs [][]byte
		want string
	}{
		// A final block, then the rest of the message's frames empty.
		{name: "final block then the end", runs: [][]byte{final}, want: "final"},
		{name: "final block across runs", runs: [][]byte{final[:2], final[2:]}, want: "final"},
		// A stored block whose last four bytes are the restored tail: the
		// payload ends at a block boundary without a separate sync flush.
		{name: "no sync flush", runs: [][]byte{{0x00, 0x03, 0x00, 0xfc, 0xff, 'a', 'b', 'c'}}, want: "abc"},
		// No payload at all: the tail alone reads as a stored block cut
		// short at a block boundary.
		{name: "empty payload", want: ""},
	} {
		d, in := newTestDecoder(15, true)
		in.runs = tc.runs
		d.Start()
		got, err := io.ReadAll(d)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, string(got), tc.name)
	}
}

// TestDecoderDifferential checks the Decoder against compress/flate's
// encoder at every level, with and without context takeover, on messages
// of many shapes cut into runs and read in pieces of random sizes.
func TestDecoderDifferential(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	corpus := append(flatetest.ChatJSON(3, 40), flatetest.SnapshotJSON(4, 10)...)
	random := flatetest.Random(5, 70000)
	corpus = append(corpus, random[:1], random[:300], random, bytes.Repeat([]byte("ab"), 40000), nil, []byte("x"))
	for level := -2; level <= 9; level++ {
		for _, takeover := range []bool{true, false} {
			fc := flatetest.NewStdCompressor(t, level)
			d, in := newTestDecoder(15, takeover)
			for i := 0; i < 60; i++ {
				msg := corpus[rng.Intn(len(corpus))]
				z := fc.Compress(t, msg, !takeover)
				got, err := readMessage(d, in, z, rng.Intn(700), rng.Intn(3)*rng.Intn(5000))
				require.NoError(t, err, "level %d takeover %t message %d", level, takeover, i)
				require.True(t, bytes.Equal(msg, got), "level %d takeover %t message %d: %d bytes, want %d", level, takeover, i, len(got), len(msg))
			}
		}
	}
}

// TestDecoderSmallWindows inflates what the Encoder produces within each
// window size, with context takeover, through a Decoder holding exactly
// that window: a reference beyond it would fail the message.
func TestDecoderSmallWindows(t *testing.T) {
	corpus := append(flatetest.ChatJSON(5, 300), flatetest.SnapshotJSON(6, 20)...)
	for bits := 8; bits <= 15; bits++ {
		for _, level := range []int{1, 6, 9} {
			e := NewEncoder(bits, level, true)
			d, in := newTestDecoder(bits, true)
			for i, want := range corpus {
				got, err := readMessage(d, in, e.Compress(nil, want), 1000, 0)
				require.NoError(t, err, "bits %d level %d message %d", bits, level, i)
				require.Equal(t, string(want), string(got))
			}
			e.Close()
		}
	}
}

// TestDecoderBomb checks that a message that inflates to far more than
// it takes is produced a window at a time: a caller that counts what Read
// delivers can stop it early.
func TestDecoderBomb(t *testing.T) {
	z := flatetest.NewStdCompressor(t, flate.BestCompression).Compress(t, make([]byte, 4<<20), true)
	require.Less(t, len(z), 8<<10)
	for _, takeover := range []bool{true, false} {
		d, in := newTestDecoder(15, takeover)
		in.set(z, 0)
		d.Start()
		n, err := d.DecodeAhead()
		require.NoError(t, err)
		require.Equal(t, d.WindowSize(), n, "a window decoded ahead, no more")
		used, unread := d.InputProgress()
		require.Less(t, used, int64(len(z)), "the input is not all used for a window of output")
		require.GreaterOrEqual(t, unread, int64(0))
		total := 0
		buf := make([]byte, 100<<10)
		for {
			n, err := d.Read(buf)
			require.LessOrEqual(t, n, d.WindowSize())
			total += n
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, 4<<20, total)
		require.Equal(t, int64(len(z)), d.inTotal, "all the input taken")
	}
}

// TestDecoderZeroAllocs checks that decoding allocates nothing in the
// steady state: the tables and (without takeover) the window are pooled.
func TestDecoderZeroAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	msgs := flatetest.SnapshotJSON(2, 16)
	for _, takeover := range []bool{true, false} {
		e := NewEncoder(15, 6, false)
		comps := make([][]byte, len(msgs))
		for i, m := range msgs {
			comps[i] = e.Compress(nil, m)
		}
		d, in := newTestDecoder(15, takeover)
		buf := make([]byte, 64<<10)
		i := 0
		allocs := testing.AllocsPerRun(100, func() {
			in.set(comps[i%len(comps)], 0)
			d.Start()
			for {
				if _, err := d.Read(buf); err != nil {
					break
				}
			}
			i++
		})
		assert.Zero(t, allocs, "takeover %t", takeover)
	}
}

// TestDecoderHeldMemory checks what a Decoder keeps between messages.
func TestDecoderHeldMemory(t *testing.T) {
	msg := strings.Repeat("held memory ", 100)
	for _, bits := range []int{8, 9, 12, 15} {
		z := NewEncoder(bits, 1, false).Compress(nil, []byte(msg))
		for _, takeover := range []bool{true, false} {
			d, in := newTestDecoder(bits, takeover)
			require.Zero(t, d.HeldBytes(), "nothing before the first message")
			_, err := readMessage(d, in, z, 0, 0)
			require.NoError(t, err)
			want := 0
			if takeover {
				want = max(1<<bits, 512)
			}
			assert.Equal(t, want, d.HeldBytes(), "window bits %d, takeover %t", bits, takeover)
		}
	}
}
