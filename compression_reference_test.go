package websocket

// Long runs of compressed messages between our client or server and a raw
// peer that compresses and inflates with compress/flate.

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket/internal/flate/flatetest"
)

// chatCorpusSize is the number of messages of the long runs.
const chatCorpusSize = 10000

// TestCompressClientAgainstReference has our client send a long corpus with
// context takeover to a raw server that checks every message against the
// reference receiver: RSV1 exactly on the messages at or above the
// threshold, and every back-reference within the negotiated window.
func TestCompressClientAgainstReference(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     CompressionOptions
		wbuf     int // the write buffer: NextWriter messages above it are fragmented
		response string
		bits     int
		n        int
	}{
		{"window 15", CompressionOptions{}, 0, permessageDeflate, 15, chatCorpusSize},
		// Fewer messages: under the race detector the encoder's fixed cost
		// per message dominates.
		{"window 9 offered", CompressionOptions{ClientMaxWindowBits: 9}, 1024, permessageDeflate, 9, chatCorpusSize / 4},
		{"window 8 demanded", CompressionOptions{Level: 6}, 512, permessageDeflate + "; client_max_window_bits=8", 8, chatCorpusSize / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := chatCorpus(1, tc.n)
			ln := listenLoopback(t)
			stop := make(chan struct{})
			written := make(chan error, 1)
			go func() {
				written <- func() error {
					d := &Dialer{EnableCompression: true, Compression: tc.opts, WriteBufferSize: tc.wbuf}
					c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
					if err != nil {
						return err
					}
					defer c.Close()
					for i, m := range msgs {
						if i%5 == 4 || len(m.data) > 1000 {
							// In three writes: below the write buffer a
							// NextWriter message is one frame, above it
							// compressed fragments.
							// err is the loop's: w.Close's error below
							// must reach the check after the if.
							var w io.WriteCloser
							if w, err = c.NextWriter(m.typ); err != nil {
								return err
							}
							third := len(m.data) / 3
							for _, part := range [][]byte{m.data[:third], m.data[third : 2*third], m.data[2*third:]} {
								if _, err := w.Write(part); err != nil {
									return err
								}
							}
							err = w.Close()
						} else {
							err = c.WriteMessage(m.typ, m.data)
						}
						if err != nil {
							return fmt.Errorf("message %d: %w", i, err)
						}
					}
					<-stop
					return nil
				}()
			}()
			t.Cleanup(func() {
				close(stop)
				assert.NoError(t, <-written)
			})

			conn, br, req, err := acceptRawUpgrade(ln)
			require.NoError(t, err)
			defer conn.Close()
			require.NoError(t, conn.SetDeadline(time.Now().Add(4*testWait)))
			require.NoError(t, respond101(conn, req, tc.response))
			ref := newReferenceInflater(true, tc.bits)
			var fragmented, compressed int
			var maxDist int
			for i, want := range msgs {
				m, err := readWireMessage(br)
				require.NoError(t, err, "message %d", i)
				checkFraming(t, m, true)
				require.Equal(t, want.typ, int(m.op), "message %d", i)
				require.Equal(t, len(want.data) >= defaultCompressionThreshold, m.compressed, "RSV1 on message %d of %d bytes", i, len(want.data))
				got := m.payload
				if m.compressed {
					compressed++
					var st flatetest.Stats
					got, st, err = ref.inflate(m.payload)
					require.NoError(t, err, "message %d", i)
					maxDist = max(maxDist, st.MaxDist)
				}
				if len(m.frames) > 1 {
					fragmented++
				}
				require.True(t, bytes.Equal(want.data, got), "message %d differs", i)
			}
			// The corpus must have exercised what it is meant to.
			require.Greater(t, fragmented, tc.n/200)
			require.Greater(t, compressed, tc.n/2)
			require.Greater(t, maxDist, 1<<tc.bits/2, "the window was hardly used")
		})
	}
}

