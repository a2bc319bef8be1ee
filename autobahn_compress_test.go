package websocket

// The Autobahn|Testsuite permessage-deflate cases, 12.* and 13.* (the
// suite's case12_x_x.py), replayed on the scripted peer of
// autobahn_cases_test.go against our server and our client.
//
// Every case is one conversation: the fuzzer sends messages of one size,
// consecutive slices of a test corpus (wrapping around at its end), each
// compressed and, with an auto-fragment size, cut into frames of that many
// compressed bytes; it sends the next message once the echo of the last
// has come back, and closes with 1000 after the last echo. 12.x.y is the
// suite's default offer on five corpora; 13.x.y is the JSON corpus under
// seven offer and accept combinations; y walks the suite's table of
// message and fragment sizes.
//
// Where the replay departs from the suite:
//   - The suite sends 1000 messages per case. The replay sends fewer
//     (deflateMessageCount): up to deflateMaxCount, about deflateBudget bytes per case,
//     so that messages of up to 16 KiB are sent at least twice and context
//     takeover crosses message boundaries, and the larger ones once. Under
//     -race on two cores the scripted peer and the library together move
//     about 1 MB/s of compressed traffic, and the families must run in
//     seconds.
//   - The suite's corpora (a JSON file, the Lena bitmap, Goethe's Faust, an
//     HTML file and a PDF) are not copied here: suiteCorpora synthesizes
//     deterministic stand-ins of the same kind and size. The text ones
//     are ASCII, since the suite cuts its messages at any byte.
//   - The suite compresses at zlib's level 6, the scripted peer at
//     compress/flate's level 1 (see suiteDeflater).
//   - The suite only compares the echo. The scripted peer also checks
//     what RFC 7692 asks of the peer under test, inflating on its own
//     (compress/flate, and internal/flate/flatetest's Inflater, never the
//     library's code): a Sec-WebSocket-Extensions response that the offer
//     allows; RSV1 on the first frame of a compressed message and nowhere
//     else; messages that inflate with an empty dictionary when the peer
//     under test agreed to no context takeover; no back-reference beyond
//     the window agreed with server_max_window_bits or
//     client_max_window_bits. It also checks the library's threshold: a
//     message is echoed compressed exactly when it is at least
//     CompressionOptions.Threshold bytes long.
//   - 13.* also runs under CompressionOptions other than the defaults of
//     autobahn/server and autobahn/client, so that the options reach the
//     wire; to bound the time, only with messages of up to deflateBriefSize
//     bytes.
//
// The suite speaks permessage-deflate as the Autobahn library it runs on
// (0.10) does: every offer carries client_no_context_takeover and
// client_max_window_bits (without a value), window sizes 8 to 15 are
// allowed both ways, and an offer whose client_max_window_bits has a value
// is refused.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

const (
	// deflateMaxCount is the most messages a case sends (the suite: 1000).
	deflateMaxCount = 12
	// deflateBudget is about how many payload bytes a case with large
	// messages sends.
	deflateBudget = 32 << 10
	// deflateBriefSize is the largest message of the cases that run under
	// the other CompressionOptions.
	deflateBriefSize = 8 << 10
	// largestWindowBits is the largest window, 32 KiB, as a base-2 logarithm.
	largestWindowBits = 15
)

// deflateMessageCount is how many messages of n bytes a case sends.
func deflateMessageCount(n int) int {
	return min(deflateMaxCount, max(1, deflateBudget/n))
}

// Test corpora.

// suiteCorpus stands in for one of the suite's test files: same kind (text or
// binary message, and the kind of content) and same size, built on first
// use from a fixed seed.
type suiteCorpus struct {
	desc   string
	binary bool
	size   int
	gen    func(r *rand.Rand, n int) []byte

	once sync.Once
	data []byte
}

func (c *suiteCorpus) op() byte {
	if c.binary {
		return wireOpBinary
	}
	return wireOpText
}

func (c *suiteCorpus) bytes() []byte {
	c.once.Do(func() {
		r := rand.New(rand.NewPCG(uint64(c.size), 0x6175746f6261686e))
		c.data = c.gen(r, c.size)[:c.size]
	})
	return c.data
}

// suiteCorpora are the 12.1 to 12.5 corpora, in the suite's order (that of its
// reports); 13.* uses the first. The sizes are those of the suite's files.
var suiteCorpora = []*suiteCorpus{
	{desc: "Large JSON data file (utf8)", size: 194237, gen: genJSON},
	{desc: "Lena Picture, Bitmap 512x512 bw (binary)", binary: true, size: 263222, gen: genBitmap},
	{desc: "Human readable text, Goethe's Faust I (German) (binary)", binary: true, size: 222218, gen: genVerse},
	{desc: "Large HTML file (utf8)", size: 83108, gen: genHTML},
	{desc: "A larger PDF (binary)", binary: true, size: 1042328, gen: genPDF},
}

var englishWords = strings.Fields(`the of and to in is that for it as with was on be by at this
	from or an are not have which but all they were one their there been has more when will
	would who so no time some could them into only other new these than then now its also
	over after first most such where through back years much before good well state world
	network message server client frame buffer window stream value record account status`)

