package websocket

// End-to-end tests of permessage-deflate (RFC 7692) over loopback TCP
// between our server and our client: every direction checked on the wire
// against the reference receiver, and the compression API (prepared
// messages, EnableWriteCompression, SetCompressionLevel, the threshold).
// The wire codec and reference receiver are in compression_wire_test.go,
// the servers and raw peers in compression_peers_test.go.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// checkTappedDirection decodes the messages one direction of a tapped
// connection carried and compares them with want: RSV1 exactly on the
// messages of at least threshold bytes (all of them for a negative one),
// every back-reference within the window, no history used without
// takeover. It returns the wire messages and their statistics.
func checkTappedDirection(t *testing.T, tap *trafficTap, fromServer, takeover bool, bits, threshold int, want []chatMsg) ([]wireMessage, []flatetest.Stats) {
	t.Helper()
	wire := tap.messages(t, fromServer)
	require.Len(t, wire, len(want), "messages from the server: %v", fromServer)
	ref := newReferenceInflater(takeover, bits)
	stats := make([]flatetest.Stats, len(want))
	for i, m := range wire {
		require.Equal(t, want[i].typ, int(m.op), "message %d", i)
		require.Equal(t, threshold < 0 || len(want[i].data) >= threshold, m.compressed, "RSV1 on message %d of %d bytes (from the server: %v)", i, len(want[i].data), fromServer)
		got := m.payload
		if m.compressed {
			var err error
			got, stats[i], err = ref.inflate(m.payload)
			require.NoError(t, err, "message %d (from the server: %v)", i, fromServer)
		}
		require.True(t, bytes.Equal(want[i].data, got), "message %d differs (from the server: %v)", i, fromServer)
	}
	return wire, stats
}

// sendAndEcho writes msgs on c (the i-th through NextWriter in pieces
// when streamed(i)), and reads each echo back.
func sendAndEcho(t *testing.T, c *Conn, msgs []chatMsg, streamed func(i int) bool) {
	t.Helper()
	for i, m := range msgs {
		if streamed != nil && streamed(i) {
			writeInPieces(t, c, m.typ, m.data, 1000)
		} else {
			require.NoError(t, c.WriteMessage(m.typ, m.data))
		}
		typ, p, err := c.ReadMessage()
		require.NoError(t, err, "echo %d", i)
		require.Equal(t, m.typ, typ)
		require.True(t, bytes.Equal(m.data, p), "echo %d differs", i)
	}
}

// echoTestMessages: a compressible message twice (with takeover the second
// refers to the first), incompressible binary, one below the threshold,
// one larger than the write buffer, an empty one, the large one again.
func echoTestMessages() []chatMsg {
	rng := rand.New(rand.NewPCG(11, 11))
	text := chatText(rng, 700)
	large := chatText(rng, 6000)
	return []chatMsg{
		{TextMessage, text},
		{TextMessage, text},
		{BinaryMessage, randomBytes(rng, 300)},
		{TextMessage, []byte("below threshold")},
		{TextMessage, large},
		{BinaryMessage, []byte{}},
		{TextMessage, large},
	}
}

