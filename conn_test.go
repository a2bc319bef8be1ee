package websocket

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The Conn tests run our Dialer against our Upgrader over loopback TCP.

// randomText returns n bytes of random valid UTF-8 mixing one- to four-byte
// characters. Characters are drawn from a table of 256, one random byte
// each; past 1 MiB the text continues with rotations of its first MiB
// starting at random characters, which keeps it valid and unrepetitive
// at a fraction of the cost under -race.
func randomText(rng *rand.Rand, n int) []byte {
	ranges := [][2]rune{{0x20, 0x7e}, {0x80, 0x7ff}, {0x800, 0xd7ff}, {0xe000, 0xfffd}, {0x10000, 0x10ffff}}
	var table [256][]byte
	for i := range table {
		r := ranges[i%len(ranges)]
		table[i] = utf8.AppendRune(nil, r[0]+rune(rng.IntN(int(r[1]-r[0]+1))))
	}
	b := make([]byte, 0, n)
	for len(b) < n && len(b) < 1<<20 {
		v := rng.Uint64()
		for j := 0; j < 8 && len(b) < n; j++ {
			c := table[byte(v>>(8*j))]
			if len(b)+len(c) > n {
				c = []byte{'x'}
			}
			b = append(b, c...)
		}
	}
	base := b[:len(b):len(b)]
	for len(b) < n {
		start := rng.IntN(len(base))
		for !utf8.RuneStart(base[start]) {
			start--
		}
		for _, part := range [][]byte{base[start:], base[:start]} {
			cut := min(len(part), n-len(b))
			for cut < len(part) && !utf8.RuneStart(part[cut]) {
				cut--
			}
			b = append(b, part[:cut]...)
		}
		for len(b) < n && n-len(b) < 4 {
			b = append(b, 'x')
		}
	}
	return b
}

func randomBinary(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestConnRoundTrip(t *testing.T) {
	t.Parallel()
	for _, mt := range []int{TextMessage, BinaryMessage} {
		t.Run(fmt.Sprintf("type %d", mt), func(t *testing.T) {
			t.Parallel()
			client, server := newPair(t, nil, nil)
			echoDone := startEcho(server)
			rng := rand.New(rand.NewPCG(1, uint64(mt)))
			for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20} {
				var msg []byte
				if mt == TextMessage {
					msg = randomText(rng, n)
				} else {
					msg = randomBinary(rng, n)
				}
				require.Len(t, msg, n)
				require.NoError(t, client.WriteMessage(mt, msg), "size %d", n)
				gotType, got, err := client.ReadMessage()
				require.NoError(t, err, "size %d", n)
				require.Equal(t, mt, gotType)
				require.Equal(t, n, len(got))
				require.True(t, bytes.Equal(msg, got), "size %d: content differs", n)
			}
			require.NoError(t, client.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait)))
			_, _, err := client.ReadMessage()
			require.True(t, IsCloseError(err, CloseNormalClosure), "%v", err)
			require.True(t, IsCloseError(<-echoDone, CloseNormalClosure))
		})
	}
}

func TestConnTextGenerator(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 1000, 1<<20 + 3, 3<<20 + 1} {
		b := randomText(rng, n)
		require.Len(t, b, n)
		require.True(t, utf8.Valid(b), "size %d", n)
	}
}

// TestConnStreamFragments streams a 1 MiB message through NextWriter in
// 1000-byte writes and checks at the raw peer that it arrives intact and
// cut into several frames: a first frame with the message's opcode,
// continuations, FIN only on the last.
func TestConnStreamFragments(t *testing.T) {
	t.Parallel()
	msg := randomBinary(rand.New(rand.NewPCG(3, 4)), 1<<20)
	stream := func(c *Conn) error {
		w, err := c.NextWriter(BinaryMessage)
		if err != nil {
			return err
		}
		for rest := msg; len(rest) > 0; {
			n := min(1000, len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return w.Close()
	}
	for _, side := range echoSides {
		t.Run(side.name, func(t *testing.T) {
			t.Parallel()
			streamErr := make(chan error, 1)
			p := side.start(t, func(c *Conn) { streamErr <- stream(c) })
			var got []byte
			frames := 0
			for {
				f := p.next()
				if frames == 0 {
					require.Equal(t, byte(opBinary), f.op)
				} else {
					require.Equal(t, byte(opContinuation), f.op)
				}
				frames++
				got = append(got, f.payload...)
				if f.fin {
					break
				}
			}
			require.Greater(t, frames, 1, "a streamed message must go out in fragments")
			require.True(t, bytes.Equal(msg, got), "streamed message differs")
			require.NoError(t, <-streamErr)
			p.closeNormally()
		})
	}
}

// TestConnStreamRoundTrip streams messages through NextWriter, WriteString
// and ReadFrom, and reads them back through NextReader.
func TestConnStreamRoundTrip(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, &Dialer{WriteBufferSize: 1500})
	startEcho(server)
	msg := randomText(rand.New(rand.NewPCG(5, 6)), 1<<20)

	w, err := client.NextWriter(TextMessage)
	require.NoError(t, err)
	for rest := msg; len(rest) > 0; {
		n := min(1000, len(rest))
		_, err := w.Write(rest[:n])
		require.NoError(t, err)
		rest = rest[n:]
	}
	require.NoError(t, w.Close())
	_, err = w.Write([]byte("x"))
	require.Error(t, err, "write through a closed writer")
	require.Error(t, w.Close(), "second Close")

	mt, r, err := client.NextReader()
	require.NoError(t, err)
	require.Equal(t, TextMessage, mt)
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.True(t, bytes.Equal(msg, got), "streamed message differs")

	w, err = client.NextWriter(BinaryMessage)
	require.NoError(t, err)
	_, err = io.WriteString(w, strings.Repeat("s", 5000))
	require.NoError(t, err)
	_, err = io.Copy(w, bytes.NewReader(msg))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, got, err = client.ReadMessage()
	require.NoError(t, err)
	require.True(t, bytes.Equal(append([]byte(strings.Repeat("s", 5000)), msg...), got), "WriteString and ReadFrom message differs")
}

// numberedMsg is what the concurrent writers send: who sent it, its place in
// the sender's sequence, and data whose content and checksum the reader
// can recompute.
type numberedMsg struct {
	G    int    `json:"g"`
	Seq  int    `json:"s"`
	Data string `json:"d"`
	Sum  uint32 `json:"c"`
}

// msgLetters is random text the concurrent writers' data is cut from.
var msgLetters = func() string {
	rng := rand.New(rand.NewPCG(9, 10))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 1<<16)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}()

