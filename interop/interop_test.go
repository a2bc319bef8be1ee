// Package interop_test checks wsforge against other implementations of
// RFC 6455 and RFC 7692, Python's websockets and Node's ws, run as child
// processes over loopback TCP, in both roles: our Upgrader with the peer as
// client, and our Dialer with the peer as server. The peers echo what they
// receive; see testdata/peer.py for their protocol. A peer that is not
// installed makes its tests skip (see README.md for the install steps).
package interop_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wsforge/websocket"
)

// variant is one configuration of a connection, and what it must
// negotiate.
type variant struct {
	name string
	our  ours
	peer peerConfig
	// want is the Sec-WebSocket-Extensions response, by peer name, or
	// under "" for every peer.
	want map[string]string
	// wantOffer is our Dialer's offer as the peer server received it.
	wantOffer string
	// full adds the message size and ping checks, which do not depend on
	// compression parameters.
	full bool
	// levels has the stress run change our compression level as it goes.
	levels bool
	// closeByPeer has the peer start the closing handshake; else we do.
	closeByPeer bool
	// skip gives, by peer name, why the peer cannot run the variant.
	skip map[string]string
}

func (v variant) wantExt(peer string) string {
	if w, ok := v.want[peer]; ok {
		return w
	}
	return v.want[""]
}

const (
	pmdName = "permessage-deflate"
	py      = "python-websockets"
	node    = "node-ws"
)

// serverVariants run our Upgrader against a peer client.
var serverVariants = []variant{
	{
		name: "plain",
		our:  ours{enable: false},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{"": ""},
		full: true,
	},
	{
		name:        "deflate-defaults",
		our:         ours{enable: true},
		peer:        peerConfig{Deflate: "default"},
		want:        map[string]string{"": pmdName},
		full:        true,
		closeByPeer: true,
	},
	{
		name: "peer-client-no-context-takeover",
		our:  ours{enable: true},
		peer: pmd("server_no_context_takeover", true, "client_no_context_takeover", true),
		want: map[string]string{"": pmdName + "; server_no_context_takeover; client_no_context_takeover"},
	},
	{
		name: "our-server-no-context-takeover",
		our: ours{enable: true, opts: websocket.CompressionOptions{
			ServerNoContextTakeover: true, ClientNoContextTakeover: true,
		}},
		peer:        peerConfig{Deflate: "default"},
		want:        map[string]string{"": pmdName + "; server_no_context_takeover; client_no_context_takeover"},
		closeByPeer: true,
	},
	{
		name: "peer-client-asks-server-window-9",
		our:  ours{enable: true},
		peer: pmd("server_max_window_bits", 9),
		want: map[string]string{"": pmdName + "; server_max_window_bits=9"},
	},
	{
		// zlib inflates with an 8-bit window (it only refuses to deflate
		// with one), and refuses distances beyond its window: a check that
		// our compressor keeps to 256 bytes.
		name:        "peer-client-asks-server-window-8",
		our:         ours{enable: true},
		peer:        pmd("server_max_window_bits", 8),
		want:        map[string]string{"": pmdName + "; server_max_window_bits=8"},
		closeByPeer: true,
	},
	{
		name: "our-server-limits-client-window-9",
		our:  ours{enable: true, opts: websocket.CompressionOptions{ClientMaxWindowBits: 9}},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{"": pmdName + "; client_max_window_bits=9"},
	},
	{
		name: "mixed-level-9-compress-all",
		our: ours{enable: true, opts: websocket.CompressionOptions{
			Level: 9, Threshold: -1, ServerMaxWindowBits: 11, ClientMaxWindowBits: 10,
		}},
		peer:        pmd("client_no_context_takeover", true, "server_max_window_bits", 12),
		want:        map[string]string{"": pmdName + "; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10"},
		levels:      true,
		closeByPeer: true,
	},
}