func TestCompressEchoMatrix(t *testing.T) {
	msgs := echoTestMessages()
	for _, takeover := range []bool{true, false} {
		for _, bits := range []int{8, 9, 12, 15} {
			for _, level := range []int{-2, 0, 1, 6, 9} {
				t.Run(fmt.Sprintf("takeover=%v/bits=%d/level=%d", takeover, bits, level), func(t *testing.T) {
					opts := CompressionOptions{
						ServerNoContextTakeover: !takeover,
						ClientNoContextTakeover: !takeover,
						ServerMaxWindowBits:     bits,
						ClientMaxWindowBits:     bits,
						Level:                   level, // 0: the default, then set below
					}
					levelSet := make(chan struct{})
					srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, func(c *Conn, err error) {
						if err == nil && level == 0 {
							err = c.SetCompressionLevel(0)
						}
						close(levelSet)
						if err == nil {
							echoStreamed(c)
						}
					})
					c, tap, resp := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts})
					<-levelSet
					if level == 0 {
						require.NoError(t, c.SetCompressionLevel(0))
					}
					p := parseNegotiated(t, resp.Header.Get("Sec-Websocket-Extensions"))
					require.Equal(t, takeover, p.serverTakeover)
					require.Equal(t, takeover, p.clientTakeover)
					if bits < 15 {
						require.Equal(t, bits, p.serverBits)
					}
					sendAndEcho(t, c, msgs, func(i int) bool { return i == 4 })
					require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))

					for _, fromServer := range []bool{false, true} {
						wire, stats := checkTappedDirection(t, tap, fromServer, takeover, bits, defaultCompressionThreshold, msgs)
						for i, st := range stats {
							if !wire[i].compressed {
								continue
							}
							switch level {
							case -2:
								assert.Zero(t, st.Matches, "message %d: a match at HuffmanOnly", i)
							case 0:
								assert.Zero(t, st.Blocks[1]+st.Blocks[2], "message %d: a Huffman block at level 0", i)
							}
						}
						if takeover && bits >= 12 && level > 0 {
							// The repeat refers back to the first copy.
							assert.Less(t, len(wire[1].payload), len(wire[0].payload)/4, "takeover unused")
							if bits == 15 {
								assert.Less(t, len(wire[6].payload), len(wire[4].payload)/4, "takeover unused")
							}
						}
						if !fromServer {
							assert.Greater(t, len(wire[4].frames), 1, "the streamed message is fragmented")
						}
					}
				})
			}
		}
	}
}

func TestCompressStreamLarge(t *testing.T) {
	// Messages far larger than the write buffers, streamed both ways: the
	// client writes in pieces through NextWriter, the server relays with
	// io.Copy from NextReader to NextWriter. The second message repeats
	// the first, within the window, so with takeover it refers back
	// across fragments.
	rng := rand.New(rand.NewPCG(5, 5))
	text := chatText(rng, 20<<10)
	msgs := []chatMsg{{TextMessage, text}, {TextMessage, text}, {TextMessage, chatText(rng, 200<<10)}, {BinaryMessage, randomBytes(rng, 50<<10)}}
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			opts := CompressionOptions{ServerNoContextTakeover: !takeover, ClientNoContextTakeover: !takeover}
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts, WriteBufferSize: 2048}, echoOnUpgrade(echoStreamed))
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts, WriteBufferSize: 4096})
			sendAndEcho(t, c, msgs, func(int) bool { return true })
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			for _, fromServer := range []bool{false, true} {
				wire, _ := checkTappedDirection(t, tap, fromServer, takeover, 15, defaultCompressionThreshold, msgs)
				for i, m := range wire {
					if fromServer {
						// The relay's ReadFrom grows its buffer (doubling,
						// up to maxStreamFrame) rather than send a fragment
						// per write buffer, so these go out whole.
						assert.Len(t, m.frames, 1+len(msgs[i].data)/maxStreamFrame, "message %d from the server", i)
						continue
					}
					assert.Greater(t, len(m.frames), 1, "message %d is streamed in fragments from the client", i)
				}
				if takeover {
					assert.Less(t, len(wire[1].payload), len(wire[0].payload)/2, "takeover unused (from the server: %v)", fromServer)
				}
			}
		})
	}
}

