package websocket

// Hostile and broken peers of a compressed connection: inflation bombs,
// misused RSV bits, corrupt or truncated streams, invalid UTF-8 once
// inflated, data after a final block, references outside the history;
// and the read limit applied to inflated sizes.

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deflateBomb is a few KiB of compressed data that inflates to 4 MiB of zeros.
var deflateBomb = sync.OnceValue(func() []byte {
	return newPeerDeflater(false, 15, stdflate.BestCompression).compress(make([]byte, 4<<20))
})

// deflateFinal compresses msg into a complete stream ending with a BFINAL
// block.
func deflateFinal(msg []byte) []byte {
	var b bytes.Buffer
	fw, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
	fw.Write(msg)
	fw.Close()
	return b.Bytes()
}

// deflateWithDict compresses msg as a peer whose history holds dict.
func deflateWithDict(msg, dict []byte) []byte {
	var b bytes.Buffer
	fw, _ := stdflate.NewWriterDict(&b, stdflate.BestCompression, dict)
	fw.Write(msg)
	fw.Flush()
	return bytes.TrimSuffix(b.Bytes(), syncFlushTail)
}

func TestCompressBadPeer(t *testing.T) {
	pmd := permessageDeflate
	rng := rand.New(rand.NewPCG(31, 31))
	letters := make([]byte, 600)
	for i := range letters {
		letters[i] = 'a' + byte(rng.IntN(26))
	}
	text := chatText(rng, 3000)
	truncated := newPeerDeflater(false, 15, stdflate.BestCompression).compress(text)
	truncated = truncated[:len(truncated)/2]
	frame := encodeFrame
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, tc := range []struct {
		name string
		// The negotiation: the raw client's offer, the raw server's
		// response ("" for none), our server's answer to the offer where
		// it is not that response, and the options of our side.
		offer, response, answer string
		opts                    CompressionOptions
		limit                   int64
		before                  int // messages that must arrive before the failure
		send                    func(mask bool) []byte
		want                    error // ErrReadLimit or a *ProtocolError with the close code
		code                    int   // the close code the peer receives
	}{
		{name: "bomb", offer: pmd, response: pmd, limit: 1 << 10,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, deflateBomb(), mask) },
			want: ErrReadLimit, code: CloseMessageTooBig},
		{name: "fragmented bomb", offer: pmd, response: pmd, limit: 1 << 10,
			send: func(mask bool) []byte {
				z := deflateBomb()
				return cat(frame(false, wireRSV1, opText, z[:10], mask), frame(false, 0, opContinuation, z[10:100], mask), frame(true, 0, opContinuation, z[100:], mask))
			},
			want: ErrReadLimit, code: CloseMessageTooBig},
		{name: "RSV1 on a continuation", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				z := newPeerDeflater(false, 15, 6).compress(text)
				return cat(frame(false, wireRSV1, opText, z[:10], mask), frame(true, wireRSV1, opContinuation, z[10:], mask))
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on an uncompressed message's continuation", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return cat(frame(false, 0, opText, []byte("abc"), mask), frame(true, wireRSV1, opContinuation, []byte("def"), mask))
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on a ping", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opPing, []byte("p"), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 on a close", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opClose, FormatCloseMessage(1000, ""), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV2 with compression", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV2, opText, []byte("x"), mask) },
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 without compression", offer: "", response: "",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(text), mask)
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "RSV1 when the server declined", offer: pmd + "; bogus", response: "",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(text), mask)
			},
			want: &ProtocolError{Code: CloseProtocolError}, code: CloseProtocolError},
		{name: "corrupt data", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, []byte{0xff, 0xff, 0xff, 0xff}, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "stored length check", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, []byte{0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5}, mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated stored block", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, []byte{0x00, 0x0a, 0x00, 0xf5, 0xff, 'a', 'b', 'c'}, mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated Huffman block", offer: pmd, response: pmd,
			send: func(mask bool) []byte { return frame(true, wireRSV1, opBinary, truncated, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "truncated block the restored tail ends", offer: pmd, response: pmd,
			// A fixed Huffman block cut after "the ": the first seven
			// zero bits of the restored tail read as its end-of-block
			// code, and the rest as a stored block cut short. The
			// payload did not end at a block boundary: it is invalid,
			// and compress/flate (hence gorilla) refuses it.
			send: func(mask bool) []byte { return frame(true, wireRSV1, opText, []byte{0x2a, 0xc9, 0x48, 0x55}, mask) },
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "invalid UTF-8 once inflated", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				bad := append(bytes.Clone(text[:2000]), 0xff)
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress(bad), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "UTF-8 cut at the end once inflated", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opText, newPeerDeflater(false, 15, 6).compress([]byte("caf\xc3")), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "data after a final block", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, append(deflateFinal(text), 0x00), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "data after a final block in a later frame", offer: pmd, response: pmd,
			send: func(mask bool) []byte {
				return cat(frame(false, wireRSV1, opBinary, deflateFinal(text), mask), frame(true, 0, opContinuation, []byte{0x00}, mask))
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "reference into a history not kept", offer: pmd + "; client_no_context_takeover", response: pmd + "; server_no_context_takeover", answer: pmd + "; client_no_context_takeover",
			send: func(mask bool) []byte {
				return frame(true, wireRSV1, opBinary, deflateWithDict(letters, letters), mask)
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
		{name: "reference beyond the window", offer: pmd + "; client_max_window_bits=9", response: pmd + "; server_max_window_bits=9", answer: pmd, before: 1,
			send: func(mask bool) []byte {
				d := newPeerDeflater(true, 15, stdflate.BestCompression)
				return cat(frame(true, wireRSV1, opBinary, d.compress(letters), mask), frame(true, wireRSV1, opBinary, d.compress(letters), mask))
			},
			want: &ProtocolError{Code: CloseInvalidFramePayloadData}, code: CloseInvalidFramePayloadData},
	} {
		check := func(t *testing.T, err error) {
			t.Helper()
			if pe, ok := tc.want.(*ProtocolError); ok {
				var got *ProtocolError
				require.ErrorAs(t, err, &got)
				require.Equal(t, pe.Code, got.Code, "%v", err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		}
		t.Run("server/"+tc.name, func(t *testing.T) {
			results := make(chan error, 2)
			u := &Upgrader{EnableCompression: tc.offer != "", Compression: tc.opts}
			srv := upgradeServer(t, u, func(c *Conn, err error) {
				if err != nil {
					results <- err
					return
				}
				c.SetReadLimit(tc.limit)
				for i := 0; i < tc.before; i++ {
					if _, _, err := c.ReadMessage(); err != nil {
						results <- fmt.Errorf("message %d: %w", i, err)
						return
					}
				}
				_, _, err = c.ReadMessage()
				results <- err
				if err != nil {
					_, _, err2 := c.ReadMessage()
					results <- err2
				}
			})
			var offer []string
			if tc.offer != "" {
				offer = []string{tc.offer}
			}
			conn, br, resp := dialRawUpgrade(t, srv, offer...)
			answer := tc.response
			if tc.answer != "" {
				answer = tc.answer
			}
			require.Equal(t, answer, resp.Header.Get("Sec-Websocket-Extensions"))
			_, err := conn.Write(tc.send(true))
			require.NoError(t, err)
			err = <-results
			check(t, err)
			require.Equal(t, err, <-results, "the error is permanent")
			code, err := readCloseCode(br)
			require.NoError(t, err)
			assert.Equal(t, tc.code, code)
		})
		t.Run("client/"+tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			codes := make(chan error, 1)
			var code int
			go func() {
				codes <- func() error {
					conn, br, req, err := acceptRawUpgrade(ln)
					if err != nil {
						return err
					}
					defer conn.Close()
					var ext []string
					if tc.response != "" {
						ext = []string{tc.response}
					}
					if err := respond101(conn, req, ext...); err != nil {
						return err
					}
					if _, err := conn.Write(tc.send(false)); err != nil {
						return err
					}
					code, err = readCloseCode(br)
					return err
				}()
			}()
			d := &Dialer{EnableCompression: tc.offer != "", Compression: tc.opts}
			c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
			require.NoError(t, err)
			defer c.Close()
			c.SetReadLimit(tc.limit)
			for i := 0; i < tc.before; i++ {
				_, _, err := c.ReadMessage()
				require.NoError(t, err, "message %d", i)
			}
			_, _, err = c.ReadMessage()
			check(t, err)
			_, _, err2 := c.ReadMessage()
			require.Equal(t, err, err2, "the error is permanent")
			require.NoError(t, <-codes)
			assert.Equal(t, tc.code, code)
		})
	}
}

func TestCompressReadLimitBoundary(t *testing.T) {
	// The limit applies to the inflated size, as with uncompressed
	// messages: exactly the limit passes, one byte more fails.
	const limit = 1000
	for _, n := range []int{limit, limit + 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			results := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true}, func(c *Conn, err error) {
				if err == nil {
					c.SetReadLimit(limit)
					var p []byte
					if _, p, err = c.ReadMessage(); err == nil && len(p) != n {
						err = fmt.Errorf("read %d bytes", len(p))
					}
				}
				results <- err
			})
			c, tap, _ := dialTapped(t, srv, &Dialer{EnableCompression: true})
			require.NoError(t, c.WriteMessage(BinaryMessage, make([]byte, n)))
			err := <-results
			wire := tap.messages(t, false)
			require.Len(t, wire, 1)
			require.True(t, wire[0].compressed)
			require.Less(t, len(wire[0].payload), 100)
			if n == limit {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrReadLimit)
			_, _, err = c.ReadMessage()
			require.True(t, IsCloseError(err, CloseMessageTooBig), "%v", err)
		})
	}
}

func TestCompressNineForEight(t *testing.T) {
	// zlib cannot compress with a 256-byte window and uses 512 when told
	// 8 (compression_negotiate.go): the server inflates such a peer's
	// messages all the same.
	msgs := chatCorpus(37, 300)
	results := make(chan error, 1)
	srv := upgradeServer(t, &Upgrader{EnableCompression: true}, func(c *Conn, err error) {
		for i := 0; err == nil && i < len(msgs); i++ {
			var p []byte
			if _, p, err = c.ReadMessage(); err == nil && !bytes.Equal(p, msgs[i].data) {
				err = fmt.Errorf("message %d differs", i)
			}
		}
		results <- err
	})
	conn, _, resp := dialRawUpgrade(t, srv, permessageDeflate+"; client_max_window_bits=8")
	require.Equal(t, permessageDeflate, resp.Header.Get("Sec-Websocket-Extensions"))
	out := newPeerDeflater(true, 9, stdflate.DefaultCompression)
	var stream []byte
	for _, m := range msgs {
		stream = append(stream, encodeFrame(true, wireRSV1, byte(m.typ), out.compress(m.data), true)...)
	}
	_, err := conn.Write(stream)
	require.NoError(t, err)
	require.NoError(t, <-results)
}