var germanWords = strings.Fields(`und die der ich nicht das zu sich mit ein es du so auf ist
	mir mich den dem wie was an sie er wir im nur auch noch dich wohl doch mein dein wenn
	ihr schon kann soll muss will hier dort Herz Geist Welt Nacht Tag Licht Himmel Erde
	Hölle Natur Kraft Seele Leben Liebe Blut Glück Traum Stunde Zeit Wort Tat Sinn Gott
	Teufel Mädchen Knabe Mutter Bruder Schüler Doktor Meister Hexe Engel Gretchen schön
	süß groß klein alt jung müde fröhlich würdig möchte könnte wüsste fühlen sehen hören
	Grüße Blüte Fülle Wünsche Schöne Bücher Gärten Tür Schlüssel Brücke über für`)

var faustSpeakers = []string{"FAUST", "MEPHISTOPHELES", "MARGARETE", "WAGNER", "MARTHE", "SCHÜLER", "CHOR DER ENGEL", "DIREKTOR"}

func pickWord(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

// genJSON: an array of records with recurring keys and varying values,
// the kind of data whose repetitions context takeover pays for.
func genJSON(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("[\n")
	for id := 0; b.Len() < n; id++ {
		fmt.Fprintf(&b, `  {"id": %d, "guid": "%08x-%04x-%04x-%012x", "isActive": %t, "balance": "$%d,%03d.%02d", `,
			id, r.Uint32(), r.IntN(1<<16), r.IntN(1<<16), r.Uint64()>>16, r.IntN(2) == 0, r.IntN(10), r.IntN(1000), r.IntN(100))
		fmt.Fprintf(&b, `"age": %d, "name": "%s %s", "email": "%s.%s@example.com", "latitude": %.6f, "longitude": %.6f, `,
			18+r.IntN(60), pickWord(r, englishWords), pickWord(r, englishWords), pickWord(r, englishWords), pickWord(r, englishWords),
			r.Float64()*180-90, r.Float64()*360-180)
		b.WriteString(`"tags": [`)
		for i := 0; i < 3+r.IntN(4); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", pickWord(r, englishWords))
		}
		b.WriteString(`], "about": "`)
		for i := 0; i < 8+r.IntN(24); i++ {
			b.WriteString(pickWord(r, englishWords) + " ")
		}
		b.WriteString("\"},\n")
	}
	return b.Bytes()
}

// genBitmap: an 8-bit greyscale BMP of 512x512 pixels, a smooth image
// with some noise.
func genBitmap(r *rand.Rand, n int) []byte {
	const w, h, hdr = 512, 512, 14 + 40 + 256*4
	b := make([]byte, 0, hdr+w*h)
	le32 := func(v int) { b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	le16 := func(v int) { b = append(b, byte(v), byte(v>>8)) }
	b = append(b, 'B', 'M')
	le32(hdr + w*h)
	le32(0)
	le32(hdr)
	le32(40)
	le32(w)
	le32(h)
	le16(1)
	le16(8)
	le32(0)
	le32(w * h)
	le32(2835)
	le32(2835)
	le32(256)
	le32(256)
	for i := 0; i < 256; i++ {
		b = append(b, byte(i), byte(i), byte(i), 0)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 128 + 70*math.Sin(float64(x)/37)*math.Cos(float64(y)/23) + 40*math.Sin(float64(x+2*y)/71) + float64(r.IntN(13)-6)
			b = append(b, byte(min(255, max(0, v))))
		}
	}
	return b
}

// genVerse: German verse drama, UTF-8 with umlauts (the suite sends it as
// binary messages, so cuts inside a character do not matter).
func genVerse(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(pickWord(r, faustSpeakers) + ":\n")
		for l := 0; l < 2+r.IntN(6); l++ {
			words := 4 + r.IntN(5)
			for i := 0; i < words; i++ {
				word := pickWord(r, germanWords)
				if i == 0 {
					word = strings.ToUpper(word[:1]) + word[1:]
				}
				b.WriteString(word)
				if i < words-1 {
					b.WriteByte(' ')
				}
			}
			b.WriteString([]string{",", ".", "!", "?", ";", ""}[r.IntN(6)] + "\n")
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// genHTML: markup-heavy HTML.
func genHTML(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Index</title>\n" +
		"<link rel=\"stylesheet\" href=\"/static/style.css\"></head>\n<body>\n<div class=\"container\">\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<div class=\"row item-%d\">\n  <h2 id=\"section-%d\">%s %s</h2>\n  <p class=\"lead\">", i%7, i, pickWord(r, englishWords), pickWord(r, englishWords))
		for j := 0; j < 10+r.IntN(30); j++ {
			b.WriteString(pickWord(r, englishWords) + " ")
		}
		fmt.Fprintf(&b, "</p>\n  <a href=\"/%s/%d.html\" class=\"btn btn-default\">%s</a>\n</div>\n", pickWord(r, englishWords), r.IntN(10000), pickWord(r, englishWords))
	}
	return b.Bytes()
}

// genPDF: a PDF whose bulk is compressed streams, nearly incompressible.
func genPDF(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	for obj := 1; b.Len() < n; obj++ {
		if obj%3 == 0 {
			fmt.Fprintf(&b, "%d 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R /Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n", obj, obj+1)
			continue
		}
		k := 1000 + r.IntN(20000)
		fmt.Fprintf(&b, "%d 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n", obj, k)
		for i := 0; i < k; i++ {
			b.WriteByte(byte(r.Uint32()))
		}
		b.WriteString("\nendstream\nendobj\n")
	}
	return b.Bytes()
}