func TestCompressPrepared(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := chatText(rng, 2000)
	pm, err := NewPreparedMessage(TextMessage, data)
	require.NoError(t, err)
	small, err := NewPreparedMessage(BinaryMessage, []byte("short, sent as it is"))
	require.NoError(t, err)
	other := chatText(rng, 500)
	want := []chatMsg{{TextMessage, data}, {TextMessage, data}, {BinaryMessage, []byte("short, sent as it is")}, {TextMessage, other}, {TextMessage, data}}

	type server struct {
		name     string
		opts     CompressionOptions
		disabled bool
		level0   bool // SetCompressionLevel(0) before the last message
	}
	servers := []server{
		{name: "takeover", opts: CompressionOptions{}},
		{name: "no takeover a", opts: CompressionOptions{ServerNoContextTakeover: true}},
		{name: "no takeover b", opts: CompressionOptions{ServerNoContextTakeover: true}},
		{name: "no takeover, window 9, level 9", opts: CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 9, Level: 9}},
		{name: "no takeover, level changed", opts: CompressionOptions{ServerNoContextTakeover: true}, level0: true},
		{name: "not negotiated", disabled: true},
	}
	// Every server writes once all clients are connected, so that the
	// prepared message is used concurrently.
	start := make(chan struct{})
	clients := make([]*Conn, len(servers))
	taps := make([]*trafficTap, len(servers))
	for i, s := range servers {
		s := s
		srv := upgradeServer(t, &Upgrader{EnableCompression: !s.disabled, Compression: s.opts}, func(c *Conn, err error) {
			if err != nil {
				return
			}
			<-start
			for i, m := range []*PreparedMessage{pm, pm, small} {
				if err := c.WritePreparedMessage(m); err != nil {
					c.WriteMessage(TextMessage, []byte(fmt.Sprintf("prepared %d: %v", i, err)))
					return
				}
			}
			c.WriteMessage(TextMessage, other)
			if s.level0 {
				c.SetCompressionLevel(0)
			}
			c.WritePreparedMessage(pm)
			echoStreamed(c)
		})
		clients[i], taps[i], _ = dialTapped(t, srv, &Dialer{EnableCompression: true})
	}
	close(start)
	for i, s := range servers {
		for j, w := range want {
			typ, p, err := clients[i].ReadMessage()
			require.NoError(t, err, "%s: message %d", s.name, j)
			require.Equal(t, w.typ, typ, "%s: message %d", s.name, j)
			require.True(t, bytes.Equal(w.data, p), "%s: message %d is %.60q", s.name, j, p)
		}
		require.NoError(t, clients[i].CloseGracefully(CloseNormalClosure, "", testWait))
	}

	wires := make([][]wireMessage, len(servers))
	for i, s := range servers {
		threshold := defaultCompressionThreshold
		if s.disabled {
			threshold = 1 << 30
		}
		bits := 15
		if s.opts.ServerMaxWindowBits != 0 {
			bits = s.opts.ServerMaxWindowBits
		}
		var stats []flatetest.Stats
		wires[i], stats = checkTappedDirection(t, taps[i], true, !s.opts.ServerNoContextTakeover, bits, threshold, want)
		if s.level0 {
			assert.Zero(t, stats[4].Blocks[1]+stats[4].Blocks[2], "%s: level 0 not applied to the prepared message", s.name)
		}
	}
	// One compression serves the servers that share level and
	// window: their frames are the same bytes.
	for _, w := range wires[1:3] {
		for _, j := range []int{0, 1, 4} {
			assert.Equal(t, wires[1][0].payload, w[j].payload)
		}
	}
	for _, j := range []int{0, 1} {
		assert.Equal(t, wires[1][0].payload, wires[4][j].payload)
	}
	assert.NotEqual(t, wires[3][0].payload, wires[1][0].payload, "the cache must tell level and window apart")
	assert.NotEqual(t, wires[4][4].payload, wires[4][0].payload, "the cache must tell levels apart")
	// With takeover each connection compresses on its own: the
	// second copy refers to the first.
	assert.Less(t, len(wires[0][1].payload), len(wires[0][0].payload)/4)
}