// clientVariants run our Dialer against a peer server.
var clientVariants = []variant{
	{
		name: "plain",
		our:  ours{enable: false},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{"": ""},
		full: true,
	},
	{
		name: "deflate-defaults",
		our:  ours{enable: true},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{
			py:   pmdName + "; server_max_window_bits=12; client_max_window_bits=12",
			node: pmdName,
		},
		wantOffer:   pmdName + "; client_max_window_bits",
		full:        true,
		closeByPeer: true,
	},
	{
		name: "our-client-no-context-takeover",
		our: ours{enable: true, opts: websocket.CompressionOptions{
			ServerNoContextTakeover: true, ClientNoContextTakeover: true,
		}},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{
			py:   pmdName + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
			node: pmdName + "; server_no_context_takeover; client_no_context_takeover",
		},
		wantOffer: pmdName + "; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
	},
	{
		name:        "peer-server-no-context-takeover",
		our:         ours{enable: true},
		peer:        pmd("server_no_context_takeover", true, "client_no_context_takeover", true),
		want:        map[string]string{"": pmdName + "; server_no_context_takeover; client_no_context_takeover"},
		wantOffer:   pmdName + "; client_max_window_bits",
		closeByPeer: true,
	},
	{
		name: "our-client-asks-server-window-9",
		our:  ours{enable: true, opts: websocket.CompressionOptions{ServerMaxWindowBits: 9}},
		peer: peerConfig{Deflate: "default"},
		want: map[string]string{
			py:   pmdName + "; server_max_window_bits=9; client_max_window_bits=12",
			node: pmdName + "; server_max_window_bits=9",
		},
		wantOffer: pmdName + "; server_max_window_bits=9; client_max_window_bits",
	},
	{
		// Node's zlib deflates with 9 when told 8, and we inflate any
		// distance up to 32 KiB (compression_negotiate.go).
		name:        "our-client-asks-server-window-8",
		our:         ours{enable: true, opts: websocket.CompressionOptions{ServerMaxWindowBits: 8}},
		peer:        peerConfig{Deflate: "default"},
		want:        map[string]string{node: pmdName + "; server_max_window_bits=8"},
		wantOffer:   pmdName + "; server_max_window_bits=8; client_max_window_bits",
		closeByPeer: true,
		skip: map[string]string{
			py: "websockets compresses with zlib, which cannot deflate with an 8-bit window",
		},
	},
	{
		name:      "peer-server-limits-client-window-9",
		our:       ours{enable: true},
		peer:      pmd("client_max_window_bits", 9),
		want:      map[string]string{"": pmdName + "; client_max_window_bits=9"},
		wantOffer: pmdName + "; client_max_window_bits",
	},
	{
		name: "mixed-level-9-compress-all",
		our: ours{enable: true, opts: websocket.CompressionOptions{
			Level: 9, Threshold: -1, ServerNoContextTakeover: true, ClientMaxWindowBits: 10,
		}},
		peer: pmd("client_no_context_takeover", true, "server_max_window_bits", 11),
		want: map[string]string{
			py:   pmdName + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=10",
			node: pmdName + "; server_no_context_takeover; client_max_window_bits=10; client_no_context_takeover; server_max_window_bits=11",
		},
		wantOffer:   pmdName + "; server_no_context_takeover; client_max_window_bits=10",
		levels:      true,
		closeByPeer: true,
	},
}

func TestInterop(t *testing.T) {
	for _, p := range peers {
		p := p
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			p.command(t)
			t.Logf("%s %s", p.name, p.version)
			t.Run("our-server", func(t *testing.T) {
				for _, v := range serverVariants {
					v := v
					t.Run(v.name, func(t *testing.T) {
						run(t, p, v, serveToPeer(t, p, v.our, v.peer), true)
					})
				}
			})
			t.Run("our-client", func(t *testing.T) {
				for _, v := range clientVariants {
					v := v
					t.Run(v.name, func(t *testing.T) {
						if reason := v.skip[p.name]; reason != "" {
							t.Skip(reason)
						}
						e := dialPeer(t, p, v.our, v.peer)
						assert.Equal(t, v.wantOffer, e.open.Offer, "our offer as %s received it", p.name)
						run(t, p, v, e, false)
					})
				}
			})
		})
	}
}

