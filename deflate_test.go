package websocket

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"math/rand"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deflateTestTail is what RFC 7692 removes from each compressed message and a
// receiver appends back before inflating.
var deflateTestTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateTestFinal is an empty final stored block: appended after a message it
// lets a one-shot reader end with io.EOF.
var deflateTestFinal = []byte{0x01, 0x00, 0x00, 0xff, 0xff}

var deflateAllLevels = []int{-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}

// ---- round-trip helpers --------------------------------------------------

// deflateCompressAll compresses msgs with one deflater, appending each to a
// short prefix to check that compress appends.
func deflateCompressAll(t testing.TB, wbits, level int, takeover bool, msgs [][]byte) [][]byte {
	d := newDeflater(wbits, level, takeover)
	out := make([][]byte, len(msgs))
	prefix := []byte("pre")
	for i, m := range msgs {
		c := d.compress(append([]byte(nil), prefix...), m)
		require.True(t, bytes.HasPrefix(c, prefix))
		out[i] = c[len(prefix):]
	}
	return out
}

// deflateCheckFlate inflates comps with compress/flate as a peer would and
// compares with msgs: with takeover through one reader over the whole
// stream and again message by message with a dictionary of the previous
// 2^wbits bytes (which a back-reference too far would overrun); without,
// each message through a fresh reader.
func deflateCheckFlate(t testing.TB, wbits int, takeover bool, msgs, comps [][]byte) {
	if takeover {
		var stream []byte
		for _, c := range comps {
			stream = append(append(stream, c...), deflateTestTail...)
		}
		stream = append(stream, deflateTestFinal...)
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
			hist = deflateTestKeep(hist, takeover, m)
			continue
		}
		in := bytes.NewReader(append(append(append([]byte(nil), comps[i]...), deflateTestTail...), deflateTestFinal...))
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
		hist = deflateTestKeep(hist, takeover, m)
	}
}

// deflateTestKeep appends m to the history hist (with takeover), keeping at
// least the last 32 KiB.
func deflateTestKeep(hist []byte, takeover bool, m []byte) []byte {
	if !takeover {
		return hist
	}
	hist = append(hist, m...)
	if len(hist) > 1<<16 {
		hist = append([]byte(nil), hist[len(hist)-1<<15:]...)
	}
	return hist
}

// deflateCheckStrict runs comps through the reference inflater, which
// also holds every back-reference to the window.
func deflateCheckStrict(t testing.TB, wbits int, takeover bool, msgs, comps [][]byte) {
	f := &refInflater{window: 1 << wbits, takeover: takeover}
	for i, c := range comps {
		got, err := f.inflate(c)
		require.NoError(t, err, "message %d", i)
		require.True(t, bytes.Equal(msgs[i], got), "message %d differs", i)
	}
}

func deflateTestTotal(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

// ---- test data -----------------------------------------------------------

var deflateTestWords = strings.Fields(`the a to and of in is it you that he was for on are with as I his they be
at one have this from or had by hot word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my over know water
than call first who may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form sentence great
think say help low line differ turn cause much mean before move right boy old too same tell does set three
want air well also play small end put home read hand port large spell add even land here must big high such
follow act why ask men change went light kind off need house picture try us again animal point mother world`)

var deflateTestNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne"}

func deflateTestSentence(r *rand.Rand, words int) string {
	var sb strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(deflateTestWords[r.Intn(len(deflateTestWords))])
	}
	return sb.String()
}

// deflateChatJSON returns n chat messages of about 200 bytes, as a chat or
// notification service sends them: the same keys every time, a few users
// and channels, fresh ids, times and text.
func deflateChatJSON(seed int64, n int) [][]byte {
	r := rand.New(rand.NewSource(seed))
	channels := []string{"general", "random", "engineering", "support", "announcements"}
	ts := int64(1714567890123)
	out := make([][]byte, n)
	for i := range out {
		ts += int64(r.Intn(5000))
		u := r.Intn(len(deflateTestNames))
		out[i] = []byte(fmt.Sprintf(`{"type":"message","id":"msg_%08x","channel":"%s","user":{"id":%d,"name":"%s"},"text":"%s","ts":%d,"edited":%t,"reactions":%d}`,
			r.Uint32(), channels[r.Intn(len(channels))], 1000+u, deflateTestNames[u], deflateTestSentence(r, 3+r.Intn(8)), ts, r.Intn(10) == 0, r.Intn(4)))
	}
	return out
}