// The cases.

// deflateAsk is what one side asks of the other in the suite's terms: no
// context takeover, and a window size (0: none). An offer's asks the server
// (PerMessageDeflateOffer's requestNoContextTakeover and
// requestMaxWindowBits); an accept's asks the client
// (PerMessageDeflateOfferAccept's).
type deflateAsk struct {
	noContextTakeover bool
	maxWindowBits     int
}

// deflateParamSets are the suite's DEFLATE_PARAMS, 13.1 to 13.7: the server's
// accept (the asks it tries in turn, each against every offer) and the
// client's offers. 12.* uses the first.
var deflateParamSets = []struct{ accept, offers []deflateAsk }{
	{accept: []deflateAsk{{false, 0}}, offers: []deflateAsk{{false, 0}}},
	{accept: []deflateAsk{{true, 0}}, offers: []deflateAsk{{true, 0}}},
	{accept: []deflateAsk{{false, 8}}, offers: []deflateAsk{{false, 8}}},
	{accept: []deflateAsk{{false, 15}}, offers: []deflateAsk{{false, 15}}},
	{accept: []deflateAsk{{true, 8}}, offers: []deflateAsk{{true, 8}}},
	{accept: []deflateAsk{{true, 15}}, offers: []deflateAsk{{true, 15}}},
	{accept: []deflateAsk{{true, 8}, {true, 0}, {false, 0}}, offers: []deflateAsk{{true, 8}, {true, 0}, {false, 0}}},
}