func TestCompressPreparedClient(t *testing.T) {
	data := chatText(rand.New(rand.NewPCG(13, 13)), 2000)
	pm, err := NewPreparedMessage(TextMessage, data)
	require.NoError(t, err)
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, echoOnUpgrade(echoStreamed))
	for _, takeover := range []bool{true, false} {
		c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: CompressionOptions{ClientNoContextTakeover: !takeover}})
		for i := 0; i < 3; i++ {
			require.NoError(t, c.WritePreparedMessage(pm))
			_, p, err := c.ReadMessage()
			require.NoError(t, err)
			require.True(t, bytes.Equal(data, p))
		}
		require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
		want := []chatMsg{{TextMessage, data}, {TextMessage, data}, {TextMessage, data}}
		wire, _ := checkTappedDirection(t, tap, false, takeover, 15, defaultCompressionThreshold, want)
		if takeover {
			assert.Less(t, len(wire[1].payload), len(wire[0].payload)/4)
		}
		checkTappedDirection(t, tap, true, true, 15, defaultCompressionThreshold, want)
	}
}

func TestCompressEnableWriteCompression(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 17))
	text := chatText(rng, 800)
	enabled := []bool{true, false, true, true, false, true}
	msgs := make([]chatMsg, len(enabled))
	for i := range msgs {
		msgs[i] = chatMsg{TextMessage, text}
	}
	for _, negotiated := range []bool{true, false} {
		t.Run(fmt.Sprintf("negotiated=%v", negotiated), func(t *testing.T) {
			// The server switches too, in its own pattern.
			srv := upgradeServer(t, &Upgrader{EnableCompression: negotiated}, func(c *Conn, err error) {
				for i := 0; err == nil; i++ {
					c.EnableWriteCompression(i%3 != 1)
					var typ int
					var p []byte
					if typ, p, err = c.ReadMessage(); err == nil {
						err = c.WriteMessage(typ, p)
					}
				}
			})
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
			for i, m := range msgs {
				c.EnableWriteCompression(enabled[i])
				require.NoError(t, c.WriteMessage(m.typ, m.data))
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.True(t, bytes.Equal(m.data, p), "echo %d", i)
			}
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			for _, fromServer := range []bool{false, true} {
				wire := tap.messages(t, fromServer)
				require.Len(t, wire, len(msgs))
				// Uncompressed messages stay out of the history: the
				// reference inflates only the compressed ones.
				ref := newReferenceInflater(true, 15)
				for i, m := range wire {
					want := negotiated && enabled[i]
					if fromServer {
						want = negotiated && i%3 != 1
					}
					require.Equal(t, want, m.compressed, "RSV1 on message %d (from the server: %v)", i, fromServer)
					got := m.payload
					if m.compressed {
						var err error
						got, _, err = ref.inflate(m.payload)
						require.NoError(t, err)
					}
					require.True(t, bytes.Equal(text, got))
				}
			}
		})
	}
}

func TestCompressSetCompressionLevel(t *testing.T) {
	levels := []int{1, 9, 0, -2, 6, 2, -1}
	msg := chatText(rand.New(rand.NewPCG(19, 19)), 3000)
	msgs := make([]chatMsg, len(levels))
	for i := range msgs {
		msgs[i] = chatMsg{TextMessage, msg}
	}
	srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: CompressionOptions{ServerNoContextTakeover: true}}, echoOnUpgrade(echoWhole))
	c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
	for _, bad := range []int{-3, 10, 100} {
		require.Error(t, c.SetCompressionLevel(bad))
	}
	for i, level := range levels {
		require.NoError(t, c.SetCompressionLevel(level))
		require.NoError(t, c.WriteMessage(TextMessage, msg))
		_, p, err := c.ReadMessage()
		require.NoError(t, err)
		require.True(t, bytes.Equal(msg, p), "echo %d", i)
	}
	require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
	wire, stats := checkTappedDirection(t, tap, false, true, 15, defaultCompressionThreshold, msgs)
	for i, level := range levels {
		st := stats[i]
		switch level {
		case 0:
			assert.Zero(t, st.Blocks[1]+st.Blocks[2], "level 0 uses stored blocks only")
			assert.GreaterOrEqual(t, len(wire[i].payload), len(msg))
		case -2:
			assert.Zero(t, st.Matches, "HuffmanOnly has no matches")
			assert.Less(t, len(wire[i].payload), len(msg))
		default:
			assert.Positive(t, st.Matches, "message %d at level %d", i, level)
		}
	}
	// The history is kept across a change of level: the second copy,
	// at level 9, refers back to the first, sent at level 1.
	assert.Less(t, len(wire[1].payload), len(msg)/10, "level 9 after level 1 refers back")
}