// run checks one connection: negotiation, then messages, then the close.
func run(t *testing.T, p *peer, v variant, e *endpoint, peerIsClient bool) {
	t.Logf("offer %q, response %q, %s's parameters %v", e.open.Offer, e.ext, p.name, e.open.Params)
	require.Equal(t, v.wantExt(p.name), e.ext, "negotiated Sec-WebSocket-Extensions")
	compressed := e.ext != ""
	if compressed {
		require.Len(t, e.open.Params, 1, "%s's view of the negotiated extensions", p.name)
	} else {
		require.Empty(t, e.open.Params, "%s's view of the negotiated extensions", p.name)
	}

	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	r := rand.New(rand.NewSource(int64(h.Sum64())))

	ourRole, peerRole := "client", "server"
	if peerIsClient {
		ourRole, peerRole = peerRole, ourRole
	}
	// The full variants carry the most traffic; the others, whose point
	// is their parameters, a little less, to keep the suite fast under
	// the race detector.
	nChat, nStress := 400, 200
	if v.full {
		nChat, nStress = 1000, 300
	}
	type step struct {
		name string
		run  func(t *testing.T)
	}
	var steps []step
	if v.full {
		steps = append(steps,
			step{"sizes", func(t *testing.T) { e.exchange(t, sizeMessages(r)) }},
			step{"our-pings", func(t *testing.T) { ourPings(t, e) }},
			step{"peer-pings", func(t *testing.T) { peerPings(t, e) }})
	}
	steps = append(steps,
		step{"fragments", func(t *testing.T) { e.exchange(t, fragmentMessages(r)) }},
		step{"chatty-json", func(t *testing.T) {
			chatty(t, e, r, nChat, negotiated(e.ext, ourRole), negotiated(e.ext, peerRole), p.name)
		}})
	if compressed {
		steps = append(steps, step{"takeover-stress", func(t *testing.T) {
			msgs := stressMessages(r, nStress, v.levels)
			raw, written, read := e.exchange(t, msgs)
			t.Logf("%d messages, %d bytes: we wrote %d, the peer wrote %d", len(msgs), raw, written, read)
		}})
	}
	for _, s := range steps {
		// The steps share the connection: after a failure it is gone.
		if !t.Run(s.name, s.run) {
			return
		}
	}
	if v.closeByPeer {
		closeByPeer(t, e)
	} else {
		closeByUs(t, e)
	}
	if peerIsClient {
		e.peer.waitExit(t)
	}
}

// msg is one message of an exchange.
type msg struct {
	typ  int
	data []byte
	// frag > 1 asks the peer to echo the message in that many fragments.
	frag int
	// stream writes the message with NextWriter, piece by piece, so that
	// it leaves in several frames.
	stream bool
	// setLevel changes our compression level to level before the message.
	setLevel bool
	level    int
}

func (m msg) String() string {
	s := fmt.Sprintf("type %d, %d bytes", m.typ, len(m.data))
	if m.frag > 1 {
		s += fmt.Sprintf(", echoed in %d fragments", m.frag)
	}
	if m.stream {
		s += ", streamed"
	}
	if m.setLevel {
		s += fmt.Sprintf(", at level %d", m.level)
	}
	return s
}