// msgData returns the data of message seq of goroutine g: up to 3000
// bytes from a place in msgLetters that depends on both.
func msgData(g, seq int) string {
	h := uint64(g)*0x9e3779b97f4a7c15 ^ uint64(seq)*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	n := int(h % 3000)
	off := int(h>>16) % (len(msgLetters) - n)
	return msgLetters[off : off+n]
}

func makeMsg(g, seq int) numberedMsg {
	d := msgData(g, seq)
	return numberedMsg{G: g, Seq: seq, Data: d, Sum: crc32.ChecksumIEEE([]byte(d))}
}

// TestConnConcurrentWriters has 16 goroutines write 200 messages each on
// one Conn, mixing every write method and pings; the peer must get every
// message whole, unmixed and in each sender's order. The write buffer is
// small so that the streamed messages go out in fragments, between which
// the pings may pass. Some goroutines stream with NextWriter, so the Conn
// is told with EnableConcurrentWriters (see TestConnGorillaWriterRule for
// what happens otherwise).
func TestConnConcurrentWriters(t *testing.T) {
	t.Parallel()
	const goroutines, perG = 16, 200
	for _, writerSide := range []string{"client", "server"} {
		t.Run(writerSide+" writes", func(t *testing.T) {
			client, server := newPair(t, &Upgrader{WriteBufferSize: 1024}, &Dialer{WriteBufferSize: 1024})
			wc, rc := client, server
			if writerSide == "server" {
				wc, rc = server, client
			}
			wc.EnableConcurrentWriters()

			// The writing Conn also reads, to take the pongs, while
			// its writers run.
			var pongs int
			wc.SetPongHandler(func(string) error { pongs++; return nil })
			writerRead := make(chan error, 1)
			go func() {
				_, _, err := wc.ReadMessage()
				writerRead <- err
			}()

			var pings int
			defaultPing := rc.PingHandler()
			pingErr := error(nil)
			rc.SetPingHandler(func(s string) error {
				var g, seq int
				if _, err := fmt.Sscanf(s, "%d:%d", &g, &seq); err != nil && pingErr == nil {
					pingErr = fmt.Errorf("ping payload %q: %v", s, err)
				}
				pings++
				return defaultPing(s)
			})

			var wg sync.WaitGroup
			writeErrs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					writeErrs <- writeAll(wc, g, perG)
				}()
			}

			next := make([]int, goroutines)
			for i := 0; i < goroutines*perG; i++ {
				mt, p, err := rc.ReadMessage()
				require.NoError(t, err, "message %d", i)
				require.Equal(t, TextMessage, mt)
				var m numberedMsg
				require.NoError(t, json.Unmarshal(p, &m), "message %d: %.60q", i, p)
				require.True(t, m.G >= 0 && m.G < goroutines, "goroutine id %d", m.G)
				require.Equal(t, next[m.G], m.Seq, "sequence of goroutine %d", m.G)
				next[m.G]++
				require.Equal(t, crc32.ChecksumIEEE([]byte(m.Data)), m.Sum, "checksum of %d:%d", m.G, m.Seq)
				require.Equal(t, msgData(m.G, m.Seq), m.Data, "data of %d:%d", m.G, m.Seq)
			}
			wg.Wait()
			close(writeErrs)
			for err := range writeErrs {
				require.NoError(t, err)
			}
			require.NoError(t, pingErr)
			require.Equal(t, goroutines*perG/4, pings, "pings received")

			// The last message follows the last ping, so its pong has
			// been sent; ending the connection stops the writer's read.
			require.NoError(t, rc.CloseGracefully(CloseNormalClosure, "", testWait))
			err := <-writerRead
			require.True(t, IsCloseError(err, CloseNormalClosure), "%v", err)
			require.Equal(t, goroutines*perG/4, pongs, "pongs received by the writer")
		})
	}
}

// writeAll writes the perG messages of goroutine g, each with a write
// method chosen by turn, plus a ping before every fourth.
func writeAll(c *Conn, g, perG int) error {
	for seq := 0; seq < perG; seq++ {
		m := makeMsg(g, seq)
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if seq%4 == 0 {
			if err := c.WriteControl(PingMessage, []byte(fmt.Sprintf("%d:%d", g, seq)), time.Now().Add(testWait)); err != nil {
				return fmt.Errorf("ping %d:%d: %w", g, seq, err)
			}
		}
		switch (g + seq) % 4 {
		case 0:
			err = c.WriteMessage(TextMessage, b)
		case 1:
			err = c.WriteJSON(m)
		case 2:
			var pm *PreparedMessage
			if pm, err = NewPreparedMessage(TextMessage, b); err == nil {
				err = c.WritePreparedMessage(pm)
			}
		case 3:
			var w io.WriteCloser
			if w, err = c.NextWriter(TextMessage); err != nil {
				break
			}
			for len(b) > 0 && err == nil {
				n := min(700, len(b))
				_, err = w.Write(b[:n])
				b = b[n:]
				// Let other writers try to cut in between fragments.
				runtime.Gosched()
			}
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("message %d:%d: %w", g, seq, err)
		}
	}
	return nil
}