// deflateSizes is the suite's MSG_SIZES: message size and auto-fragment size
// (0: one frame per message).
var deflateSizes = []struct{ size, frag int }{
	{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
	{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256},
	{131072, 1024}, {131072, 4096}, {131072, 32768},
}

type deflateCase struct {
	id     string
	corpus *suiteCorpus
	size   int
	frag   int
	count  int
	params int // index into deflateParamSets
}

func deflateCases() []deflateCase {
	var cs []deflateCase
	add := func(group string, corpus *suiteCorpus, params int) {
		for i, s := range deflateSizes {
			cs = append(cs, deflateCase{
				id:     fmt.Sprintf("%s.%d", group, i+1),
				corpus: corpus,
				size:   s.size,
				frag:   s.frag,
				count:  deflateMessageCount(s.size),
				params: params,
			})
		}
	}
	for j, corpus := range suiteCorpora {
		add(fmt.Sprintf("12.%d", j+1), corpus, 0)
	}
	for j := range deflateParamSets {
		add(fmt.Sprintf("13.%d", j+1), suiteCorpora[0], j)
	}
	return cs
}

// messages returns the case's messages, as the suite's sendOne cuts them.
func (c deflateCase) messages() [][]byte {
	data := c.corpus.bytes()
	msgs := make([][]byte, c.count)
	ptr := 0
	for i := range msgs {
		end := (ptr + c.size) % len(data)
		if end > ptr {
			msgs[i] = data[ptr:end]
		} else {
			msgs[i] = append(append([]byte(nil), data[ptr:]...), data[:end]...)
		}
		ptr = end
	}
	return msgs
}

// offerHeader is the suite's Sec-WebSocket-Extensions offer for offers.
func offerHeader(offers []deflateAsk) string {
	elems := make([]string, len(offers))
	for i, o := range offers {
		s := "permessage-deflate; client_no_context_takeover; client_max_window_bits"
		if o.noContextTakeover {
			s += "; server_no_context_takeover"
		}
		if o.maxWindowBits != 0 {
			s += fmt.Sprintf("; server_max_window_bits=%d", o.maxWindowBits)
		}
		elems[i] = s
	}
	return strings.Join(elems, ", ")
}

// suiteAccept is the suite's server answering offers, a client's
// Sec-WebSocket-Extensions header: for each ask of accept in turn, the first
// permessage-deflate offer that allows it is accepted. ok is false when the
// suite declines compression (the case is then "unimplemented").
func suiteAccept(accept []deflateAsk, header string) (response string, ok bool, err error) {
	offers, err := parsePMDElements(header, false)
	if err != nil {
		return "", false, err
	}
	for _, o := range offers {
		if o.hasClientBits && o.clientBits != 0 {
			// Autobahn 0.10 takes client_max_window_bits as a flag only.
			return "", false, fmt.Errorf("the suite refuses client_max_window_bits=%d in an offer", o.clientBits)
		}
	}
	for _, ask := range accept {
		for _, o := range offers {
			// Autobahn 0.10 takes every offer to accept no context
			// takeover, and a window ask only with client_max_window_bits.
			if ask.maxWindowBits != 0 && !o.hasClientBits {
				continue
			}
			r := "permessage-deflate"
			if o.serverNoCT {
				r += "; server_no_context_takeover"
			}
			if o.serverBits != 0 {
				r += fmt.Sprintf("; server_max_window_bits=%d", o.serverBits)
			}
			if ask.noContextTakeover {
				r += "; client_no_context_takeover"
			}
			if ask.maxWindowBits != 0 {
				r += fmt.Sprintf("; client_max_window_bits=%d", ask.maxWindowBits)
			}
			return r, true, nil
		}
	}
	return "", false, nil
}

// pmdElement is one permessage-deflate element of an offer or a response.
type pmdElement struct {
	serverNoCT    bool
	clientNoCT    bool
	serverBits    int // 0: absent
	hasClientBits bool
	clientBits    int // 0: absent, or present without a value
}

// parsePMDElements parses a Sec-WebSocket-Extensions value made of
// permessage-deflate elements only, with RFC 7692's rules for parameters
// (section 7.1): known, not repeated, values where due and only there, and
// window sizes 8 to 15 written without leading zeros. In an offer
// client_max_window_bits may go without a value, in a response it may not.
func parsePMDElements(header string, response bool) ([]pmdElement, error) {
	var out []pmdElement
	for _, elem := range strings.Split(header, ",") {
		parts := strings.Split(elem, ";")
		if name := strings.TrimSpace(parts[0]); name != "permessage-deflate" {
			return nil, fmt.Errorf("extension %q", name)
		}
		var w pmdElement
		seen := map[string]bool{}
		for _, param := range parts[1:] {
			name, value, hasValue := strings.Cut(strings.TrimSpace(param), "=")
			name = strings.TrimSpace(name)
			value = strings.TrimSpace(value)
			if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if seen[name] {
				return nil, fmt.Errorf("parameter %s repeated", name)
			}
			seen[name] = true
			var err error
			switch name {
			case "server_no_context_takeover", "client_no_context_takeover":
				if hasValue {
					return nil, fmt.Errorf("parameter %s with a value", name)
				}
				if name[0] == 's' {
					w.serverNoCT = true
				} else {
					w.clientNoCT = true
				}
			case "server_max_window_bits":
				w.serverBits, err = parseWindowBits(name, value, hasValue)
			case "client_max_window_bits":
				w.hasClientBits = true
				if hasValue || response {
					w.clientBits, err = parseWindowBits(name, value, hasValue)
				}
			default:
				return nil, fmt.Errorf("unknown parameter %q", name)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, w)
	}
	return out, nil
}

func parseWindowBits(name, value string, hasValue bool) (int, error) {
	n, err := strconv.Atoi(value)
	if !hasValue || err != nil || n < 8 || n > largestWindowBits || strconv.Itoa(n) != value {
		return 0, fmt.Errorf("parameter %s needs a window size 8 to 15, got %q", name, value)
	}
	return n, nil
}

// checkPMDResponse checks that r accepts one of offers as RFC 7692
// section 7.1 allows: granting server_no_context_takeover and
// server_max_window_bits (no larger) when asked, and sending
// client_max_window_bits only to an offer that has it, no larger than its
// value. The server may add the no-takeover parameters and
// server_max_window_bits on its own.
func checkPMDResponse(offers []pmdElement, r pmdElement) error {
	for _, o := range offers {
		switch {
		case o.serverNoCT && !r.serverNoCT:
		case o.serverBits != 0 && (r.serverBits == 0 || r.serverBits > o.serverBits):
		case r.hasClientBits && (!o.hasClientBits || o.clientBits != 0 && r.clientBits > o.clientBits):
		default:
			return nil
		}
	}
	return errors.New("the response accepts none of the offers as RFC 7692 section 7.1 allows")
}

// effectiveBits returns a window size, 15 for 0 (absent).
func effectiveBits(bits int) int {
	if bits == 0 {
		return largestWindowBits
	}
	return bits
}

// deflateDirection is how one direction compresses: with context takeover or not,
// and within which window.
type deflateDirection struct {
	takeover bool
	bits     int
}

// Running a case.

// serverDeflateVariant is an Upgrader configuration the families run
// against, with the Sec-WebSocket-Extensions response expected for each
// of the suite's offers (13.1 to 13.7; 12.* makes 13.1's offer): the
// library's choice among those RFC 7692 allows, which checkPMDResponse
// checks independently.
type serverDeflateVariant struct {
	name      string
	opts      CompressionOptions
	brief     bool // 13.* only, messages up to deflateBriefSize
	responses [7]string
}

var serverDeflateVariants = []serverDeflateVariant{
	{
		// autobahn/server's configuration.
		name: "default",
		responses: [7]string{
			"permessage-deflate; client_no_context_takeover",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
		},
	},
	{
		// The server never takes over and limits the client's window;
		// the scripted client then compresses within 512 bytes.
		name:  "server-no-takeover,client-window-9,level-6,threshold-none",
		opts:  CompressionOptions{ServerNoContextTakeover: true, ClientMaxWindowBits: 9, Level: -1, Threshold: -1},
		brief: true,
		responses: [7]string{
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=9",
		},
	},
	{
		// A server window of 2 KiB with context takeover, lowered
		// further by the offers that ask for 8.
		name:  "server-window-11,level-9",
		opts:  CompressionOptions{ServerMaxWindowBits: 11, Level: 9},
		brief: true,
		responses: [7]string{
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11",
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
			"permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11",
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
		},
	},
}

// clientDeflateVariant is a Dialer configuration the families run against,
// with the offer it must make. The suite's server answers it as the case
// says (suiteAccept).
type clientDeflateVariant struct {
	name  string
	opts  CompressionOptions
	brief bool
	offer string
}

var clientDeflateVariants = []clientDeflateVariant{
	// autobahn/client's configuration.
	{name: "default", offer: "permessage-deflate; client_max_window_bits"},
	{
		// The client asks for a server that never takes over and keeps
		// within 1 KiB; the scripted server complies.
		name:  "server-no-takeover,server-window-10,level-9,threshold-none",
		opts:  CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 10, Level: 9, Threshold: -1},
		brief: true,
		offer: "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
	},
	{
		// The client promises no context takeover: it must keep the
		// promise even where the suite's response does not ask for it.
		name:  "client-no-takeover,level-6",
		opts:  CompressionOptions{ClientNoContextTakeover: true, Level: -1},
		brief: true,
		offer: "permessage-deflate; client_no_context_takeover; client_max_window_bits",
	},
}

// deflateBriefOnly reports whether c is left out of a brief run: the 12.*
// cases, and messages over deflateBriefSize. Brief variants always leave
// them out; the default variants leave them out under -short.
func deflateBriefOnly(c deflateCase) bool {
	return strings.HasPrefix(c.id, "12.") || c.size > deflateBriefSize
}

// skipDeflateUnderShort is the case a -short run leaves out of a default variant.
func skipDeflateUnderShort(t *testing.T) {
	t.Skip("-short: runs the 13.* cases of up to 8 KiB messages only; the full permessage-deflate replay runs without -short")
}

// effectiveThreshold is the size from which the peer under test compresses.
func effectiveThreshold(o CompressionOptions) int {
	switch {
	case o.Threshold < 0:
		return 0
	case o.Threshold == 0:
		return 64
	}
	return o.Threshold
}

// runDeflateCases runs every case against every variant, as parallel
// subtests named variant/case; describe gives a variant's name and whether
// it runs only the cases with brief messages. Under -short the cases with
// long messages are skipped.
func runDeflateCases[V any](t *testing.T, variants []V, describe func(V) (name string, brief bool), run func(*testing.T, V, deflateCase)) {
	for _, v := range variants {
		name, brief := describe(v)
		t.Run(name, func(t *testing.T) {
			for _, c := range deflateCases() {
				if deflateBriefOnly(c) {
					if brief {
						continue
					}
					if testing.Short() {
						t.Run(c.id, skipDeflateUnderShort)
						continue
					}
				}
				t.Run(c.id, func(t *testing.T) {
					t.Parallel()
					run(t, v, c)
				})
			}
		})
	}
}

// TestAutobahnServerDeflate replays 12.* and 13.* against our server, the
// scripted peer being the suite's client.
func TestAutobahnServerDeflate(t *testing.T) {
	t.Parallel()
	runDeflateCases(t, serverDeflateVariants, func(v serverDeflateVariant) (string, bool) { return v.name, v.brief }, serverDeflateCase(startOurServer))
}

// TestAutobahnServerDeflateEngine replays the same cases against an Engine,
// which gathers each compressed message and inflates it whole.
func TestAutobahnServerDeflateEngine(t *testing.T) {
	t.Parallel()
	runDeflateCases(t, serverDeflateVariants, func(v serverDeflateVariant) (string, bool) { return v.name, v.brief }, serverDeflateCase(startOurEngine))
}

// serverDeflateCase returns the runner of one case against the echo server
// that start serves.
func serverDeflateCase(start func(*testing.T, Upgrader) (*httptest.Server, <-chan error)) func(*testing.T, serverDeflateVariant, deflateCase) {
	return func(t *testing.T, v serverDeflateVariant, c deflateCase) {
		runServerDeflateCase(t, start, v, c)
	}
}

func runServerDeflateCase(t *testing.T, start func(*testing.T, Upgrader) (*httptest.Server, <-chan error), v serverDeflateVariant, c deflateCase) {
	runServerDeflateCaseOn(t, func(t *testing.T, up Upgrader, offer string) (net.Conn, *bufio.Reader, *http.Response, <-chan error) {
		srv, errc := start(t, up)
		nc, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), testWait)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		br, resp := sendClientHandshakeOffer(t, nc, srv.Listener.Addr().String(), offer)
		return nc, br, resp, errc
	}, v, c)
}