// exchange writes msgs from one goroutine while reading their echoes, so
// that both directions carry data at once, as they do in the peer.
func (e *endpoint) exchange(t *testing.T, msgs []msg) (raw, written, read int64) {
	t.Helper()
	w0, r0 := e.nc.written.Load(), e.nc.read.Load()
	errc := make(chan error, 1)
	go func() { errc <- e.writeAll(msgs) }()
	for i, m := range msgs {
		typ, got, err := e.conn.ReadMessage()
		if err == nil && typ != m.typ {
			err = fmt.Errorf("echo has type %d", typ)
		}
		if err == nil && !bytes.Equal(got, m.data) {
			err = fmt.Errorf("echo differs: %s", diff(got, m.data))
		}
		if err != nil {
			e.conn.Close()
			werr := <-errc
			e.fatalf(t, "message %d of %d (%v): %v; writer: %v", i, len(msgs), m, err, werr)
		}
		raw += int64(len(m.data))
	}
	if err := <-errc; err != nil {
		e.fatalf(t, "writer: %v", err)
	}
	return raw, e.nc.written.Load() - w0, e.nc.read.Load() - r0
}

func (e *endpoint) writeAll(msgs []msg) error {
	for _, m := range msgs {
		if m.setLevel {
			if err := e.conn.SetCompressionLevel(m.level); err != nil {
				return err
			}
		}
		if m.frag > 1 {
			if err := e.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("!frag %d", m.frag))); err != nil {
				return err
			}
		}
		if !m.stream {
			if err := e.conn.WriteMessage(m.typ, m.data); err != nil {
				return err
			}
			continue
		}
		w, err := e.conn.NextWriter(m.typ)
		if err != nil {
			return err
		}
		// An odd piece size splits runes between writes.
		for p := m.data; len(p) > 0; {
			n := min(len(p), 1999)
			if _, err := w.Write(p[:n]); err != nil {
				w.Close()
				return err
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// fatalf fails the test after giving the peer a moment to report how the
// connection ended from its side: when the peer failed it, that report
// has the reason, which the close frame it sent does not.
func (e *endpoint) fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	e.conn.Close()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
wait:
	for !e.peer.saw("closed") {
		select {
		case <-e.peer.notify:
		case <-e.peer.exited:
			break wait
		case <-timer.C:
			break wait
		}
	}
	t.Fatalf(format+"\n%s events:\n\t%s", append(args, e.peer.name, strings.Join(e.peer.allSeen(), "\n\t"))...)
}

// diff describes how got differs from want without printing megabytes.
func diff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d, first difference at offset %d", len(got), len(want), i)
}

// sizeMessages has text and binary messages at the sizes where the frame
// length encoding changes, and one of 1 MiB.
func sizeMessages(r *rand.Rand) []msg {
	var msgs []msg
	for _, n := range []int{0, 125, 126, 65535, 65536, 1 << 20} {
		msgs = append(msgs,
			msg{typ: websocket.TextMessage, data: wordText(r, n)},
			msg{typ: websocket.BinaryMessage, data: randomBytes(r, n)})
	}
	return msgs
}

// fragmentMessages are echoed in fragments by the peer, or sent in
// fragments by us. The peers split text between bytes (ws) or characters
// (websockets).
func fragmentMessages(r *rand.Rand) []msg {
	return []msg{
		{typ: websocket.TextMessage, data: wordText(r, 7), frag: 3},
		{typ: websocket.BinaryMessage, data: randomBytes(r, 1000), frag: 4},
		{typ: websocket.TextMessage, data: randomText(r, 3001), frag: 7},
		{typ: websocket.TextMessage, data: wordText(r, 70000), frag: 5},
		{typ: websocket.BinaryMessage, data: randomBytes(r, 100000), frag: 2},
		{typ: websocket.TextMessage, data: randomText(r, 50001), stream: true},
		{typ: websocket.BinaryMessage, data: wordText(r, 100000), stream: true},
		{typ: websocket.TextMessage, data: wordText(r, 40000), stream: true, frag: 3},
	}
}