// TestConnConcurrentStreams has several goroutines stream messages through
// NextWriter at once, declared with EnableConcurrentWriters: each message
// must arrive whole, never interleaved with another.
func TestConnConcurrentStreams(t *testing.T) {
	t.Parallel()
	const goroutines, perG, size = 4, 8, 20000
	client, server := newPair(t, nil, &Dialer{WriteBufferSize: 1024})
	client.EnableConcurrentWriters()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; seq < perG; seq++ {
				w, err := client.NextWriter(BinaryMessage)
				if err != nil {
					errs <- err
					return
				}
				chunk := bytes.Repeat([]byte{byte(g<<4 | seq)}, 1000)
				for n := 0; n < size; n += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						errs <- err
						return
					}
					runtime.Gosched()
				}
				if err := w.Close(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := make([]int, goroutines)
	for i := 0; i < goroutines*perG; i++ {
		_, p, err := server.ReadMessage()
		require.NoError(t, err)
		require.Len(t, p, size)
		g, seq := int(p[0]>>4), int(p[0]&0xf)
		require.Less(t, g, goroutines)
		require.Equal(t, next[g], seq, "order of goroutine %d", g)
		next[g]++
		require.Equal(t, bytes.Repeat(p[:1], size), p, "message %d:%d interleaved", g, seq)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestConnCloseGracefully(t *testing.T) {
	t.Parallel()

	// The peer answers: it echoes the close, CloseGracefully returns, and
	// the closing side is done with the connection.
	for _, tc := range []struct {
		name   string
		server bool // the server closes, the client echoes
		code   int
		text   string
	}{
		{name: "peer answers", code: CloseNormalClosure, text: "bye"},
		{name: "peer answers/server side", server: true, code: CloseGoingAway, text: "restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			closer, echoer := newPair(t, nil, nil)
			if tc.server {
				closer, echoer = echoer, closer
			}
			echoDone := startEcho(echoer)
			require.NoError(t, closer.WriteMessage(TextMessage, []byte("hi")))
			require.NoError(t, closer.CloseGracefully(tc.code, tc.text, testWait))
			var ce *CloseError
			require.ErrorAs(t, <-echoDone, &ce)
			require.Equal(t, CloseError{Code: tc.code, Text: tc.text}, *ce)
			// The unread echo was discarded, and the connection is closed.
			_, err := closer.NetConn().Read(make([]byte, 1))
			require.ErrorIs(t, err, net.ErrClosed)
			require.Error(t, closer.WriteMessage(TextMessage, []byte("late")))
			_, _, err = closer.ReadMessage()
			require.True(t, IsCloseError(err, tc.code), "%v", err)
			require.NoError(t, closer.Close())
		})
	}

	// The peer closed first and the read loop saw it: the closing
	// handshake is complete, and CloseGracefully only closes.
	for _, closer := range []string{"client", "server"} {
		t.Run("after the peer's close/"+closer+" closes first", func(t *testing.T) {
			t.Parallel()
			client, server := newPair(t, nil, nil)
			first, second := client, server
			if closer == "server" {
				first, second = server, client
			}
			readDone := make(chan error, 1)
			go func() {
				_, _, err := second.ReadMessage()
				readDone <- err
			}()
			require.NoError(t, first.CloseGracefully(CloseNormalClosure, "", testWait))
			require.True(t, IsCloseError(<-readDone, CloseNormalClosure))
			require.NoError(t, second.CloseGracefully(CloseNormalClosure, "", testWait))
			_, err := second.NetConn().Read(make([]byte, 1))
			require.ErrorIs(t, err, net.ErrClosed)
		})
	}

	// A raw peer that reads the close frame and never answers.
	for _, side := range rawSides {
		t.Run("silent peer/"+side.name, func(t *testing.T) {
			t.Parallel()
			p := side.start(t, func(c *Conn) error {
				return c.CloseGracefully(CloseGoingAway, "later", 200*time.Millisecond)
			})
			code, reason := p.expectClose()
			require.Equal(t, CloseGoingAway, code)
			require.Equal(t, "later", reason)
			p.expectEOF()
			err := p.result()
			var ne net.Error
			require.ErrorAs(t, err, &ne, "%v", err)
			require.True(t, ne.Timeout(), "%v", err)
		})
	}

	// A peer that only sends data: CloseGracefully discards it and still
	// times out. The timeout is long enough for the peer to send before
	// it passes even on a loaded machine.
	t.Run("chatty peer", func(t *testing.T) {
		t.Parallel()
		p := serveRaw(t, func(c *Conn) error {
			return c.CloseGracefully(CloseNormalClosure, "", 2*time.Second)
		})
		code, _ := p.expectClose()
		require.Equal(t, CloseNormalClosure, code)
		p.send(rawF(opText, true, "still talking"), rawF(opPing, true, ""))
		p.expectEOF()
		var ne net.Error
		require.ErrorAs(t, p.result(), &ne)
		require.True(t, ne.Timeout())
	})

	t.Run("reader blocked", func(t *testing.T) {
		t.Parallel()
		client, server := newPair(t, nil, nil)
		echoDone := make(chan error, 1)
		go func() {
			if err := server.WriteMessage(TextMessage, []byte("hello")); err != nil {
				echoDone <- err
				return
			}
			echoDone <- echoWhole(server)
		}()
		first := make(chan struct{})
		readErr := make(chan error, 1)
		go func() {
			_, _, err := client.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			close(first)
			_, _, err = client.ReadMessage()
			readErr <- err
		}()
		select {
		case <-first:
		case err := <-readErr:
			t.Fatalf("first read: %v", err)
		}
		require.NoError(t, client.CloseGracefully(CloseNormalClosure, "", testWait))
		var ce *CloseError
		require.ErrorAs(t, <-readErr, &ce)
		require.Equal(t, CloseNormalClosure, ce.Code)
		require.True(t, IsCloseError(<-echoDone, CloseNormalClosure))
	})
}

// TestConnGoroutineLeak checks that a connection used for reading, writing
// and pinging leaves no goroutine behind once both ends are closed. It is
// not parallel, so that other tests do not change the count.
func TestConnGoroutineLeak(t *testing.T) {
	runtime.GC()
	base := runtime.NumGoroutine()
	t.Run("work", func(t *testing.T) {
		client, server := newPair(t, nil, nil)
		echoDone := startEcho(server)
		for i := 0; i < 10; i++ {
			require.NoError(t, client.WriteMessage(BinaryMessage, make([]byte, i*1000)))
			require.NoError(t, client.WriteControl(PingMessage, nil, time.Now().Add(testWait)))
			_, _, err := client.ReadMessage()
			require.NoError(t, err)
		}
		w, err := client.NextWriter(TextMessage)
		require.NoError(t, err)
		_, err = w.Write([]byte("unfinished"))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		require.NoError(t, client.CloseGracefully(CloseNormalClosure, "", testWait))
		require.Error(t, <-echoDone)
	})
	t.Run("abandoned", func(t *testing.T) {
		// Closed without a closing handshake, mid-message.
		client, server := newPair(t, nil, nil)
		done := make(chan error, 1)
		go func() {
			_, _, err := server.ReadMessage()
			done <- err
		}()
		w, err := client.NextWriter(BinaryMessage)
		require.NoError(t, err)
		_, err = w.Write(make([]byte, 10000))
		require.NoError(t, err)
		require.NoError(t, client.Close())
		require.Error(t, <-done)
	})
	checkNoGoroutineLeak(t, base)
}

func TestConnJoinMessages(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, nil)
	lines := []string{"one", "", "two words", "ünïcode", strings.Repeat("long", 3000)}
	go func() {
		for _, l := range lines {
			w, err := server.NextWriter(TextMessage)
			if err != nil {
				return
			}
			// Each message in two pieces, so that a piece boundary
			// does not coincide with the terminator.
			half := len(l) / 2
			w.Write([]byte(l[:half]))
			w.Write([]byte(l[half:]))
			w.Close()
		}
	}()
	br := bufio.NewReader(JoinMessages(client, "\r\n"))
	for _, want := range lines {
		got, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, want+"\r\n", got)
	}
	require.NoError(t, server.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait)))
	_, err := br.ReadString('\n')
	require.True(t, IsCloseError(err, CloseNormalClosure), "%v", err)
}