// deflateOpener serves up, opens a WebSocket to it offering offer, and
// returns the connection, the reader to go on with, the handshake's
// response and the channel the server's echo loop reports its end on.
type deflateOpener func(t *testing.T, up Upgrader, offer string) (net.Conn, *bufio.Reader, *http.Response, <-chan error)

// runServerDeflateCaseOn runs case c against the server variant v opened
// by open.
func runServerDeflateCaseOn(t *testing.T, open deflateOpener, v serverDeflateVariant, c deflateCase) {
	offers := deflateParamSets[c.params].offers
	nc, br, resp, errc := open(t, Upgrader{
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: true,
		Compression:       v.opts,
	}, offerHeader(offers))

	exts := resp.Header.Values("Sec-WebSocket-Extensions")
	require.Equal(t, []string{v.responses[c.params]}, exts, "response to the offer %q", offerHeader(offers))
	offered, err := parsePMDElements(offerHeader(offers), false)
	require.NoError(t, err)
	rs, err := parsePMDElements(exts[0], true)
	require.NoError(t, err, "response %q", exts[0])
	require.Len(t, rs, 1, "response %q", exts[0])
	r := rs[0]
	require.NoError(t, checkPMDResponse(offered, r), "response %q", exts[0])

	// The suite's client compresses as the response tells it; the server
	// as it said it would.
	own := deflateDirection{takeover: !r.clientNoCT, bits: effectiveBits(r.clientBits)}
	theirs := deflateDirection{takeover: !r.serverNoCT, bits: effectiveBits(r.serverBits)}
	p := newScriptedPeer(t, nc, br, true)
	p.deflate = true
	p.runPMD(c, own, theirs, effectiveThreshold(v.opts))
	checkCaseEnd(t, closesNormally, nc, errc)
}