// chatty sends n JSON chat messages, the traffic permessage-deflate with
// context takeover is for, and checks from the bytes on the wire that each
// direction travels compressed as negotiated (and uncompressed when
// nothing was, so that the check can fail).
func chatty(t *testing.T, e *endpoint, r *rand.Rand, n int, ourSide, peerSide compression, peerName string) {
	msgs := chatMessages(r, n)
	raw, written, read := e.exchange(t, msgs)
	t.Logf("%d messages, %d bytes of JSON: we wrote %d (%.2f), the peer wrote %d (%.2f)",
		len(msgs), raw, written, float64(written)/float64(raw), read, float64(read)/float64(raw))
	peerMax := peerSide.maxRatio()
	if peerName == node && peerSide.on && !peerSide.takeover {
		// Without context takeover ws sends messages under 1 KiB (its
		// threshold option) uncompressed, which most of these are.
		peerMax = 0.99
	}
	for _, c := range []struct {
		who   string
		bytes int64
		side  compression
		max   float64
	}{
		{"our", written, ourSide, ourSide.maxRatio()},
		{"the peer's", read, peerSide, peerMax},
	} {
		if c.side.on {
			assert.Lessf(t, float64(c.bytes)/float64(raw), c.max, "%s messages should travel compressed (%+v)", c.who, c.side)
		} else {
			assert.Greaterf(t, c.bytes, raw, "%s messages should travel uncompressed, with frame headers", c.who)
		}
	}
}

// compression is how one side compresses, as the negotiated response says.
type compression struct {
	on         bool
	takeover   bool
	windowBits int
}

// negotiated reads the compression of side ("server" or "client") from a
// Sec-WebSocket-Extensions response.
func negotiated(ext, side string) compression {
	if ext == "" {
		return compression{}
	}
	c := compression{on: true, takeover: true, windowBits: 15}
	for _, p := range strings.Split(ext, ";")[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case side + "_no_context_takeover":
			c.takeover = false
		case side + "_max_window_bits":
			fmt.Sscan(value, &c.windowBits)
		}
	}
	return c
}

// maxRatio bounds what chatty JSON compressed by c weighs on the wire,
// relative to its size. With context takeover and a window of 1 KiB or
// more, keys and values repeated from earlier messages become
// back-references, which roughly halves the cost again (measured: about
// 0.2 with takeover against 0.5 without, for every peer): a compressor
// that forgot its history would fail the tighter bound.
func (c compression) maxRatio() float64 {
	if c.takeover && c.windowBits >= 10 {
		return 0.35
	}
	return 0.8
}