func TestConnJSON(t *testing.T) {
	t.Parallel()
	type payload struct {
		Name  string            `json:"name"`
		N     int               `json:"n"`
		Tags  []string          `json:"tags"`
		Attrs map[string]string `json:"attrs"`
	}
	client, server := newPair(t, nil, nil)
	startEcho(server)
	want := payload{Name: "wsforge ✓", N: 42, Tags: []string{"a", "b"}, Attrs: map[string]string{"k": "v"}}
	require.NoError(t, client.WriteJSON(want))
	var got payload
	require.NoError(t, client.ReadJSON(&got))
	assert.Equal(t, want, got)

	// The deprecated package functions do the same.
	require.NoError(t, WriteJSON(client, []int{1, 2, 3}))
	var nums []int
	require.NoError(t, ReadJSON(client, &nums))
	assert.Equal(t, []int{1, 2, 3}, nums)

	// Large enough to be streamed in fragments.
	want.Tags = strings.Split(strings.Repeat("tag,", 5000), ",")
	require.NoError(t, client.WriteJSON(want))
	got = payload{}
	require.NoError(t, client.ReadJSON(&got))
	assert.Equal(t, want, got)

	// An empty message holds no value.
	require.NoError(t, client.WriteMessage(TextMessage, nil))
	require.ErrorIs(t, client.ReadJSON(&got), io.ErrUnexpectedEOF)

	// Malformed JSON is the decoder's error, and the connection goes on.
	require.NoError(t, client.WriteMessage(TextMessage, []byte("{nope")))
	var se *json.SyntaxError
	require.True(t, errors.As(client.ReadJSON(&got), &se))
	require.NoError(t, client.WriteJSON(want))
	require.NoError(t, client.ReadJSON(&got))

	// A value that cannot be encoded is reported; as with gorilla, the
	// message is closed anyway, so an empty one goes out.
	require.Error(t, client.WriteJSON(func() {}))
	mt, p, err := client.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, TextMessage, mt)
	require.Empty(t, p)
	require.NoError(t, client.WriteJSON(1))
	var one int
	require.NoError(t, client.ReadJSON(&one))
	require.Equal(t, 1, one)
}

// TestConnStaleReader checks that the reader of the previous message reads
// nothing of the current one, whether or not the application read its own
// message to the end. (Readers are recycled so that NextReader allocates
// nothing; one kept across two further NextReader calls is not covered.)
func TestConnStaleReader(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, nil)
	msgs := []string{"first", "second", "third", "fourth", "fifth"}
	for _, m := range msgs {
		require.NoError(t, server.WriteMessage(TextMessage, []byte(m)))
	}
	var prev io.Reader
	for i, want := range msgs {
		_, r, err := client.NextReader()
		require.NoError(t, err)
		if prev != nil {
			n, err := prev.Read(make([]byte, 16))
			require.Equal(t, 0, n, "reader of message %d read data of message %d", i, i+1)
			require.ErrorIs(t, err, io.EOF)
		}
		if i%2 == 1 {
			// Left unread: the next NextReader skips it.
			prev = r
			continue
		}
		got, err := io.ReadAll(r)
		require.NoError(t, err)
		require.Equal(t, want, string(got))
		prev = r
	}
}