// TestAutobahnClientDeflate replays 12.* and 13.* against our client, the
// scripted peer being the suite's server.
func TestAutobahnClientDeflate(t *testing.T) {
	t.Parallel()
	runDeflateCases(t, clientDeflateVariants, func(v clientDeflateVariant) (string, bool) { return v.name, v.brief }, runClientDeflateCase)
}

func runClientDeflateCase(t *testing.T, v clientDeflateVariant, c deflateCase) {
	nc, errc := acceptOurClient(t, Dialer{HandshakeTimeout: testWait, EnableCompression: true, Compression: v.opts})
	defer nc.Close()
	var own, theirs deflateDirection
	br := answerHandshakeWith(t, nc, func(req *http.Request) string {
		exts := req.Header.Values("Sec-WebSocket-Extensions")
		require.Equal(t, []string{v.offer}, exts, "offer")
		response, ok, err := suiteAccept(deflateParamSets[c.params].accept, exts[0])
		require.NoError(t, err)
		require.True(t, ok, "the suite declines the offer %q", exts[0])
		offers, err := parsePMDElements(exts[0], false)
		require.NoError(t, err)
		rs, err := parsePMDElements(response, true)
		require.NoError(t, err)
		o, r := offers[0], rs[0]
		// The suite's server compresses as its response says. The
		// client resets when asked, or when its offer promised it
		// (RFC 7692 section 7.1.1.2), and keeps within the smaller of
		// the window it declared and the one it was given.
		own = deflateDirection{takeover: !r.serverNoCT, bits: effectiveBits(r.serverBits)}
		theirs = deflateDirection{takeover: !r.clientNoCT && !o.clientNoCT, bits: min(effectiveBits(r.clientBits), effectiveBits(o.clientBits))}
		return response
	})
	p := newScriptedPeer(t, nc, br, false)
	p.deflate = true
	p.runPMD(c, own, theirs, effectiveThreshold(v.opts))
	checkCaseEnd(t, closesNormally, nc, errc)
}

// runPMD plays the suite's sendOne/onMessage loop: each message goes out
// compressed as own says, and its echo must come back as theirs allows,
// compressed exactly when it is at least threshold bytes long.
func (p *scriptedPeer) runPMD(c deflateCase, own, theirs deflateDirection, threshold int) {
	t := p.t
	msgs := c.messages()
	// Everything sent is encoded before the reader starts, as run does.
	enc := newSuiteDeflater(own)
	wires := make([][]byte, len(msgs))
	for i, m := range msgs {
		comp, err := enc.compress(m)
		require.NoError(t, err)
		wires[i] = p.pmdWire(c.corpus.op(), comp, c.frag)
	}
	closeWire := p.wire([]scriptFrame{closeFrame(CloseNormalClosure, "")})
	p.start()

	in := &suiteInflater{dir: theirs}
	for i, m := range msgs {
		p.write(wires[i], 0)
		if err := p.wantPMDEcho(c.corpus.op(), m, in, len(m) >= threshold); err != nil {
			t.Errorf("case %s failed at message %d of %d (%d bytes): %v", c.id, i+1, len(msgs), len(m), err)
			return
		}
	}
	p.finish(closesNormally, closeWire)
}

// pmdWire frames a compressed message as the suite does: one frame, or
// with frag > 0 frames of frag compressed bytes; RSV1 on the first.
func (p *scriptedPeer) pmdWire(op byte, comp []byte, frag int) []byte {
	if frag <= 0 || len(comp) <= frag {
		return p.appendFrame(nil, true, 4, op, comp)
	}
	var b []byte
	for i := 0; i < len(comp); i += frag {
		j := min(i+frag, len(comp))
		if i == 0 {
			b = p.appendFrame(b, j == len(comp), 4, op, comp[i:j])
		} else {
			b = p.appendFrame(b, j == len(comp), 0, wireOpCont, comp[i:j])
		}
	}
	return b
}

// wantPMDEcho checks that the next event is the echo of want with opcode
// op, compressed or not as wantCompressed says, and within what in allows.
// readLoop has already checked that RSV1 came on the first frame only.
func (p *scriptedPeer) wantPMDEcho(op byte, want []byte, in *suiteInflater, wantCompressed bool) error {
	ev := p.next()
	if ev.err != nil || ev.op != op {
		return fmt.Errorf("expected the echo, opcode %d, got %v", op, ev)
	}
	if ev.compressed != wantCompressed {
		return fmt.Errorf("echo compressed (RSV1): %v, want %v", ev.compressed, wantCompressed)
	}
	got := ev.payload
	if ev.compressed {
		var err error
		if got, err = in.inflate(ev.payload); err != nil {
			return err
		}
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		return fmt.Errorf("echo differs from the message sent: got %d bytes, want %d, first difference at byte %d", len(got), len(want), i)
	}
	return nil
}

