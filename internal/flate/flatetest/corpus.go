package flatetest

import (
	"fmt"
	"math/rand"
	"runtime/debug"
	"strings"
)

// Corpora of messages, as the tests and benchmarks of both packages use
// them: deterministic for a seed, so that figures compare across runs.

var words = strings.Fields(`the a to and of in is it you that he was for on are with as I his they be
at one have this from or had by hot word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so these her long
make thing see him two has look more day could go come did number sound no most people my over know water
than call first who may down side been now find any new work part take get place made live where after back
little only round man year came show every good me give our under name very through just form sentence great
think say help low line differ turn cause much mean before move right boy old too same tell does set three
want air well also play small end put home read hand port large spell add even land here must big high such
follow act why ask men change went light kind off need house picture try us again animal point mother world`)

var names = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
	"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne"}

// sentence returns n random words.
func sentence(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(words[r.Intn(len(words))])
	}
	return sb.String()
}

// ChatJSON returns n chat messages of about 200 bytes, as a chat or
// notification service sends them: the same keys every time, a few users
// and channels, fresh ids, times and text.
func ChatJSON(seed int64, n int) [][]byte {
	r := rand.New(rand.NewSource(seed))
	channels := []string{"general", "random", "engineering", "support", "announcements"}
	ts := int64(1714567890123)
	out := make([][]byte, n)
	for i := range out {
		ts += int64(r.Intn(5000))
		u := r.Intn(len(names))
		out[i] = []byte(fmt.Sprintf(`{"type":"message","id":"msg_%08x","channel":"%s","user":{"id":%d,"name":"%s"},"text":"%s","ts":%d,"edited":%t,"reactions":%d}`,
			r.Uint32(), channels[r.Intn(len(channels))], 1000+u, names[u], sentence(r, 3+r.Intn(8)), ts, r.Intn(10) == 0, r.Intn(4)))
	}
	return out
}

// SnapshotJSON returns n state updates of about 4 KiB: a page of
// items from a catalogue, with prices, stock and times that change.
func SnapshotJSON(seed int64, n int) [][]byte {
	r := rand.New(rand.NewSource(seed))
	type item struct {
		name  string
		price float64
		tags  [2]string
	}
	statuses := []string{"in_stock", "low_stock", "backorder", "discontinued"}
	catalogue := make([]item, 400)
	for i := range catalogue {
		catalogue[i] = item{name: sentence(r, 2+r.Intn(3)), price: float64(100+r.Intn(50000)) / 100,
			tags: [2]string{words[r.Intn(40)], words[r.Intn(40)]}}
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

// Random returns n random bytes, the same for the same seed.
func Random(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// Text returns n bytes of sentences of common English words, the same for
// the same seed.
func Text(seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed))
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(sentence(r, 5+r.Intn(10)))
		sb.WriteString(".\n")
	}
	return []byte(sb.String()[:n])
}

// TotalLen returns the total length of bs.
func TotalLen(bs [][]byte) int {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return n
}

// RaceEnabled reports whether the test binary was built with -race, under
// which heap, stack and allocation figures mean little and the encoder's
// loops run some twenty times slower.
func RaceEnabled() bool {
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