// TestConnStaleWriter checks that the closed writer of the previous message
// can neither write into nor close the current one.
func TestConnStaleWriter(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, nil)
	msgs := []string{"one", "two", "three", "four"}
	var prev io.WriteCloser
	for _, m := range msgs {
		w, err := client.NextWriter(TextMessage)
		require.NoError(t, err)
		if prev != nil {
			_, err = prev.Write([]byte("stale"))
			require.Error(t, err, "write through a closed writer")
			require.Error(t, prev.Close(), "close of a closed writer")
		}
		_, err = w.Write([]byte(m))
		require.NoError(t, err)
		require.NoError(t, w.Close())
		_, err = w.Write([]byte("late"))
		require.Error(t, err, "write after Close")
		require.Error(t, w.Close(), "second Close")
		prev = w
	}
	for _, want := range msgs {
		_, p, err := server.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, want, string(p))
	}
}

// TestConnControlWriterTooLong checks that a control message written
// through NextWriter, by any of the writer's methods, is refused when it
// exceeds 125 bytes instead of going out as an invalid frame.
func TestConnControlWriterTooLong(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, nil)
	readDone := make(chan error, 1)
	var pings []string
	server.SetPingHandler(func(s string) error { pings = append(pings, s); return nil })
	go func() {
		_, p, err := server.ReadMessage()
		if err == nil && string(p) != "still fine" {
			err = fmt.Errorf("got message %q", p)
		}
		readDone <- err
	}()
	long := strings.Repeat("p", 126)
	writes := map[string]func(w io.Writer) error{
		"Write": func(w io.Writer) error { _, err := w.Write([]byte(long)); return err },
		"WriteString": func(w io.Writer) error {
			_, err := io.WriteString(w, long)
			return err
		},
		"ReadFrom": func(w io.Writer) error {
			rf, ok := w.(io.ReaderFrom)
			if !ok {
				return nil // nothing to test
			}
			_, err := rf.ReadFrom(strings.NewReader(long))
			return err
		},
		"two writes": func(w io.Writer) error {
			if _, err := w.Write([]byte(long[:100])); err != nil {
				return err
			}
			_, err := w.Write([]byte(long[100:]))
			return err
		},
	}
	for name, write := range writes {
		for _, mt := range []int{PingMessage, PongMessage, CloseMessage} {
			w, err := client.NextWriter(mt)
			require.NoError(t, err)
			werr := write(w)
			cerr := w.Close()
			require.True(t, werr != nil || cerr != nil, "%s of 126 bytes into message type %d succeeded", name, mt)
		}
	}
	// 125 bytes are fine.
	w, err := client.NextWriter(PingMessage)
	require.NoError(t, err)
	_, err = io.Copy(w, struct{ io.Reader }{strings.NewReader(long[:125])})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, client.WriteMessage(TextMessage, []byte("still fine")))
	require.NoError(t, <-readDone)
	require.Equal(t, []string{long[:125]}, pings)
}

// TestConnWriteArgs checks that invalid write arguments are refused without
// harming the connection.
func TestConnWriteArgs(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, nil)
	deadline := time.Now().Add(testWait)
	require.Error(t, client.WriteControl(PingMessage, make([]byte, 126), deadline))
	require.Error(t, client.WriteControl(TextMessage, []byte("x"), deadline))
	require.Error(t, client.WriteMessage(0, []byte("x")))
	require.Error(t, client.WriteMessage(3, []byte("x")))
	require.Error(t, client.WriteMessage(PingMessage, make([]byte, 126)))
	_, err := client.NextWriter(0xB)
	require.Error(t, err)
	_, err = NewPreparedMessage(PongMessage, make([]byte, 126))
	require.Error(t, err)

	require.NoError(t, client.WriteControl(PingMessage, make([]byte, 125), deadline))
	require.NoError(t, client.WriteMessage(TextMessage, []byte("ok")))
	mt, p, err := server.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, TextMessage, mt)
	require.Equal(t, "ok", string(p))
}

// TestConnMessageLock checks that, once concurrent writers are declared,
// other data messages wait while a NextWriter message is open (here until
// their write deadline passes) and control frames do not.
func TestConnMessageLock(t *testing.T) {
	t.Parallel()
	client, server := newPair(t, nil, &Dialer{WriteBufferSize: 1024})
	client.EnableConcurrentWriters()
	var pings []string
	server.SetPingHandler(func(s string) error { pings = append(pings, s); return nil })

	w, err := client.NextWriter(BinaryMessage)
	require.NoError(t, err)
	_, err = w.Write(bytes.Repeat([]byte{1}, 3000)) // fragments go out
	require.NoError(t, err)

	require.NoError(t, client.SetWriteDeadline(time.Now().Add(100*time.Millisecond)))
	pm, err := NewPreparedMessage(TextMessage, []byte("prepared"))
	require.NoError(t, err)
	blocked := map[string]func() error{
		"WriteMessage":         func() error { return client.WriteMessage(TextMessage, []byte("cut in")) },
		"WritePreparedMessage": func() error { return client.WritePreparedMessage(pm) },
		"NextWriter":           func() error { _, err := client.NextWriter(TextMessage); return err },
		"WriteJSON":            func() error { return client.WriteJSON("cut in") },
	}
	for name, f := range blocked {
		err := f()
		var ne net.Error
		require.ErrorAs(t, err, &ne, "%s while a message is open", name)
		require.True(t, ne.Timeout(), "%s: %v", name, err)
	}
	require.NoError(t, client.WriteControl(PingMessage, []byte("between"), time.Now().Add(testWait)))
	require.NoError(t, client.SetWriteDeadline(time.Time{}))

	_, err = w.Write(bytes.Repeat([]byte{2}, 10))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.NoError(t, client.WriteMessage(TextMessage, []byte("after")))

	_, p, err := server.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, append(bytes.Repeat([]byte{1}, 3000), bytes.Repeat([]byte{2}, 10)...), p)
	require.Equal(t, []string{"between"}, pings)
	_, p, err = server.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "after", string(p))
}