// suiteDeflater compresses the scripted peer's messages with compress/flate:
// context takeover keeps one writer across messages, no takeover resets it
// for each. flate's window is 32 KiB; within a smaller one every 2^bits
// bytes of input start a new stream, so that no back-reference reaches
// further. The suite compresses at zlib's default level, 6; the replay at
// 1, which makes the same kinds of blocks and references for the peer under
// test to inflate at a fraction of the cost under -race (and whose reset
// does not clear 640 KiB of tables).
type suiteDeflater struct {
	dir deflateDirection
	buf bytes.Buffer
	w   *flate.Writer
}

func newSuiteDeflater(dir deflateDirection) *suiteDeflater {
	d := &suiteDeflater{dir: dir}
	d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	return d
}

// compress returns msg as a permessage-deflate payload.
func (d *suiteDeflater) compress(msg []byte) ([]byte, error) {
	d.buf.Reset()
	step := len(msg)
	if d.dir.bits < largestWindowBits {
		step = 1 << d.dir.bits
	} else if !d.dir.takeover {
		d.w.Reset(&d.buf)
	}
	for off := 0; ; {
		if d.dir.bits < largestWindowBits {
			d.w.Reset(&d.buf)
		}
		end := min(off+step, len(msg))
		if _, err := d.w.Write(msg[off:end]); err != nil {
			return nil, err
		}
		if err := d.w.Flush(); err != nil {
			return nil, err
		}
		if off = end; off >= len(msg) {
			break
		}
	}
	b := d.buf.Bytes()
	if !bytes.HasSuffix(b, syncFlushTail) {
		return nil, fmt.Errorf("flate output does not end with a sync flush: % x", b[max(0, len(b)-8):])
	}
	return bytes.Clone(b[:len(b)-len(syncFlushTail)]), nil
}

// suiteInflater inflates what the peer under test compressed as dir allows,
// keeping the last 32 KiB of its compressed messages as the dictionary when
// it may take over. A peer that must not take over has each message
// inflated with an empty dictionary, so that a reference into an earlier
// message fails. With a window below 32 KiB each message also goes through
// flatetest.Inflater, whose output must agree with compress/flate's, for
// the longest back-reference.
type suiteInflater struct {
	dir  deflateDirection
	hist []byte
	fr   io.ReadCloser // reused: a new one allocates 40 KiB
}

func (in *suiteInflater) inflate(payload []byte) ([]byte, error) {
	var dict []byte
	if in.dir.takeover {
		dict = in.hist
	}
	src := make([]byte, 0, len(payload)+len(syncFlushTail)+len(emptyFinalBlock))
	src = append(append(append(src, payload...), syncFlushTail...), emptyFinalBlock...)
	if in.fr == nil {
		in.fr = flate.NewReaderDict(bytes.NewReader(src), dict)
	} else if err := in.fr.(flate.Resetter).Reset(bytes.NewReader(src), dict); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(in.fr)
	if err != nil {
		if !in.dir.takeover {
			return nil, fmt.Errorf("the message does not inflate on its own, which no context takeover requires: %w", err)
		}
		return nil, fmt.Errorf("inflating with %d bytes of dictionary: %w", len(dict), err)
	}
	if in.dir.bits < largestWindowBits {
		// The reference is held to DEFLATE's own window only, so that a
		// reference beyond the agreed one is reported as such.
		ref := &flatetest.Inflater{Window: 1 << largestWindowBits, Takeover: true, End: flatetest.EndFinal, Hist: bytes.Clone(dict)}
		out2, err := ref.Inflate(src)
		maxDist := ref.Stats.MaxDist
		switch {
		case err != nil:
			return nil, fmt.Errorf("reference inflater: %w", err)
		case !bytes.Equal(out2, out):
			return nil, errors.New("the reference inflater and compress/flate disagree")
		case maxDist > 1<<in.dir.bits:
			return nil, fmt.Errorf("a back-reference reaches %d bytes back, beyond the agreed window of %d (2^%d)", maxDist, 1<<in.dir.bits, in.dir.bits)
		}
	}
	if in.dir.takeover {
		h := append(in.hist, out...)
		if len(h) > 1<<largestWindowBits {
			h = bytes.Clone(h[len(h)-1<<largestWindowBits:])
		}
		in.hist = h
	}
	return out, nil
}

