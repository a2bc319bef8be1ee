package main

import (
	"testing"
	"unicode/utf8"

	"github.com/wsforge/websocket"
)

// The soak's verdicts are only as good as its generator and verifier:
// text bodies must be valid UTF-8 (or the library rightly fails them),
// and the verifier must pass intact messages fed in any pieces and catch
// a changed, missing or extra byte.
func TestGeneratorAndVerifier(t *testing.T) {
	c := newCorpus(7)
	if !utf8.Valid(c.text) {
		t.Fatal("text corpus is not valid UTF-8")
	}
	rng := prng{s: 1}
	for i := 0; i < 3000; i++ {
		h := header{kind: kindClient, typ: "TB"[i%2], method: sendWrite, conn: uint32(i), gen: 3, writer: i % 4, seq: uint64(i), length: pickSize(&rng, 256<<10)}
		msg := appendMessage(nil, c, 7, &h)
		if len(msg) != h.length {
			t.Fatalf("message %d: %d bytes, header says %d", i, len(msg), h.length)
		}
		mt := websocket.BinaryMessage
		if h.text() {
			mt = websocket.TextMessage
			if !utf8.Valid(msg) {
				t.Fatalf("text message %d is not valid UTF-8", i)
			}
		}
		feed := func(m []byte) string {
			v := verifier{c: c, seed: 7}
			for rest := m; len(rest) > 0; {
				n := min(len(rest), 1+rng.n(3000))
				v.write(rest[:n])
				rest = rest[n:]
			}
			_, bad := v.finish(mt)
			return bad
		}
		if bad := feed(msg); bad != "" {
			t.Fatalf("intact message %d rejected: %s", i, bad)
		}
		if bad := feed(msg[:len(msg)-1]); bad == "" {
			t.Fatalf("truncated message %d accepted", i)
		}
		if bad := feed(append(msg[:len(msg):len(msg)], 'x')); bad == "" {
			t.Fatalf("extended message %d accepted", i)
		}
		m := append([]byte(nil), msg...)
		m[rng.n(len(m))] ^= 1 << rng.n(8)
		if bad := feed(m); bad == "" {
			t.Fatalf("message %d with a flipped bit accepted", i)
		}
	}
}