// TestConnGorillaWriterRule checks gorilla's documented rule, which
// programs written for gorilla may rely on: NextWriter (and every other
// data write) closes the writer the application left open, sending its
// message whole as written so far; that writer's methods then fail. One
// goroutine does it all, as in a gorilla program, while another sends
// pings, which gorilla allows concurrently. The previous code hung here.
func TestConnGorillaWriterRule(t *testing.T) {
	t.Parallel()
	pm, err := NewPreparedMessage(BinaryMessage, []byte("second"))
	require.NoError(t, err)
	next := map[string]func(c *Conn) error{
		"NextWriter": func(c *Conn) error {
			w, err := c.NextWriter(BinaryMessage)
			if err != nil {
				return err
			}
			if _, err := w.Write([]byte("second")); err != nil {
				return err
			}
			return w.Close()
		},
		"WriteMessage":         func(c *Conn) error { return c.WriteMessage(BinaryMessage, []byte("second")) },
		"WritePreparedMessage": func(c *Conn) error { return c.WritePreparedMessage(pm) },
		"WriteJSON":            func(c *Conn) error { return c.WriteJSON(json.RawMessage(`"second"`)) },
		"NextWriter left open": func(c *Conn) error {
			w, err := c.NextWriter(BinaryMessage)
			if err != nil {
				return err
			}
			_, err = w.Write([]byte("second"))
			return err // the next test round's call closes it
		},
	}
	for _, compress := range []bool{false, true} {
		for name, second := range next {
			for _, firstSize := range []int{5, 3000} { // 3000: fragments already sent
				t.Run(fmt.Sprintf("%s/compress=%v/first=%d", name, compress, firstSize), func(t *testing.T) {
					t.Parallel()
					client, server := newPair(t, &Upgrader{EnableCompression: compress}, &Dialer{WriteBufferSize: 1024, EnableCompression: compress})
					stopPings := make(chan struct{})
					pingsDone := make(chan struct{})
					go func() {
						defer close(pingsDone)
						for {
							select {
							case <-stopPings:
								return
							default:
							}
							if client.WriteControl(PingMessage, []byte("p"), time.Now().Add(testWait)) != nil {
								return
							}
							runtime.Gosched()
						}
					}()
					readDone := make(chan error, 1)
					go func() { // takes the pongs
						_, _, err := client.ReadMessage()
						readDone <- err
					}()

					first := bytes.Repeat([]byte("f"), firstSize)
					hangGuard(t, func() {
						for round := 0; round < 3; round++ {
							w, err := client.NextWriter(BinaryMessage)
							require.NoError(t, err)
							_, err = w.Write(first)
							require.NoError(t, err)
							// No Close: the next message closes it.
							require.NoError(t, second(client), "round %d", round)
							_, err = w.Write([]byte("late"))
							require.ErrorIs(t, err, errWriteClosed)
							require.ErrorIs(t, w.Close(), errWriteClosed)
						}
						// The last round's "left open" writer is closed here.
						require.NoError(t, client.WriteMessage(TextMessage, []byte("end")))
					})
					close(stopPings)
					<-pingsDone
					for round := 0; round < 3; round++ {
						_, p, err := server.ReadMessage()
						require.NoError(t, err)
						require.Equal(t, first, p, "round %d: the message left open, sent whole", round)
						mt, p, err := server.ReadMessage()
						require.NoError(t, err)
						if name == "WriteJSON" {
							require.Equal(t, "\"second\"\n", string(p))
							continue
						}
						require.Equal(t, BinaryMessage, mt)
						require.Equal(t, "second", string(p), "round %d", round)
					}
					_, p, err := server.ReadMessage()
					require.NoError(t, err)
					require.Equal(t, "end", string(p))
					require.False(t, client.concurrentWriters.Load(), "a single writer with pings is not concurrent")
					require.NoError(t, server.CloseGracefully(CloseNormalClosure, "", testWait))
					<-readDone
				})
			}
		}
	}
}