// TestAutobahnDeflateTable checks the case table against the suite's
// counts and the corpora against the suite's files' kinds and sizes.
func TestAutobahnDeflateTable(t *testing.T) {
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, c := range deflateCases() {
		require.False(t, seen[c.id], "duplicate case %s", c.id)
		seen[c.id] = true
		counts[c.id[:strings.LastIndexByte(c.id, '.')]]++
		assert.GreaterOrEqual(t, c.count, 1, c.id)
		assert.LessOrEqual(t, c.count, deflateMaxCount, c.id)
		if c.size <= 16<<10 {
			assert.GreaterOrEqual(t, c.count, 2, "%s: a takeover needs two messages", c.id)
		}
	}
	want := map[string]int{}
	for _, g := range []string{"12.1", "12.2", "12.3", "12.4", "12.5", "13.1", "13.2", "13.3", "13.4", "13.5", "13.6", "13.7"} {
		want[g] = 18
	}
	assert.Equal(t, want, counts)

	for _, tc := range []struct {
		corpus *suiteCorpus
		binary bool
		size   int
	}{
		{suiteCorpora[0], false, 194237},
		{suiteCorpora[1], true, 263222},
		{suiteCorpora[2], true, 222218},
		{suiteCorpora[3], false, 83108},
		{suiteCorpora[4], true, 1042328},
	} {
		data := tc.corpus.bytes()
		assert.Len(t, data, tc.size, tc.corpus.desc)
		assert.Equal(t, tc.binary, tc.corpus.binary, tc.corpus.desc)
		if !tc.binary {
			// Text messages are cut at any byte: ASCII keeps each cut
			// valid UTF-8.
			for i, b := range data {
				if b >= 0x80 {
					t.Errorf("%s: non-ASCII byte %#x at %d", tc.corpus.desc, b, i)
					break
				}
			}
		}
	}
}

// TestAutobahnDeflateParams checks the suite's offers and accepts as they
// go on the wire.
func TestAutobahnDeflateParams(t *testing.T) {
	tests := []struct {
		params int
		offer  string
		// response of the suite's server to the default Dialer's offer
		response string
	}{
		{0, "permessage-deflate; client_no_context_takeover; client_max_window_bits",
			"permessage-deflate"},
		{1, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover",
			"permessage-deflate; client_no_context_takeover"},
		{2, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
			"permessage-deflate; client_max_window_bits=8"},
		{3, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15",
			"permessage-deflate; client_max_window_bits=15"},
		{4, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8",
			"permessage-deflate; client_no_context_takeover; client_max_window_bits=8"},
		{5, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=15",
			"permessage-deflate; client_no_context_takeover; client_max_window_bits=15"},
		{6, "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, " +
			"permessage-deflate; client_no_context_takeover; client_max_window_bits",
			"permessage-deflate; client_no_context_takeover; client_max_window_bits=8"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("13.%d", tc.params+1), func(t *testing.T) {
			ps := deflateParamSets[tc.params]
			assert.Equal(t, tc.offer, offerHeader(ps.offers))
			_, err := parsePMDElements(tc.offer, false)
			assert.NoError(t, err)
			r, ok, err := suiteAccept(ps.accept, "permessage-deflate; client_max_window_bits")
			require.NoError(t, err)
			require.True(t, ok)
			assert.Equal(t, tc.response, r)
		})
	}

	// Without client_max_window_bits in the offer, the suite cannot ask
	// for a client window and declines where the case needs one.
	_, ok, err := suiteAccept(deflateParamSets[2].accept, "permessage-deflate")
	require.NoError(t, err)
	assert.False(t, ok)
	_, _, err = suiteAccept(deflateParamSets[0].accept, "permessage-deflate; client_max_window_bits=10")
	assert.Error(t, err)

	for _, bad := range []string{
		"permessage-deflate; client_max_window_bits",    // a response needs the value
		"permessage-deflate; server_max_window_bits=08", // leading zero
		"permessage-deflate; server_max_window_bits=16",
		"permessage-deflate; server_max_window_bits",
		"permessage-deflate; server_no_context_takeover=1",
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
		"permessage-deflate; foo",
		"x-webkit-deflate-frame",
	} {
		_, err := parsePMDElements(bad, true)
		assert.Error(t, err, bad)
	}
}

// TestAutobahnDeflatePeer checks the scripted peer's own compression
// against its own checks, and that the checks catch a peer under test that
// keeps its context or oversteps its window.
func TestAutobahnDeflatePeer(t *testing.T) {
	msgs := deflateCase{corpus: suiteCorpora[0], size: 3000, count: 8}.messages()
	tests := []struct {
		name    string
		send    deflateDirection // how the messages are compressed
		check   deflateDirection // what the receiving side allows
		wantErr string           // from the first message that fails, if any
	}{
		{"takeover", deflateDirection{true, 15}, deflateDirection{true, 15}, ""},
		{"no takeover", deflateDirection{false, 15}, deflateDirection{false, 15}, ""},
		{"no takeover received as takeover", deflateDirection{false, 15}, deflateDirection{true, 15}, ""},
		{"window 9", deflateDirection{true, 9}, deflateDirection{true, 9}, ""},
		{"window 8 without takeover", deflateDirection{false, 8}, deflateDirection{false, 8}, ""},
		{"takeover where none was agreed", deflateDirection{true, 15}, deflateDirection{false, 15}, "does not inflate on its own"},
		{"window 15 where 9 was agreed", deflateDirection{true, 15}, deflateDirection{true, 9}, "beyond the agreed window"},
		{"window 10 where 9 was agreed", deflateDirection{true, 10}, deflateDirection{true, 9}, "beyond the agreed window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := newSuiteDeflater(tc.send)
			in := &suiteInflater{dir: tc.check}
			var err error
			for _, m := range msgs {
				var comp, out []byte
				comp, err = enc.compress(m)
				require.NoError(t, err)
				if out, err = in.inflate(comp); err != nil {
					break
				}
				require.True(t, bytes.Equal(m, out), "round trip")
			}
			if tc.wantErr == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.wantErr)
			}
		})
	}
}