// TestCompressServerAgainstReference has a raw client compress a long
// corpus with context takeover (with compress/flate where the window is
// 32 KiB), some messages fragmented with pings between the fragments, some
// left uncompressed, and our server read every one of them back, in all
// the ways a message can be read.
func TestCompressServerAgainstReference(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  CompressionOptions
		offer string
		bits  int // the window the raw client compresses with
		n     int
	}{
		// One stdflate.Writer over the whole run.
		{"window 15", CompressionOptions{}, permessageDeflate + "; client_max_window_bits", 15, chatCorpusSize},
		// compress/flate cannot keep to a smaller window: the library's
		// encoder, audited message by message (see peerDeflater), with
		// fewer messages, as under the race detector its fixed cost per
		// message dominates.
		{"window 9 asked by the server", CompressionOptions{ClientMaxWindowBits: 9}, permessageDeflate + "; client_max_window_bits", 9, chatCorpusSize / 5},
		{"window 10 offered by the client", CompressionOptions{}, permessageDeflate + "; client_max_window_bits=10", 10, chatCorpusSize / 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := chatCorpus(2, tc.n)
			results := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: tc.opts}, func(c *Conn, err error) {
				results <- func() error {
					if err != nil {
						return err
					}
					buf := make([]byte, 100)
					for i, want := range msgs {
						var typ int
						var got []byte
						switch i % 4 {
						case 0, 1:
							typ, got, err = c.ReadMessage()
						case 2:
							var r io.Reader
							if typ, r, err = c.NextReader(); err == nil {
								got, err = io.ReadAll(r)
							}
						case 3:
							// Abandoned after a read: the rest must
							// still be inflated into the window.
							var r io.Reader
							if typ, r, err = c.NextReader(); err == nil {
								var n int
								n, err = io.ReadFull(r, buf[:min(len(want.data), len(buf))])
								got = buf[:n]
							}
						}
						switch {
						case err != nil:
							return fmt.Errorf("message %d: %w", i, err)
						case typ != want.typ:
							return fmt.Errorf("message %d: type %d", i, typ)
						case i%4 == 3 && !bytes.HasPrefix(want.data, got):
							return fmt.Errorf("message %d: read % x", i, got)
						case i%4 != 3 && !bytes.Equal(want.data, got):
							return fmt.Errorf("message %d differs", i)
						}
					}
					return nil
				}()
			})
			conn, br, resp := dialRawUpgrade(t, srv, tc.offer)
			require.NoError(t, conn.SetDeadline(time.Now().Add(4*testWait)))
			p := parseNegotiated(t, resp.Header.Get("Sec-Websocket-Extensions"))
			require.True(t, p.clientTakeover)
			require.GreaterOrEqual(t, p.clientBits, tc.bits)
			// The server answers pings; drain its pongs so that it never
			// blocks on them.
			go io.Copy(io.Discard, br)

			out := newPeerDeflater(true, tc.bits, stdflate.DefaultCompression)
			var stream []byte
			for i, m := range msgs {
				if i%11 == 5 {
					stream = append(stream, encodeFrame(true, 0, byte(m.typ), m.data, true)...)
				} else {
					z := out.compress(m.data)
					if i%7 == 3 {
						// Fragmented, with a ping inside.
						h := len(z) / 2
						stream = append(stream, encodeFrame(false, wireRSV1, byte(m.typ), z[:h], true)...)
						stream = append(stream, encodeFrame(true, 0, opPing, []byte("p"), true)...)
						stream = append(stream, encodeFrame(false, 0, opContinuation, z[h:], true)...)
						stream = append(stream, encodeFrame(true, 0, opContinuation, nil, true)...)
					} else {
						stream = append(stream, encodeFrame(true, wireRSV1, byte(m.typ), z, true)...)
					}
				}
				if len(stream) > 64<<10 || i == len(msgs)-1 {
					if _, err := conn.Write(stream); err != nil {
						require.NoError(t, <-results, "the server failed")
						require.NoError(t, err)
					}
					stream = stream[:0]
				}
			}
			require.NoError(t, <-results)
		})
	}
}