// TestConnConcurrentWritersDetected checks that a Conn that sees a write
// call arrive while another goroutine's writer is in use leaves gorilla's
// rule for good: two goroutines then stream without declaring it and both
// messages arrive whole. It also checks that a writer left open in that
// mode holds other writers only until the Conn is closed.
func TestConnConcurrentWritersDetected(t *testing.T) {
	t.Parallel()
	nc := &blockingConn{armed: true, blocked: make(chan struct{}), released: make(chan struct{})}
	c := newConn(nc, true, 0, 1024, nil, nil)
	streamed := func(b byte) []byte { return bytes.Repeat([]byte{b}, 5000) }

	aDone := make(chan error, 1)
	go func() { // A: its first fragment blocks in the network write
		w, err := c.NextWriter(BinaryMessage)
		if err == nil {
			_, err = w.Write(streamed('a'))
		}
		if err == nil {
			err = w.Close()
		}
		aDone <- err
	}()
	<-nc.blocked // A is inside Write

	bDone := make(chan error, 1)
	go func() { // B arrives while A's writer is in use
		w, err := c.NextWriter(BinaryMessage)
		if err == nil {
			for i := 0; i < 5 && err == nil; i++ {
				_, err = w.Write(streamed('b')[:1000])
				runtime.Gosched()
			}
		}
		if err == nil {
			err = w.Close()
		}
		bDone <- err
	}()
	hangGuard(t, func() {
		for !c.concurrentWriters.Load() {
			runtime.Gosched() // B's arrival is what sets it
		}
	})
	close(nc.released)
	hangGuard(t, func() {
		require.NoError(t, <-aDone)
		require.NoError(t, <-bDone)
	})

	// Read back what went out: A's message, then B's, both whole.
	rc := newConn(&chunkedConn{data: nc.out.Bytes()}, false, 0, 0, nil, nil)
	for _, want := range [][]byte{streamed('a'), streamed('b')} {
		_, p, err := rc.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, want, p)
	}

	// In this mode a writer left open is waited for, until Close.
	w, err := c.NextWriter(TextMessage)
	require.NoError(t, err)
	_, err = w.Write([]byte("left open"))
	require.NoError(t, err)
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
	err = c.WriteMessage(TextMessage, []byte("waits"))
	var ne net.Error
	require.ErrorAs(t, err, &ne, "a write while another writer is open waits")
	require.True(t, ne.Timeout())
	require.NoError(t, c.SetWriteDeadline(time.Time{}))
	waitErr := make(chan error, 1)
	go func() { waitErr <- c.WriteMessage(TextMessage, []byte("waits")) }()
	require.NoError(t, c.Close())
	hangGuard(t, func() { require.ErrorIs(t, <-waitErr, net.ErrClosed) })
}

// holdRead starts a goroutine reading c until it fails, and returns
// once that goroutine holds the read lock (is blocked in the read), so
// that CloseGracefully must wait for it rather than read itself.
func holdRead(t *testing.T, c *Conn) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				done <- err
				return
			}
		}
	}()
	hangGuard(t, func() {
		for c.readMu.TryLock() {
			c.readMu.Unlock()
			runtime.Gosched()
		}
	})
	return done
}

// waitCloseSent returns once c has sent its close frame, so that what
// the test does next meets a CloseGracefully that is waiting.
func waitCloseSent(t *testing.T, c *Conn) {
	t.Helper()
	hangGuard(t, func() {
		for !c.closeSent.Load() {
			runtime.Gosched()
		}
		// closeSent is set before the write: the frame lock is held
		// until the write is done.
		c.frameLock.lockWait()
		c.frameLock.unlock()
	})
}

// closeGracefullyHeld starts a read on c that runs until the connection
// ends, then CloseGracefully(CloseGoingAway, "bye", timeout) in a goroutine;
// readDone and closed receive what ended each.
func closeGracefullyHeld(t *testing.T, c *Conn, timeout time.Duration) (readDone, closed <-chan error) {
	t.Helper()
	readDone = holdRead(t, c)
	ch := make(chan error, 1)
	go func() { ch <- c.CloseGracefully(CloseGoingAway, "bye", timeout) }()
	return readDone, ch
}

// TestConnCloseGracefullyReadEnds checks that CloseGracefully, waiting for
// another goroutine's read to see the peer's close, returns as soon as
// that read ends otherwise (the peer gone) or the Conn is closed, instead
// of waiting out its timeout. The previous code waited the whole timeout
// (the soak in bench/ found it).
func TestConnCloseGracefullyReadEnds(t *testing.T) {
	t.Parallel()
	const long = time.Hour // the guard, testWait, fails long before
	t.Run("peer gone", func(t *testing.T) {
		t.Parallel()
		client, server := newPair(t, nil, nil)
		readDone, closed := closeGracefullyHeld(t, server, long)
		waitCloseSent(t, server)
		require.NoError(t, client.Close()) // never reads, never answers
		hangGuard(t, func() {
			err := <-closed
			require.Error(t, err)
			require.NotErrorIs(t, err, errCloseTimeout)
			require.Equal(t, <-readDone, err, "CloseGracefully reports what ended the read")
		})
	})
	t.Run("peer gone without a reset", func(t *testing.T) {
		t.Parallel()
		client, server := newPair(t, nil, nil)
		readDone, closed := closeGracefullyHeld(t, server, long)
		waitCloseSent(t, server)
		// FIN without a close frame: the read ends with 1006, which
		// CloseGracefully must report, not only that the Conn closed.
		require.NoError(t, client.NetConn().(*net.TCPConn).CloseWrite())
		hangGuard(t, func() {
			err := <-closed
			require.True(t, IsCloseError(err, CloseAbnormalClosure), "%v", err)
			require.Equal(t, <-readDone, err)
		})
	})
	t.Run("Conn closed", func(t *testing.T) {
		t.Parallel()
		_, server := newPair(t, nil, nil)
		readDone, closed := closeGracefullyHeld(t, server, long)
		require.NoError(t, server.Close())
		hangGuard(t, func() {
			err := <-closed
			require.Error(t, err)
			require.NotErrorIs(t, err, errCloseTimeout)
			require.Error(t, <-readDone)
		})
	})
	t.Run("peer answers", func(t *testing.T) {
		t.Parallel()
		client, server := newPair(t, nil, nil)
		holdRead(t, server)
		clientRead := holdRead(t, client) // answers the close
		hangGuard(t, func() {
			require.NoError(t, server.CloseGracefully(CloseGoingAway, "bye", long))
			require.True(t, IsCloseError(<-clientRead, CloseGoingAway))
		})
	})
}