// deflateSnapshotJSON returns n state updates of about 4 KiB: a page of
// items from a catalogue, with prices, stock and times that change.
func deflateSnapshotJSON(seed int64, n int) [][]byte {
	r := rand.New(rand.NewSource(seed))
	type item struct {
		name  string
		price float64
		tags  [2]string
	}
	statuses := []string{"in_stock", "low_stock", "backorder", "discontinued"}
	catalogue := make([]item, 400)
	for i := range catalogue {
		catalogue[i] = item{name: deflateTestSentence(r, 2+r.Intn(3)), price: float64(100+r.Intn(50000)) / 100,
			tags: [2]string{deflateTestWords[r.Intn(40)], deflateTestWords[r.Intn(40)]}}
	}
	out := make([][]byte, n)
	for i := range out {
		var sb strings.Builder
		fmt.Fprintf(&sb, `{"type":"snapshot","seq":%d,"ts":"2024-05-01T12:%02d:%02d.%03dZ","page":%d,"items":[`, 1000+i, r.Intn(60), r.Intn(60), r.Intn(1000), r.Intn(20))
		for k := 0; sb.Len() < 3900; k++ {
			if k > 0 {
				sb.WriteByte(',')
			}
			id := r.Intn(len(catalogue))
			it := catalogue[id]
			fmt.Fprintf(&sb, `{"id":%d,"sku":"SKU-%05d","name":"%s","price":%.2f,"qty":%d,"status":"%s","tags":["%s","%s"],"updated":"2024-05-01T%02d:%02d:%02dZ"}`,
				id, 10000+id*7, it.name, it.price*(1+float64(r.Intn(5))/100), r.Intn(500), statuses[r.Intn(len(statuses))], it.tags[0], it.tags[1], r.Intn(24), r.Intn(60), r.Intn(60))
		}
		sb.WriteString(`]}`)
		out[i] = []byte(sb.String())
	}
	return out
}

func deflateTestRandom(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func deflateTestText(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(deflateTestSentence(r, 5+r.Intn(10)))
		sb.WriteString(".\n")
	}
	return []byte(sb.String()[:n])
}

// ---- tests -----------------------------------------------------------------

func TestDeflateRoundTrip(t *testing.T) {
	repetitive := bytes.Repeat([]byte("abcabcabd"), 1000)
	mixed := append(append(deflateTestText(3, 3000), deflateTestRandom(4, 2000)...), deflateTestText(3, 3000)...)
	streams := []struct {
		name string
		msgs [][]byte
	}{
		{"empty", [][]byte{{}, {}, {}}},
		{"one byte", [][]byte{{'x'}, {'x'}, {0}, {}, {'x'}}},
		{"short", [][]byte{[]byte("ab"), []byte("abc"), []byte("abcd"), []byte("abcde"), []byte("abcdabcd")}},
		{"zeros", [][]byte{make([]byte, 70000), make([]byte, 10), make([]byte, 300)}},
		{"repetitive", [][]byte{repetitive, repetitive[:1000], repetitive[5:777]}},
		{"random", [][]byte{deflateTestRandom(1, 100), deflateTestRandom(2, 20000), deflateTestRandom(1, 100)}},
		{"text", [][]byte{deflateTestText(1, 10000), deflateTestText(1, 10000), deflateTestText(2, 300), {}, deflateTestText(1, 50)}},
		{"mixed", [][]byte{mixed, mixed[100:], mixed[:5000]}},
		{"chat", deflateChatJSON(1, 40)},
		{"snapshot", deflateSnapshotJSON(1, 6)},
	}
	windows := []int{8, 9, 12, 15}
	if deflateRaceEnabled() {
		windows = []int{8, 15}
	}
	for _, s := range streams {
		for _, wbits := range windows {
			for _, level := range deflateAllLevels {
				for _, takeover := range []bool{true, false} {
					name := fmt.Sprintf("%s/w%d/l%d/takeover=%t", s.name, wbits, level, takeover)
					comps := deflateCompressAll(t, wbits, level, takeover, s.msgs)
					deflateCheckFlate(t, wbits, takeover, s.msgs, comps)
					if level <= 2 || level == 6 || level == 9 {
						// (The strict inflater is slow; the other levels
						// share these levels' code paths.)
						deflateCheckStrict(t, wbits, takeover, s.msgs, comps)
					}
					if t.Failed() {
						t.Fatal(name)
					}
				}
			}
		}
	}
}

