package flate

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// testTail is what RFC 7692 removes from each compressed message and a
// receiver appends back before inflating.
var testTail = []byte(Tail)

// testFinal is an empty final stored block: appended after a message it
// lets a one-shot reader end with io.EOF.
var testFinal = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

var allLevels = []int{-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// ---- round-trip helpers --------------------------------------------------

// compressAll compresses msgs with one Encoder, appending each to a
// short prefix to check that compress appends.
func compressAll(t testing.TB, wbits, level int, takeover bool, msgs [][]byte) [][]byte {
	d := NewEncoder(wbits, level, takeover)
	out := make([][]byte, len(msgs))
	prefix := []byte("pre")
	for i, m := range msgs {
		c := d.Compress(append([]byte(nil), prefix...), m)
		require.True(t, bytes.HasPrefix(c, prefix))
		out[i] = c[len(prefix):]
	}
	return out
}

// checkFlate inflates comps with compress/flate as a peer would and
// compares with msgs: with takeover through one reader over the whole
// stream and again message by message with a dictionary of the previous
// 2^wbits bytes (which a back-reference too far would overrun); without,
// each message through a fresh reader.
func checkFlate(t testing.TB, wbits int, takeover bool, msgs, comps [][]byte) {
	if takeover {
		var stream []byte
		for _, c := range comps {
			stream = append(append(stream, c...), testTail...)
		}
		stream = append(stream, testFinal...)
		r := flate.NewReader(bytes.NewReader(stream))
		for i, m := range msgs {
			got := make([]byte, len(m))
			_, err := io.ReadFull(r, got)
			require.NoError(t, err, "message %d", i)
			require.True(t, bytes.Equal(m, got), "message %d differs", i)
		}
		rest, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Empty(t, rest)
	}

	// Long streams are sampled here (the stream pass above saw every
	// message): each check copies a window-sized dictionary.
	step := max(1, len(msgs)/500)
	var hist []byte
	var r io.ReadCloser
	for i, m := range msgs {
		if i%step != 0 {
			hist = keepHistory(hist, takeover, m)
			continue
		}
		in := bytes.NewReader(append(append(append([]byte(nil), comps[i]...), testTail...), testFinal...))
		var dict []byte
		if takeover {
			dict = hist[max(0, len(hist)-1<<wbits):]
		}
		if r == nil {
			r = flate.NewReaderDict(in, dict)
		} else {
			require.NoError(t, r.(flate.Resetter).Reset(in, dict))
		}
		got, err := io.ReadAll(r)
		require.NoError(t, err, "message %d", i)
		require.True(t, bytes.Equal(m, got), "message %d differs", i)
		hist = keepHistory(hist, takeover, m)
	}
}

// keepHistory appends m to the history hist (with takeover), keeping at
// least the last 32 KiB.
func keepHistory(hist []byte, takeover bool, m []byte) []byte {
	if !takeover {
		return hist
	}
	hist = append(hist, m...)
	if len(hist) > 1<<16 {
		hist = append([]byte(nil), hist[len(hist)-1<<15:]...)
	}
	return hist
}

// checkStrict runs comps through the reference inflater, which
// also holds every back-reference to the window.
func checkStrict(t testing.TB, wbits int, takeover bool, msgs, comps [][]byte) {
	f := &flatetest.Inflater{Window: 1 << wbits, Takeover: takeover}
	for i, c := range comps {
		got, err := f.Inflate(c)
		require.NoError(t, err, "message %d", i)
		require.True(t, bytes.Equal(msgs[i], got), "message %d differs", i)
	}
}

func TestEncoderRoundTrip(t *testing.T) {
	repetitive := bytes.Repeat([]byte("abcabcabd"), 1000)
	mixed := append(append(flatetest.Text(3, 3000), flatetest.Random(4, 2000)...), flatetest.Text(3, 3000)...)
	streams := []struct {
		name string
		msgs [][]byte
	}{
		{"empty", [][]byte{{}, {}, {}}},
		{"one byte", [][]byte{{'x'}, {'x'}, {0}, {}, {'x'}}},
		{"short", [][]byte{[]byte("ab"), []byte("abc"), []byte("abcd"), []byte("abcde"), []byte("abcdabcd")}},
		{"zeros", [][]byte{make([]byte, 70000), make([]byte, 10), make([]byte, 300)}},
		{"repetitive", [][]byte{repetitive, repetitive[:1000], repetitive[5:777]}},
		{"random", [][]byte{flatetest.Random(1, 100), flatetest.Random(2, 20000), flatetest.Random(1, 100)}},
		{"text", [][]byte{flatetest.Text(1, 10000), flatetest.Text(1, 10000), flatetest.Text(2, 300), {}, flatetest.Text(1, 50)}},
		{"mixed", [][]byte{mixed, mixed[100:], mixed[:5000]}},
		{"chat", flatetest.ChatJSON(1, 40)},
		{"snapshot", flatetest.SnapshotJSON(1, 6)},
	}
	windows := []int{8, 9, 12, 15}
	if flatetest.RaceEnabled() {
		windows = []int{8, 15}
	}
	for _, s := range streams {
		for _, wbits := range windows {
			for _, level := range allLevels {
				for _, takeover := range []bool{true, false} {
					name := fmt.Sprintf("%s/w%d/l%d/takeover=%t", s.name, wbits, level, takeover)
					comps := compressAll(t, wbits, level, takeover, s.msgs)
					checkFlate(t, wbits, takeover, s.msgs, comps)
					if level <= 2 || level == 6 || level == 9 {
						// (The strict inflater is slow; the other levels
						// share these levels' code paths.)
						checkStrict(t, wbits, takeover, s.msgs, comps)
					}
					if t.Failed() {
						t.Fatal(name)
					}
				}
			}
		}
	}
}

func TestEncoderEmptyAndTiny(t *testing.T) {
	for _, level := range allLevels {
		d := NewEncoder(15, level, true)
		assert.Equal(t, []byte{0x00}, d.Compress(nil, nil), "level %d", level)
		limit := 3
		if level == 0 {
			limit = 7 // stored: header, LEN, NLEN, the byte, the flush
		}
		assert.LessOrEqual(t, len(d.Compress(nil, []byte{'a'})), limit, "level %d", level)
	}
}

// TestEncoderWindowBits checks that back-references stay within the
// negotiated window and reach all of it, within a message and across
// messages.
func TestEncoderWindowBits(t *testing.T) {
	for wbits := minWindowBits; wbits <= maxWindowBits; wbits++ {
		w := 1 << wbits
		a := flatetest.Random(int64(wbits), 200)
		for _, level := range []int{1, 2, 6, 9} {
			name := fmt.Sprintf("w%d/l%d", wbits, level)
			// a, then random filler, then a again: just out of reach...
			far := bytes.Join([][]byte{a, flatetest.Random(100, w-len(a)+1), a}, nil)
			// ...and exactly at the edge of the window.
			edge := bytes.Join([][]byte{a, flatetest.Random(100, w-len(a)), a}, nil)
			for _, msgs := range [][][]byte{{far}, {edge}, {a, flatetest.Random(101, w-len(a)+1), a}, {a, flatetest.Random(101, w-len(a)), a}} {
				comps := compressAll(t, wbits, level, true, msgs)
				checkStrict(t, wbits, true, msgs, comps)
				checkFlate(t, wbits, true, msgs, comps)
			}
			for _, tc := range []struct {
				msg  []byte
				want int
			}{{far, 0}, {edge, w}} {
				c := compressAll(t, wbits, level, false, [][]byte{tc.msg})[0]
				f := &flatetest.Inflater{Window: w}
				_, err := f.Inflate(c)
				require.NoError(t, err, name)
				assert.Equal(t, tc.want, f.Stats.MaxDist, name+": farthest reference (0 when the copy is out of reach)")
			}
			// Across messages with takeover: the last message is all
			// reference when the copy is within the history ring (7/8 of
			// the window), and none when it is beyond the window. The filler is
			// zeros, which take one hash bucket (and a match over them
			// enters only a few of its positions), so a's positions
			// survive in the index.
			reach := NewEncoder(wbits, level, true).hsize
			for _, tc := range []struct {
				gap  int
				want int
			}{{reach - len(a), reach}, {w - len(a) + 1, 0}} {
				msgs := [][]byte{a, make([]byte, tc.gap), a}
				cs := compressAll(t, wbits, level, true, msgs)
				f := &flatetest.Inflater{Window: w, Takeover: true, Hist: append(append([]byte(nil), a...), msgs[1]...)}
				_, err := f.Inflate(cs[2])
				require.NoError(t, err, name)
				assert.Equal(t, tc.want, f.Stats.MaxDist, name+": farthest reference into the history")
				if tc.want != 0 {
					// Below 2^10 the index has at most 64 buckets, fewer
					// than a has positions, so a displaces part of itself.
					limit := len(a) / 2
					if wbits < 10 {
						limit = len(a)
					}
					assert.Less(t, len(cs[2]), limit, name+": copy in the history at the window's edge")
				}
			}
		}
	}
}

func TestEncoderIncompressible(t *testing.T) {
	for _, n := range []int{1, 100, 4096, 65535, 65536, 200_000, testSize(1 << 20)} {
		msg := flatetest.Random(int64(n), n)
		levels := allLevels
		if n > 100_000 {
			levels = []int{-2, 0, 1, 6}
		}
		for _, level := range levels {
			for _, takeover := range []bool{true, false} {
				d := NewEncoder(15, level, takeover)
				for rep := 0; rep < 2; rep++ {
					c := d.Compress(nil, msg)
					// Stored blocks cost 5 bytes per 65535 and the flush one.
					limit := len(msg) + 5*((len(msg)+65534)/65535) + 1
					if rep == 1 && takeover && level != 0 && level != -2 && n <= 1<<15 {
						assert.Less(t, len(c), 40+len(msg)/100, "n=%d level %d: repeat within the window", n, level)
					} else {
						assert.LessOrEqual(t, len(c), limit, "n=%d level %d", n, level)
					}
					if !takeover && rep == 0 {
						checkFlate(t, 15, false, [][]byte{msg}, [][]byte{c})
					}
				}
			}
		}
	}
}

func TestEncoderLargeMessage(t *testing.T) {
	big := append(flatetest.Text(7, 600_000), flatetest.Random(8, 200_000)...)
	big = append(big, bytes.Join(flatetest.SnapshotJSON(9, 60), nil)...)
	big = big[:testSize(1<<20)]
	msgs := [][]byte{big, big[:5000]}
	for _, level := range allLevels {
		comps := compressAll(t, 15, level, true, msgs)
		checkFlate(t, 15, true, msgs, comps)
	}
	// A small window, and the strict check of distances.
	comps := compressAll(t, 9, 6, true, msgs)
	checkStrict(t, 9, true, msgs, comps)
	checkFlate(t, 9, true, msgs, comps)
}

// TestEncoderChatty10k round-trips 10 000 chat messages with context
// takeover and checks the ratios the compression issue targets.
func TestEncoderChatty10k(t *testing.T) {
	chat := flatetest.ChatJSON(42, testSize(10_000))
	snaps := flatetest.SnapshotJSON(43, 200)
	for _, level := range []int{1, -1} {
		for _, tc := range []struct {
			name   string
			msgs   [][]byte
			target float64
		}{
			{"chat", chat, 0.5},
			{"snapshot", snaps, 0.25},
		} {
			comps := compressAll(t, 15, level, true, tc.msgs)
			checkFlate(t, 15, true, tc.msgs, comps)
			ratio := float64(flatetest.TotalLen(comps)) / float64(flatetest.TotalLen(tc.msgs))
			alone := compressAll(t, 15, level, false, tc.msgs)
			ratioAlone := float64(flatetest.TotalLen(alone)) / float64(flatetest.TotalLen(tc.msgs))
			t.Logf("%s level %d: %.3f with takeover, %.3f without", tc.name, level, ratio, ratioAlone)
			assert.Less(t, ratio, ratioAlone*0.8, "%s level %d: takeover must help", tc.name, level)
			if level == -1 {
				assert.Less(t, ratio, tc.target, "%s: ratio target", tc.name)
			}
		}
	}
}

func TestEncoderLevelChange(t *testing.T) {
	msgs := flatetest.ChatJSON(5, 60)
	d := NewEncoder(15, 1, true)
	comps := make([][]byte, len(msgs))
	for i, m := range msgs {
		d.SetLevel(allLevels[i%len(allLevels)])
		comps[i] = d.Compress(nil, m)
	}
	checkFlate(t, 15, true, msgs, comps)
	checkStrict(t, 15, true, msgs, comps)
}

// TestEncoderIndexAfterStored checks that an Encoder whose first messages
// were stored (level 0: history kept, no index built) matches against the
// real history once it compresses: a fresh index points everywhere, and a
// zeroed history would "match" the zeros below.
func TestEncoderIndexAfterStored(t *testing.T) {
	for _, level := range []int{1, 2, 6} {
		msgs := [][]byte{bytes.Repeat([]byte("ABCD"), 100), make([]byte, 400), bytes.Repeat([]byte("ABCD"), 100)}
		d := NewEncoder(15, 0, true)
		comps := [][]byte{d.Compress(nil, msgs[0])}
		d.SetLevel(level)
		comps = append(comps, d.Compress(nil, msgs[1]), d.Compress(nil, msgs[2]))
		checkFlate(t, 15, true, msgs, comps)
		checkStrict(t, 15, true, msgs, comps)
		assert.Less(t, len(comps[2]), 20, "level %d: the history should be matched", level)
	}
}

func TestEncoderReset(t *testing.T) {
	msgs := flatetest.ChatJSON(6, 30)
	d := NewEncoder(15, 6, true)
	for i, m := range msgs {
		if i%3 == 0 {
			d.reset()
		}
		c := d.Compress(nil, m)
		f := &flatetest.Inflater{Window: 1 << 15}
		if i%3 != 0 {
			// After a reset the next message must stand alone; the others
			// may refer back.
			continue
		}
		got, err := f.Inflate(c)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, m, got)
	}
}