func TestCompressSetCompressionLevelConcurrent(t *testing.T) {
	// SetCompressionLevel and EnableWriteCompression race with the writes
	// they affect; every message must still arrive intact.
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, echoOnUpgrade(echoWhole))
	c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
	stop := make(chan struct{})
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.SetCompressionLevel(i%12 - 2)
			c.EnableWriteCompression(i%5 != 0)
		}
	}()
	msgs := chatCorpus(23, 200)
	for i, m := range msgs {
		require.NoError(t, c.WriteMessage(m.typ, m.data))
		_, p, err := c.ReadMessage()
		require.NoError(t, err)
		require.True(t, bytes.Equal(m.data, p), "echo %d", i)
	}
	close(stop)
	<-switched
	require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
	wire := tap.messages(t, false)
	require.Len(t, wire, len(msgs))
	ref := newReferenceInflater(true, 15)
	for i, m := range wire {
		got := m.payload
		if m.compressed {
			var err error
			got, _, err = ref.inflate(m.payload)
			require.NoError(t, err, "message %d", i)
		}
		require.True(t, bytes.Equal(msgs[i].data, got), "message %d", i)
	}
}

func TestCompressThreshold(t *testing.T) {
	sizes := []int{0, 1, 63, 64, 65, 199, 200, 3000, 5000}
	for _, tc := range []struct {
		name      string
		threshold int // the option
		effective int // what the test expects; negative: every message
	}{
		{"default", 0, defaultCompressionThreshold},
		{"every message", -1, -1},
		{"200", 200, 200},
		{"10000", 10000, 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := CompressionOptions{Threshold: tc.threshold}
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, echoOnUpgrade(echoWhole))
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true, Compression: opts})
			rng := rand.New(rand.NewPCG(29, 29))
			var msgs []chatMsg
			var streamed []bool
			for _, n := range sizes {
				m := chatMsg{BinaryMessage, chatText(rng, n)}
				for len(m.data) < n {
					m.data = append(m.data, 'x')
				}
				msgs = append(msgs, m, m, m)
				streamed = append(streamed, false, true, false)
			}
			for i, m := range msgs {
				switch {
				case i%3 == 2:
					// A prepared message follows the same rule.
					pm, err := NewPreparedMessage(m.typ, m.data)
					require.NoError(t, err)
					require.NoError(t, c.WritePreparedMessage(pm))
				case streamed[i]:
					writeInPieces(t, c, m.typ, m.data, 1000)
				default:
					require.NoError(t, c.WriteMessage(m.typ, m.data))
				}
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.True(t, bytes.Equal(m.data, p))
			}
			require.NoError(t, c.CloseGracefully(CloseNormalClosure, "", testWait))
			// The server answers with WriteMessage: the threshold as it is.
			checkTappedDirection(t, tap, true, true, 15, tc.effective, msgs)
			// A NextWriter message that overflowed the write buffer
			// (4 KiB) before Close is compressed whatever its size.
			wire := tap.messages(t, false)
			ref := newReferenceInflater(true, 15)
			for i, m := range wire {
				n := len(msgs[i].data)
				want := tc.effective < 0 || n >= tc.effective || streamed[i] && n > defaultWriteBufferSize
				require.Equal(t, want, m.compressed, "RSV1 on client message %d of %d bytes (streamed %v)", i, n, streamed[i])
				if m.compressed {
					got, _, err := ref.inflate(m.payload)
					require.NoError(t, err)
					require.True(t, bytes.Equal(msgs[i].data, got))
				}
			}
		})
	}
}