func TestDeflateEmptyAndTiny(t *testing.T) {
	for _, level := range deflateAllLevels {
		d := newDeflater(15, level, true)
		assert.Equal(t, []byte{0x00}, d.compress(nil, nil), "level %d", level)
		limit := 3
		if level == 0 {
			limit = 7 // stored: header, LEN, NLEN, the byte, the flush
		}
		assert.LessOrEqual(t, len(d.compress(nil, []byte{'a'})), limit, "level %d", level)
	}
}

// TestDeflateWindowBits checks that back-references stay within the
// negotiated window and reach all of it, within a message and across
// messages.
func TestDeflateWindowBits(t *testing.T) {
	for wbits := deflateMinWindowBits; wbits <= deflateMaxWindowBits; wbits++ {
		w := 1 << wbits
		a := deflateTestRandom(int64(wbits), 200)
		for _, level := range []int{1, 2, 6, 9} {
			name := fmt.Sprintf("w%d/l%d", wbits, level)
			// a, then random filler, then a again: just out of reach...
			far := bytes.Join([][]byte{a, deflateTestRandom(100, w-len(a)+1), a}, nil)
			// ...and exactly at the edge of the window.
			edge := bytes.Join([][]byte{a, deflateTestRandom(100, w-len(a)), a}, nil)
			for _, msgs := range [][][]byte{{far}, {edge}, {a, deflateTestRandom(101, w-len(a)+1), a}, {a, deflateTestRandom(101, w-len(a)), a}} {
				comps := deflateCompressAll(t, wbits, level, true, msgs)
				deflateCheckStrict(t, wbits, true, msgs, comps)
				deflateCheckFlate(t, wbits, true, msgs, comps)
			}
			for _, tc := range []struct {
				msg  []byte
				want int
			}{{far, 0}, {edge, w}} {
				c := deflateCompressAll(t, wbits, level, false, [][]byte{tc.msg})[0]
				f := &refInflater{window: w}
				_, err := f.inflate(c)
				require.NoError(t, err, name)
				assert.Equal(t, tc.want, f.stats.maxDist, name+": farthest reference (0 when the copy is out of reach)")
			}
			// Across messages with takeover: the last message is all
			// reference when the copy is within the history ring (7/8 of
			// the window), and none when it is beyond the window. The filler is
			// zeros, which take one hash bucket (and a match over them
			// enters only a few of its positions), so a's positions
			// survive in the index.
			reach := newDeflater(wbits, level, true).hsize
			for _, tc := range []struct {
				gap  int
				want int
			}{{reach - len(a), reach}, {w - len(a) + 1, 0}} {
				msgs := [][]byte{a, make([]byte, tc.gap), a}
				cs := deflateCompressAll(t, wbits, level, true, msgs)
				f := &refInflater{window: w, takeover: true, hist: append(append([]byte(nil), a...), msgs[1]...)}
				_, err := f.inflate(cs[2])
				require.NoError(t, err, name)
				assert.Equal(t, tc.want, f.stats.maxDist, name+": farthest reference into the history")
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

func TestDeflateIncompressible(t *testing.T) {
	for _, n := range []int{1, 100, 4096, 65535, 65536, 200_000, deflateTestSize(1 << 20)} {
		msg := deflateTestRandom(int64(n), n)
		levels := deflateAllLevels
		if n > 100_000 {
			levels = []int{-2, 0, 1, 6}
		}
		for _, level := range levels {
			for _, takeover := range []bool{true, false} {
				d := newDeflater(15, level, takeover)
				for rep := 0; rep < 2; rep++ {
					c := d.compress(nil, msg)
					// Stored blocks cost 5 bytes per 65535 and the flush one.
					limit := len(msg) + 5*((len(msg)+65534)/65535) + 1
					if rep == 1 && takeover && level != 0 && level != -2 && n <= 1<<15 {
						assert.Less(t, len(c), 40+len(msg)/100, "n=%d level %d: repeat within the window", n, level)
					} else {
						assert.LessOrEqual(t, len(c), limit, "n=%d level %d", n, level)
					}
					if !takeover && rep == 0 {
						deflateCheckFlate(t, 15, false, [][]byte{msg}, [][]byte{c})
					}
				}
			}
		}
	}
}

func TestDeflateLargeMessage(t *testing.T) {
	big := append(deflateTestText(7, 600_000), deflateTestRandom(8, 200_000)...)
	big = append(big, bytes.Join(deflateSnapshotJSON(9, 60), nil)...)
	big = big[:deflateTestSize(1<<20)]
	msgs := [][]byte{big, big[:5000]}
	for _, level := range deflateAllLevels {
		comps := deflateCompressAll(t, 15, level, true, msgs)
		deflateCheckFlate(t, 15, true, msgs, comps)
	}
	// A small window, and the strict check of distances.
	comps := deflateCompressAll(t, 9, 6, true, msgs)
	deflateCheckStrict(t, 9, true, msgs, comps)
	deflateCheckFlate(t, 9, true, msgs, comps)
}

// TestDeflateChatty10k round-trips 10 000 chat messages with context
// takeover and checks the ratios the compression issue targets.
func TestDeflateChatty10k(t *testing.T) {
	chat := deflateChatJSON(42, deflateTestSize(10_000))
	snaps := deflateSnapshotJSON(43, 200)
	for _, level := range []int{1, -1} {
		for _, tc := range []struct {
			name   string
			msgs   [][]byte
			target float64
		}{
			{"chat", chat, 0.5},
			{"snapshot", snaps, 0.25},
		} {
			comps := deflateCompressAll(t, 15, level, true, tc.msgs)
			deflateCheckFlate(t, 15, true, tc.msgs, comps)
			ratio := float64(deflateTestTotal(comps)) / float64(deflateTestTotal(tc.msgs))
			alone := deflateCompressAll(t, 15, level, false, tc.msgs)
			ratioAlone := float64(deflateTestTotal(alone)) / float64(deflateTestTotal(tc.msgs))
			t.Logf("%s level %d: %.3f with takeover, %.3f without", tc.name, level, ratio, ratioAlone)
			assert.Less(t, ratio, ratioAlone*0.8, "%s level %d: takeover must help", tc.name, level)
			if level == -1 {
				assert.Less(t, ratio, tc.target, "%s: ratio target", tc.name)
			}
		}
	}
}

func TestDeflateLevelChange(t *testing.T) {
	msgs := deflateChatJSON(5, 60)
	d := newDeflater(15, 1, true)
	comps := make([][]byte, len(msgs))
	for i, m := range msgs {
		d.setLevel(deflateAllLevels[i%len(deflateAllLevels)])
		comps[i] = d.compress(nil, m)
	}
	deflateCheckFlate(t, 15, true, msgs, comps)
	deflateCheckStrict(t, 15, true, msgs, comps)
}

// TestDeflateIndexAfterStored checks that a deflater whose first messages
// were stored (level 0: history kept, no index built) matches against the
// real history once it compresses: a fresh index points everywhere, and a
// zeroed history would "match" the zeros below.
func TestDeflateIndexAfterStored(t *testing.T) {
	for _, level := range []int{1, 2, 6} {
		msgs := [][]byte{bytes.Repeat([]byte("ABCD"), 100), make([]byte, 400), bytes.Repeat([]byte("ABCD"), 100)}
		d := newDeflater(15, 0, true)
		comps := [][]byte{d.compress(nil, msgs[0])}
		d.setLevel(level)
		comps = append(comps, d.compress(nil, msgs[1]), d.compress(nil, msgs[2]))
		deflateCheckFlate(t, 15, true, msgs, comps)
		deflateCheckStrict(t, 15, true, msgs, comps)
		assert.Less(t, len(comps[2]), 20, "level %d: the history should be matched", level)
	}
}

func TestDeflateReset(t *testing.T) {
	msgs := deflateChatJSON(6, 30)
	d := newDeflater(15, 6, true)
	for i, m := range msgs {
		if i%3 == 0 {
			d.reset()
		}
		c := d.compress(nil, m)
		f := &refInflater{window: 1 << 15}
		if i%3 != 0 {
			// After a reset the next message must stand alone; the others
			// may refer back.
			continue
		}
		got, err := f.inflate(c)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, m, got)
	}
}

// TestDeflateHeldMemory measures what a deflater with context takeover
// keeps on the heap after a message, while active and once idle (when only
// the history ring is left), and that one without keeps next to nothing.
func TestDeflateHeldMemory(t *testing.T) {
	if deflateRaceEnabled() {
		t.Skip("heap figures are not meaningful under the race detector")
	}
	var measureOnce func(wbits int, takeover, idle bool) float64
	msg := deflateSnapshotJSON(1, 1)[0]
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
		ds := make([]*deflater, n)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range ds {
			ds[i] = newDeflater(wbits, 6, takeover)
			ds[i].compress(make([]byte, 0, 8192), msg)
			if idle {
				deflateGoIdle(ds[i])
			}
		}
		// Twice: the pooled working memory survives one GC as a victim.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ds)
		for _, d := range ds {
			d.close()
		}
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	if testing.Short() {
		t.Log("-short: the smallest and largest windows only")
	}
	for wbits := deflateMinWindowBits; wbits <= deflateMaxWindowBits; wbits++ {
		if testing.Short() && wbits != deflateMinWindowBits && wbits != deflateMaxWindowBits {
			continue
		}
		active, idle := measure(wbits, true, false), measure(wbits, true, true)
		d := newDeflater(wbits, 6, true)
		d.compress(nil, msg)
		t.Logf("window bits %d, takeover: %.0f bytes held per active deflater, %.0f idle (heldBytes %d)", wbits, active, idle, d.heldBytes())
		d.close()
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
	t.Logf("no takeover: %.0f bytes held per idle deflater", held)
	assert.LessOrEqual(t, held, 512.0)
}

// TestDeflateIdleIndex drops the match index between messages, as the idle
// timer does, at every level that keeps one: the history survives, the
// index is rebuilt from it, and every message still inflates against the
// reference decoders within the window.
func TestDeflateIdleIndex(t *testing.T) {
	msgs := deflateSnapshotJSON(12, 16)
	for _, level := range []int{1, 2, 3, 6} {
		for _, wbits := range []int{9, 12, 15} {
			name := fmt.Sprintf("level %d, window bits %d", level, wbits)
			d := newDeflater(wbits, level, true)
			comps := make([][]byte, len(msgs))
			for i, m := range msgs {
				switch i % 4 {
				case 2:
					// One period after a message: still active.
					d.idleTick()
					require.NotNil(t, d.head, name)
				case 3:
					deflateGoIdle(d)
					require.Nil(t, d.head, name)
					require.Nil(t, d.prev, name)
					require.Equal(t, cap(d.hist), d.heldBytes(), name+": only the history is held")
				}
				comps[i] = d.compress(nil, m)
			}
			d.close()
			deflateCheckStrict(t, wbits, true, msgs, comps)
			deflateCheckFlate(t, wbits, true, msgs, comps)
		}
	}
	// The rebuilt index finds the history: a message sent again right
	// after the index was dropped is nearly all one reference.
	for _, level := range []int{1, 2, 3, 6} {
		d := newDeflater(15, level, true)
		first := d.compress(nil, msgs[0])
		deflateGoIdle(d)
		again := d.compress(nil, msgs[0])
		d.close()
		assert.Less(t, len(again), len(first)/10, "level %d", level)
	}
}

// TestDeflateIdleTimer lets the timer drop the index (with a short period),
// checks that the next message sets it again, and that close stops it.
func TestDeflateIdleTimer(t *testing.T) {
	msg := deflateSnapshotJSON(13, 1)[0]
	d := newDeflater(15, 2, true)
	d.idle = time.Millisecond
	onlyHistory := func() bool { return d.heldBytes() == d.hsize }
	d.compress(nil, msg)
	require.Eventually(t, onlyHistory, 10*time.Second, time.Millisecond, "the timer drops the index")
	d.compress(nil, msg)
	require.Eventually(t, onlyHistory, 10*time.Second, time.Millisecond, "and does again after the next message")
	d.compress(nil, msg)
	d.close()
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.False(t, d.armed, "close stops the timer")
	assert.Nil(t, d.head)
	assert.False(t, d.timer.Stop(), "the timer was stopped already")
}

func TestDeflateZeroAllocs(t *testing.T) {
	if deflateRaceEnabled() {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	msg := deflateSnapshotJSON(2, 1)[0]
	dst := make([]byte, 0, 2*len(msg))
	for _, level := range deflateAllLevels {
		for _, takeover := range []bool{true, false} {
			d := newDeflater(15, level, takeover)
			d.compress(dst, msg)
			allocs := testing.AllocsPerRun(50, func() { d.compress(dst, msg) })
			assert.Zero(t, allocs, "level %d takeover %t", level, takeover)
		}
	}
}

// deflateTestSize scales a test's data down under the race detector, which
// slows the encoder's loops some twenty times and has no concurrency to
// check in them.
func deflateTestSize(n int) int {
	if deflateRaceEnabled() {
		return n / 5
	}
	return n
}

func deflateRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func TestHuffLengths(t *testing.T) {
	fib := make([]uint32, 30)
	fib[0], fib[1] = 1, 1
	for i := 2; i < len(fib); i++ {
		fib[i] = fib[i-1] + fib[i-2]
	}
	r := rand.New(rand.NewSource(1))
	cases := []struct {
		name    string
		freq    []uint32
		maxBits int
	}{
		{"none", make([]uint32, 30), 15},
		{"one", []uint32{0, 0, 5, 0}, 15},
		{"one at 0", []uint32{5, 0, 0, 0}, 15},
		{"two", []uint32{0, 1, 0, 1000}, 15},
		{"flat", huffTestFreq(bytes.Repeat([]byte{1}, 286)), 15},
		{"fibonacci 15", append(fib, make([]uint32, 256)...), 15},
		{"fibonacci 7", fib[:19], 7},
		{"fibonacci 7 sparse", []uint32{0, 1, 1, 0, 2, 3, 5, 8, 0, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987}, 7},
		{"skewed code lengths", []uint32{1000, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 7},
	}
	for i := 0; i < 200; i++ {
		n := 2 + r.Intn(285)
		f := make([]uint32, n)
		for j := range f {
			if r.Intn(3) > 0 {
				f[j] = uint32(r.ExpFloat64() * float64(1+r.Intn(5000)))
			}
		}
		maxBits := 15
		if i%2 == 0 {
			maxBits = 7
			f = f[:min(len(f), 19)]
		}
		cases = append(cases, struct {
			name    string
			freq    []uint32
			maxBits int
		}{fmt.Sprintf("random %d", i), f, maxBits})
	}
	var sorted [2 * huffNumLit]uint64
	var weights [huffNumLit]uint32
	for _, tc := range cases {
		lens := make([]uint8, len(tc.freq))
		huffLengths(tc.freq, lens, tc.maxBits, sorted[:], weights[:])
		kraft := 0.0
		used := 0
		for sym, l := range lens {
			require.LessOrEqual(t, int(l), tc.maxBits, tc.name)
			if tc.freq[sym] != 0 {
				require.NotZero(t, l, "%s: symbol %d has no code", tc.name, sym)
			}
			if l != 0 {
				kraft += 1 / float64(uint(1)<<l)
				used++
			}
		}
		require.GreaterOrEqual(t, used, 2, tc.name)
		require.InDelta(t, 1.0, kraft, 1e-12, "%s: code must be complete", tc.name)
		for a := range lens {
			for b := range lens {
				if tc.freq[a] > tc.freq[b] && tc.freq[b] > 0 {
					require.LessOrEqual(t, lens[a], lens[b], "%s: rarer symbol with shorter code", tc.name)
				}
			}
		}
		// Without the limit biting, the cost must equal Huffman's.
		if huffTreeDepth(tc.freq) <= tc.maxBits {
			require.Equal(t, huffOptimalCost(tc.freq), huffCost(tc.freq, lens), tc.name)
		}
	}
}

func huffTestFreq(b []byte) []uint32 {
	f := make([]uint32, len(b))
	for i, v := range b {
		f[i] = uint32(v)
	}
	return f
}

func huffCost(freq []uint32, lens []uint8) int {
	c := 0
	for i, f := range freq {
		c += int(f) * int(lens[i])
	}
	return c
}

// huffOptimalCost is the cost of a Huffman code by the textbook method
// (sum of the merged weights), as a reference.
func huffOptimalCost(freq []uint32) int {
	var w []int
	for _, f := range freq {
		if f > 0 {
			w = append(w, int(f))
		}
	}
	if len(w) < 2 {
		return huffCost(freq, huffFallbackLens(freq))
	}
	cost := 0
	for len(w) > 1 {
		// Two smallest.
		for k := 0; k < 2; k++ {
			m := k
			for j := k; j < len(w); j++ {
				if w[j] < w[m] {
					m = j
				}
			}
			w[k], w[m] = w[m], w[k]
		}
		s := w[0] + w[1]
		cost += s
		w = append(w[2:], s)
	}
	return cost
}

func huffFallbackLens(freq []uint32) []uint8 {
	lens := make([]uint8, len(freq))
	for i, f := range freq {
		if f > 0 {
			lens[i] = 1
		}
	}
	return lens
}

// huffTreeDepth is the depth of an (unlimited) Huffman tree for freq, a
// lower bound on whether the limit applies.
func huffTreeDepth(freq []uint32) int {
	type node struct{ w, d int }
	var ns []node
	for _, f := range freq {
		if f > 0 {
			ns = append(ns, node{int(f), 0})
		}
	}
	if len(ns) < 2 {
		return 1
	}
	for len(ns) > 1 {
		for k := 0; k < 2; k++ {
			m := k
			for j := k; j < len(ns); j++ {
				if ns[j].w < ns[m].w || (ns[j].w == ns[m].w && ns[j].d < ns[m].d) {
					m = j
				}
			}
			ns[k], ns[m] = ns[m], ns[k]
		}
		ns = append(ns[2:], node{ns[0].w + ns[1].w, max(ns[0].d, ns[1].d) + 1})
	}
	return ns[0].d
}

// FuzzDeflate round-trips random messages at random window sizes and
// levels through compress/flate and the reference inflater.
func FuzzDeflate(f *testing.F) {
	f.Add([]byte("hello hello hello"), uint8(7), uint8(7), true, uint8(2))
	f.Add(bytes.Repeat([]byte("ab"), 600), uint8(0), uint8(3), true, uint8(3))
	f.Add(deflateTestRandom(1, 700), uint8(1), uint8(1), false, uint8(1))
	f.Add(bytes.Join(deflateChatJSON(1, 4), nil), uint8(7), uint8(1), true, uint8(4))
	f.Add([]byte{}, uint8(3), uint8(0), true, uint8(0))
	f.Add(append(bytes.Repeat([]byte("ABCD"), 100), make([]byte, 400)...), uint8(7), uint8(2), true, uint8(0x81))
	f.Fuzz(func(t *testing.T, data []byte, wb, lv uint8, takeover bool, parts uint8) {
		wbits := deflateMinWindowBits + int(wb%8)
		level := int(lv%12) - 2
		k := 1 + int(parts%5)
		msgs := make([][]byte, k)
		for i := range msgs {
			msgs[i] = data[i*len(data)/k : (i+1)*len(data)/k]
		}
		var comps [][]byte
		if parts&0x80 == 0 {
			comps = deflateCompressAll(t, wbits, level, takeover, msgs)
		} else {
			// The level changes from message to message.
			d := newDeflater(wbits, level, takeover)
			for i, m := range msgs {
				d.setLevel(int((int(lv)+5*i)%12) - 2)
				comps = append(comps, d.compress(nil, m))
			}
		}
		deflateCheckFlate(t, wbits, takeover, msgs, comps)
		deflateCheckStrict(t, wbits, takeover, msgs, comps)
		for i, c := range comps {
			require.LessOrEqual(t, len(c), len(msgs[i])+5*(len(msgs[i])/65535+1)+1, "message %d grew", i)
		}
	})
}

// ---- benchmarks ------------------------------------------------------------

// BenchmarkDeflate compresses chatty JSON with this encoder and, for
// reference, with compress/flate, reporting bytes on the wire per payload
// byte (wire/payload). With takeover, flate keeps one Writer and flushes
// per message; without, it resets a kept Writer per message (the cheapest
// way flate can make messages independent). held-B is what our deflater
// keeps between messages (a flate.Writer keeps about 1 MB).
func BenchmarkDeflate(b *testing.B) {
	data := []struct {
		name string
		msgs [][]byte
	}{
		{"json200", deflateChatJSON(7, 1000)},
		{"json4k", deflateSnapshotJSON(8, 200)},
	}
	for _, dt := range data {
		for _, takeover := range []bool{true, false} {
			for _, level := range []int{1, -1} {
				b.Run(fmt.Sprintf("%s/takeover=%t/ours/level=%d", dt.name, takeover, level), func(b *testing.B) {
					d := newDeflater(15, level, takeover)
					dst := make([]byte, 0, 16<<10)
					deflateBenchRun(b, dt.msgs, func(m []byte) int { return len(d.compress(dst, m)) })
					b.ReportMetric(float64(d.heldBytes()), "held-B")
				})
				b.Run(fmt.Sprintf("%s/takeover=%t/flate/level=%d", dt.name, takeover, level), func(b *testing.B) {
					var buf bytes.Buffer
					fw, _ := flate.NewWriter(&buf, level)
					deflateBenchRun(b, dt.msgs, func(m []byte) int {
						buf.Reset()
						if !takeover {
							fw.Reset(&buf)
						}
						_, _ = fw.Write(m)
						_ = fw.Flush()
						return buf.Len() - len(deflateTestTail)
					})
				})
			}
		}
	}
}

// deflateBenchRun compresses msgs round robin, compress returning the
// bytes each message takes on the wire.
func deflateBenchRun(b *testing.B, msgs [][]byte, compress func([]byte) int) {
	b.ReportAllocs()
	b.SetBytes(int64(deflateTestTotal(msgs) / len(msgs)))
	// One pass first so the measured loop is in the steady state.
	for _, m := range msgs {
		compress(m)
	}
	b.ResetTimer()
	wire, payload := 0, 0
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		wire += compress(m)
		payload += len(m)
	}
	b.ReportMetric(float64(wire)/float64(payload), "wire/payload")
}