// TestEncoderHeldMemory measures what an Encoder with context takeover
// keeps on the heap after a message, while active and once idle (when only
// the history ring is left), and that one without keeps next to nothing.
func TestEncoderHeldMemory(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("heap figures are not meaningful under the race detector")
	}
	var measureOnce func(wbits int, takeover, idle bool) float64
	msg := flatetest.SnapshotJSON(1, 1)[0]
	const n = 128
	// The least of three runs: anything else allocating meanwhile (a
	// goroutine left by another test) can only add.
	measure := func(wbits int, takeover, idle bool) float64 {
		least := 0.0
		for run := 0; run < 3; run++ {
			if held := measureOnce(wbits, takeover, idle); run == 0 || held < least {
				least = held
			}
		}
		return least
	}
	measureOnce = func(wbits int, takeover, idle bool) float64 {
		ds := make([]*Encoder, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range ds {
			ds[i] = NewEncoder(wbits, 6, takeover)
			ds[i].Compress(make([]byte, 0, 8192), msg)
			if idle {
				goIdle(ds[i])
			}
		}
		// Twice: the pooled working memory survives one GC as a victim.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ds)
		for _, d := range ds {
			d.Close()
		}
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	if testing.Short() {
		t.Log("-short: the smallest and largest windows only")
	}
	for wbits := minWindowBits; wbits <= maxWindowBits; wbits++ {
		if testing.Short() && wbits != minWindowBits && wbits != maxWindowBits {
			continue
		}
		active, idle := measure(wbits, true, false), measure(wbits, true, true)
		d := NewEncoder(wbits, 6, true)
		d.Compress(nil, msg)
		t.Logf("window bits %d, takeover: %.0f bytes held per active Encoder, %.0f idle (heldBytes %d)", wbits, active, idle, d.HeldBytes())
		d.Close()
		// Active: the ring (7/8 of the window), heads (the window's size
		// in bytes) and chains (half of it); idle, the ring alone. The heap
		// rounds the ring up to a size class, which below 15 bits can be
		// the whole window; at 15 it is 28 KiB, what keeps a connection
		// (with the 32 KiB it inflates in) within 64 KiB. 512 bytes is
		// room for the struct, the timer and the heap's rounding.
		w := float64(int(1) << wbits)
		activeMax, idleMax := 2.5*w+512, w+512
		if wbits == 15 {
			activeMax, idleMax = 76<<10+512, 28<<10+512
		}
		assert.LessOrEqual(t, active, activeMax, "window bits %d, active", wbits)
		assert.LessOrEqual(t, idle, idleMax, "window bits %d, idle", wbits)
	}
	held := measure(15, false, false)
	t.Logf("no takeover: %.0f bytes held per idle Encoder", held)
	assert.LessOrEqual(t, held, 512.0)
}

// TestEncoderIdleIndex drops the match index between messages, as the idle
// timer does, at every level that keeps one: the history survives, the
// index is rebuilt from it, and every message still inflates against the
// reference decoders within the window.
func TestEncoderIdleIndex(t *testing.T) {
	msgs := flatetest.SnapshotJSON(12, 16)
	for _, level := range []int{1, 2, 3, 6} {
		for _, wbits := range []int{9, 12, 15} {
			name := fmt.Sprintf("level %d, window bits %d", level, wbits)
			d := NewEncoder(wbits, level, true)
			comps := make([][]byte, len(msgs))
			for i, m := range msgs {
				switch i % 4 {
				case 2:
					// One period after a message: still active.
					d.idleTick()
					require.NotNil(t, d.head, name)
				case 3:
					goIdle(d)
					require.Nil(t, d.head, name)
					require.Nil(t, d.prev, name)
					require.Equal(t, cap(d.hist), d.HeldBytes(), name+": only the history is held")
				}
				comps[i] = d.Compress(nil, m)
			}
			d.Close()
			checkStrict(t, wbits, true, msgs, comps)
			checkFlate(t, wbits, true, msgs, comps)
		}
	}
	// The rebuilt index finds the history: a message sent again right
	// after the index was dropped is nearly all one reference.
	for _, level := range []int{1, 2, 3, 6} {
		d := NewEncoder(15, level, true)
		first := d.Compress(nil, msgs[0])
		goIdle(d)
		again := d.Compress(nil, msgs[0])
		d.Close()
		assert.Less(t, len(again), len(first)/10, "level %d", level)
	}
}

// TestEncoderIdleTimer lets the timer drop the index (with a short period),
// checks that the next message sets it again, and that close stops it.
func TestEncoderIdleTimer(t *testing.T) {
	msg := flatetest.SnapshotJSON(13, 1)[0]
	d := NewEncoder(15, 2, true)
	d.idle = time.Millisecond
	onlyHistory := func() bool { return d.HeldBytes() == d.hsize }
	d.Compress(nil, msg)
	require.Eventually(t, onlyHistory, 10*time.Second, time.Millisecond, "the timer drops the index")
	d.Compress(nil, msg)
	require.Eventually(t, onlyHistory, 10*time.Second, time.Millisecond, "and does again after the next message")
	d.Compress(nil, msg)
	d.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.False(t, d.armed, "close stops the timer")
	assert.Nil(t, d.head)
	assert.False(t, d.timer.Stop(), "the timer was stopped already")
}

func TestEncoderZeroAllocs(t *testing.T) {
	if flatetest.RaceEnabled() {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	msg := flatetest.SnapshotJSON(2, 1)[0]
	dst := make([]byte, 0, 2*len(msg))
	for _, level := range allLevels {
		for _, takeover := range []bool{true, false} {
			d := NewEncoder(15, level, takeover)
			d.Compress(dst, msg)
			allocs := testing.AllocsPerRun(50, func() { d.Compress(dst, msg) })
			assert.Zero(t, allocs, "level %d takeover %t", level, takeover)
		}
	}
}

// testSize scales a test's data down under the race detector, which
// slows the encoder's loops some twenty times and has no concurrency to
// check in them.
func testSize(n int) int {
	if flatetest.RaceEnabled() {
		return n / 5
	}
	return n
}

// goIdle runs e's idle timer function as the two periods of silence that
// make it drop the match index would.
func goIdle(e *Encoder) {
	e.idleTick()
	e.idleTick()
}

// TestEncoderForget drops a message compressed with takeover, as when it
// never reached the peer: the peer's inflater, which saw every other
// message, must decode the rest, the next one included although it repeats
// the dropped one.
func TestEncoderForget(t *testing.T) {
	msgs := flatetest.ChatJSON(7, 30)
	e := NewEncoder(15, 6, true)
	f := &flatetest.Inflater{Window: 1 << 15, Takeover: true}
	for i, m := range msgs {
		c := e.Compress(nil, m)
		if i%4 == 1 {
			e.Forget() // this one is lost on the way
			c = e.Compress(nil, m)
		}
		got, err := f.Inflate(c)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, m, got, "message %d", i)
	}
}