// TestConnControlTimeoutNotFatal checks that a control frame whose write
// times out before any byte of it went out (a pong or a close reply on a
// congested socket) leaves the connection writable, while one cut after
// some bytes makes every later write fail: the peer has half a frame. The
// previous code failed later writes in both cases (the soak in bench/
// found it: pongs timing out broke writes far from their own deadline).
func TestConnControlTimeoutNotFatal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		written int
		fatal   bool
	}{{"nothing written", 0, false}, {"part written", 3, true}} {
		for _, mt := range []int{PongMessage, PingMessage, CloseMessage} {
			t.Run(fmt.Sprintf("%s/type %d", tc.name, mt), func(t *testing.T) {
				t.Parallel()
				nc := &timeoutConn{armed: true, n: tc.written}
				c := newConn(nc, true, 0, 0, nil, nil)
				err := c.WriteControl(mt, []byte("payload"), time.Now().Add(testWait))
				var ne net.Error
				require.ErrorAs(t, err, &ne)
				require.True(t, ne.Timeout())
				err = c.WriteMessage(TextMessage, []byte("after"))
				if tc.fatal {
					require.Error(t, err, "a write after half a frame")
					return
				}
				require.NoError(t, err)
				// What went out reads back as the one message.
				rc := newConn(&chunkedConn{data: nc.out.Bytes()}, false, 0, 0, nil, nil)
				_, p, err := rc.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, "after", string(p))
			})
		}
	}
}

// TestConnFrameLockDeadline checks the one rule for waiting on the frame
// lock: a frame waits for it at most until the deadline that bounds its
// write (a control frame's own, the data deadline for data frames), and a
// frame without a deadline waits as long as the write ahead of it takes.
// A wait that times out sends nothing and breaks nothing. Before, data
// frames waited for the frame lock with no limit whatever the data
// deadline (this test hung).
func TestConnFrameLockDeadline(t *testing.T) {
	t.Parallel()
	nc := &blockingConn{armed: true, blocked: make(chan struct{}), released: make(chan struct{})}
	c := newConn(nc, true, 0, 1024, nil, nil)
	c.EnableConcurrentWriters()
	w, err := c.NextWriter(BinaryMessage)
	require.NoError(t, err)

	// A ping without a deadline whose write stalls: it holds the frame
	// lock until the network takes it.
	stalled := make(chan error, 1)
	go func() { stalled <- c.WriteControl(PingMessage, []byte("stalled"), time.Time{}) }()
	<-nc.blocked
	queued := make(chan error, 1)
	go func() { queued <- c.WriteControl(PingMessage, []byte("queued"), time.Time{}) }()

	hangGuard(t, func() {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(50*time.Millisecond)))
		_, err := w.Write(make([]byte, 3000)) // more than the buffer: a fragment must go
		var ne net.Error
		require.ErrorAs(t, err, &ne, "a data frame behind the stalled ping")
		require.True(t, ne.Timeout())

		err = c.WriteControl(PongMessage, []byte("bounded"), time.Now().Add(50*time.Millisecond))
		require.ErrorAs(t, err, &ne, "a control frame behind the stalled ping")
		require.True(t, ne.Timeout())
	})
	require.Error(t, w.Close(), "the message that could not send its fragment")
	require.NoError(t, c.SetWriteDeadline(time.Time{}))

	close(nc.released)
	hangGuard(t, func() {
		require.NoError(t, <-stalled)
		require.NoError(t, <-queued, "a frame without a deadline waits its turn")
	})
	require.NoError(t, c.WriteMessage(TextMessage, []byte("after")), "timed-out waits broke nothing")

	// On the wire: the two pings (in either order), then the message.
	rc := newConn(&chunkedConn{data: nc.out.Bytes()}, false, 0, 0, nil, nil)
	var pings []string
	rc.SetPingHandler(func(s string) error { pings = append(pings, s); return nil })
	_, p, err := rc.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "after", string(p))
	require.ElementsMatch(t, []string{"stalled", "queued"}, pings)
}

// stalledConn serves data to reads and times out every write before
// taking a byte, as a socket does whose peer has stopped reading; it
// counts the writes of pong frames.
type stalledConn struct {
	chunkedConn
	pongWrites atomic.Int64
}

func (c *stalledConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0]&0x0f == opPong {
		c.pongWrites.Add(1)
	}
	return 0, &netError{msg: "i/o timeout", timeout: true}
}

// TestPongsElidedWhileStalled floods pings at a Conn whose socket takes
// nothing: once a pong has timed out unsent, the following pings within
// closeWriteWait are not answered (RFC 6455 lets a pong answer only the
// latest ping), instead of each holding the reader for closeWriteWait.
func TestPongsElidedWhileStalled(t *testing.T) {
	const pings = 1000
	var in []byte
	key := [4]byte{1, 2, 3, 4}
	for i := 0; i < pings; i++ {
		p := []byte("are you there")
		maskBytes(key, 0, p)
		in = append(appendFrameHeader(in, true, 0, opPing, len(p), true, key), p...)
	}
	in = append(appendFrameHeader(in, true, 0, opClose, 2, true, key), 0x03^key[0], 0xe8^key[1])
	nc := &stalledConn{chunkedConn: chunkedConn{data: in}}
	c := newConn(nc, true, 0, 0, nil, nil)
	hangGuard(t, func() {
		_, _, err := c.ReadMessage()
		var ce *CloseError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, CloseNormalClosure, ce.Code)
	})
	// One pong waits out its deadline; a second is tried only if
	// reading the rest took closeWriteWait.
	assert.LessOrEqual(t, nc.pongWrites.Load(), int64(2), "pongs tried while the socket took nothing")
	assert.GreaterOrEqual(t, nc.pongWrites.Load(), int64(1))
}

// TestConnSizeClass keeps Conn in the 576-byte allocation size class on
// 64-bit platforms: an object over 512 bytes that holds pointers carries
// an 8-byte header, so the struct may take 568 bytes. One more field
// would move every connection to the 640-byte class; pack it into
// padding or make room (see the layout comments in conn.go).
func TestConnSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes here are for 64-bit platforms")
	}
	assert.LessOrEqual(t, unsafe.Sizeof(Conn{}), uintptr(568))
}