// stressMessages is n messages of varied sizes and kinds, for context
// takeover to carry state across: JSON, messages under the compression
// threshold, repeats of earlier messages (back-references into the
// history), messages over 32 KiB, incompressible ones, and ones that
// repeat a chunk further back than a small window reaches. Some are echoed
// in fragments, some streamed; with levels our compression level changes
// along the way.
func stressMessages(r *rand.Rand, n int, levels bool) []msg {
	var msgs []msg
	levelList := []int{1, 9, 0, -2, 6, 1, -1, 5}
	for i := 0; i < n; i++ {
		var m msg
		switch k := r.Intn(100); {
		case k < 35:
			m = chatMessages(r, 1)[0]
		case k < 50:
			m = msg{typ: websocket.TextMessage, data: wordText(r, r.Intn(64))}
		case k < 60 && len(msgs) > 0:
			m = msgs[r.Intn(len(msgs))]
		case k < 64:
			m = msg{typ: websocket.TextMessage, data: wordText(r, 33<<10+r.Intn(16<<10))}
		case k < 72:
			m = msg{typ: websocket.BinaryMessage, data: randomBytes(r, 1+r.Intn(8<<10))}
		case k < 74:
			m = msg{typ: websocket.BinaryMessage, data: randomBytes(r, 33<<10+r.Intn(8<<10))}
		case k < 79:
			m = msg{typ: websocket.BinaryMessage, data: farRepeat(r)}
		case k < 92:
			m = msg{typ: websocket.TextMessage, data: randomText(r, 100+r.Intn(4<<10))}
		case k < 96:
			m = msg{typ: websocket.BinaryMessage}
		case k < 99:
			m = msg{typ: websocket.TextMessage, data: wordText(r, 1<<10+r.Intn(20<<10))}
		default:
			m = msg{typ: websocket.TextMessage, data: wordText(r, 64<<10+r.Intn(64<<10))}
		}
		m.frag, m.stream, m.setLevel = 0, false, false
		if len(m.data) >= 8 && r.Intn(10) == 0 {
			m.frag = 2 + r.Intn(4)
		}
		if r.Intn(10) == 0 {
			m.stream = true
		}
		if levels && i%37 == 0 {
			m.setLevel, m.level = true, levelList[(i/37)%len(levelList)]
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// farRepeat repeats a chunk of random bytes at distances that a 9 to 14
// bit window cannot reach but a 15-bit one can, with compressible filler
// in between.
func farRepeat(r *rand.Rand) []byte {
	chunk := randomBytes(r, 300+r.Intn(700))
	var b []byte
	for _, gap := range []int{600, 1500, 5000, 20000} {
		b = append(b, chunk...)
		b = append(b, wordText(r, gap)...)
	}
	return append(b, chunk...)
}

var words = []string{
	"the", "wsforge", "deflate", "window", "frame", "message", "context",
	"takeover", "héllo", "wörld", "naïve", "façade", "日本語", "テキスト", "✓",
	"—", "😀", "Ωμέγα", "data", "{\"k\":", "42},", "\n", "over", "and",
}

// wordText is n bytes of compressible UTF-8 text, not starting with '!'.
func wordText(r *rand.Rand, n int) []byte {
	b := make([]byte, 0, n)
	for len(b) < n {
		w := words[r.Intn(len(words))]
		if len(b)+len(w)+1 > n {
			for len(b) < n {
				b = append(b, 'x')
			}
			break
		}
		b = append(b, w...)
		b = append(b, ' ')
	}
	return b
}

// randomText is n bytes of random characters of every UTF-8 length:
// valid text that hardly compresses, not starting with '!'.
func randomText(r *rand.Rand, n int) []byte {
	ranges := [][2]rune{{'"', '~'}, {0xa0, 0x7ff}, {0x4e00, 0x9fff}, {0x1f300, 0x1f5ff}}
	b := make([]byte, 0, n+4)
	for {
		rg := ranges[r.Intn(len(ranges))]
		c := rg[0] + rune(r.Intn(int(rg[1]-rg[0]+1)))
		if len(b)+utf8.RuneLen(c) > n {
			break
		}
		b = utf8.AppendRune(b, c)
	}
	for len(b) < n {
		b = append(b, 'x')
	}
	return b
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

type chatEvent struct {
	Type   string   `json:"type"`
	Room   string   `json:"room"`
	User   string   `json:"user"`
	Seq    int      `json:"seq"`
	Time   string   `json:"ts"`
	Text   string   `json:"text"`
	Tags   []string `json:"tags,omitempty"`
	Edited bool     `json:"edited"`
}

// chatMessages is n JSON messages of 1 to 6 chat events each.
func chatMessages(r *rand.Rand, n int) []msg {
	rooms := []string{"general", "random", "dev", "ops", "support"}
	types := []string{"message", "message", "message", "reaction", "typing", "presence"}
	phrases := []string{"did the deploy go out", "looks good to me", "can you review", "the build is green",
		"ping me when done", "lunch?", "ship it", "rolling back", "which branch", "merged 🎉"}
	start := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	msgs := make([]msg, n)
	for i := range msgs {
		evs := make([]chatEvent, 1+r.Intn(6))
		for j := range evs {
			seq := r.Intn(1 << 20)
			ev := chatEvent{
				Type: types[r.Intn(len(types))],
				Room: rooms[r.Intn(len(rooms))],
				User: fmt.Sprintf("user-%03d", r.Intn(40)),
				Seq:  seq,
				Time: start.Add(time.Duration(seq) * 1317 * time.Millisecond).Format(time.RFC3339Nano),
			}
			for k := r.Intn(4); k >= 0; k-- {
				ev.Text += phrases[r.Intn(len(phrases))] + " "
			}
			if r.Intn(3) == 0 {
				ev.Tags = []string{"urgent", "release"}[:1+r.Intn(2)]
			}
			evs[j] = ev
		}
		b, err := json.Marshal(evs)
		if err != nil {
			panic(err)
		}
		msgs[i] = msg{typ: websocket.TextMessage, data: b}
	}
	return msgs
}

// ourPings pings the peer; its pong must come back before the echo of a
// message sent after the ping.
func ourPings(t *testing.T, e *endpoint) {
	for _, payload := range []string{"", "wsforge ping ✓", strings.Repeat("p", 125)} {
		pongs := make(chan string, 1)
		e.conn.SetPongHandler(func(s string) error {
			select {
			case pongs <- s:
			default:
			}
			return nil
		})
		require.NoError(t, e.conn.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(connTimeout)))
		e.exchange(t, []msg{{typ: websocket.TextMessage, data: []byte("after the ping")}})
		select {
		case got := <-pongs:
			assert.Equal(t, payload, got)
		default:
			t.Fatalf("no pong for the ping with %d bytes before the echo of the message after it", len(payload))
		}
	}
	e.conn.SetPongHandler(nil)
}

// peerPings has the peer ping us; our ping handler must see the payload,
// and the default one answer it (the peer reports the pong).
func peerPings(t *testing.T, e *endpoint) {
	answer := e.conn.PingHandler()
	for _, payload := range []string{"", "ws peer ping", strings.Repeat("q", 125)} {
		pings := make(chan string, 1)
		e.conn.SetPingHandler(func(s string) error {
			select {
			case pings <- s:
			default:
			}
			return answer(s)
		})
		require.NoError(t, e.conn.WriteMessage(websocket.TextMessage, []byte("!ping "+payload)))
		typ, got, err := e.conn.ReadMessage()
		if err != nil {
			e.fatalf(t, "waiting for the peer's pong report: %v", err)
		}
		require.Equal(t, websocket.TextMessage, typ)
		require.Equal(t, "!pong "+payload, string(got))
		select {
		case s := <-pings:
			assert.Equal(t, payload, s)
		default:
			t.Fatal("the peer reports a pong for a ping our handler never saw")
		}
	}
	e.conn.SetPingHandler(nil)
}

const closeReason = "bye — from the test ✓"

// closeByUs runs the closing handshake from our side; the peer must see our
// code and reason, and answer with the code.
func closeByUs(t *testing.T, e *endpoint) {
	echoed := make(chan int, 1)
	e.conn.SetCloseHandler(func(code int, _ string) error {
		echoed <- code
		return nil
	})
	require.NoError(t, e.conn.CloseGracefully(4000, closeReason, connTimeout))
	select {
	case code := <-echoed:
		assert.Equal(t, 4000, code, "the code of the peer's answering close")
	default:
		t.Fatal("CloseGracefully returned without the peer's close frame")
	}
	ev := e.peer.next(t, "closed")
	assert.Equal(t, 4000, ev.Code, "the close code the peer received")
	assert.Equal(t, closeReason, ev.Reason, "the close reason the peer received")
}

// closeByPeer has the peer start the closing handshake: our read must
// return its code and reason, and the peer must get the code back.
func closeByPeer(t *testing.T, e *endpoint) {
	require.NoError(t, e.conn.WriteMessage(websocket.TextMessage, []byte("!close 4001 "+closeReason)))
	_, _, err := e.conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 4001, ce.Code)
	assert.Equal(t, closeReason, ce.Text)
	// Our answer is out. A server Conn has closed the TCP connection
	// itself; a client leaves that to the application, and a peer server
	// waits for it (RFC 6455 section 7.1.1) before it reports the close.
	e.conn.Close()
	ev := e.peer.next(t, "closed")
	assert.Equal(t, 4001, ev.Code, "the code of our answering close, as the peer received it")
}
