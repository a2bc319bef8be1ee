package websocket

// Negotiating permessage-deflate: the server's answer to offers, the
// client's offer and its check of the server's response.

import (
	"bytes"
	stdflate "compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ---- the server's handshake ------------------------------------------------

func TestCompressHandshakeServer(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		disabled bool // EnableCompression false
		opts     CompressionOptions
		offer    []string // Sec-WebSocket-Extensions lines
		want     string   // the exact response value; "" for none
	}{
		{name: "no offer"},
		{name: "bare", offer: []string{pmd}, want: pmd},
		{name: "browser offer", offer: []string{pmd + "; client_max_window_bits"}, want: pmd},
		{name: "server_no_context_takeover", offer: []string{pmd + "; server_no_context_takeover"}, want: pmd + "; server_no_context_takeover"},
		{name: "client_no_context_takeover", offer: []string{pmd + "; client_no_context_takeover"}, want: pmd + "; client_no_context_takeover"},
		{name: "server_max_window_bits=10", offer: []string{pmd + "; server_max_window_bits=10"}, want: pmd + "; server_max_window_bits=10"},
		{name: "server_max_window_bits=8", offer: []string{pmd + "; server_max_window_bits=8"}, want: pmd + "; server_max_window_bits=8"},
		{name: "server_max_window_bits=15", offer: []string{pmd + "; server_max_window_bits=15"}, want: pmd + "; server_max_window_bits=15"},
		{name: "client_max_window_bits=8 hint", offer: []string{pmd + "; client_max_window_bits=8"}, want: pmd},
		{name: "client_max_window_bits=12 hint", offer: []string{pmd + "; client_max_window_bits=12"}, want: pmd},
		{name: "quoted value", offer: []string{pmd + `; server_max_window_bits="12"`}, want: pmd + "; server_max_window_bits=12"},
		{name: "every parameter", offer: []string{pmd + "; client_max_window_bits=12; server_max_window_bits=9; client_no_context_takeover; server_no_context_takeover"},
			want: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"},
		{name: "no spaces", offer: []string{pmd + ";server_no_context_takeover;server_max_window_bits=11"}, want: pmd + "; server_no_context_takeover; server_max_window_bits=11"},

		// The first acceptable offer wins; the others do not fail the
		// handshake.
		{name: "unknown parameter first", offer: []string{pmd + "; foo, " + pmd + "; server_max_window_bits=11"}, want: pmd + "; server_max_window_bits=11"},
		{name: "bad value first", offer: []string{pmd + "; server_max_window_bits=7, " + pmd + "; client_no_context_takeover"}, want: pmd + "; client_no_context_takeover"},
		{name: "first of two acceptable", offer: []string{pmd + "; server_no_context_takeover, " + pmd}, want: pmd + "; server_no_context_takeover"},
		{name: "other extension first", offer: []string{"x-webkit-deflate-frame, " + pmd + "; client_max_window_bits"}, want: pmd},
		{name: "second header line", offer: []string{pmd + "; server_max_window_bits=16", pmd + "; server_max_window_bits=10"}, want: pmd + "; server_max_window_bits=10"},
		{name: "malformed after a good offer", offer: []string{pmd + "; server_no_context_takeover, ;=;"}, want: pmd + "; server_no_context_takeover"},

		// Offers that are declined: the connection runs uncompressed.
		{name: "unknown parameter", offer: []string{pmd + "; foo"}},
		{name: "unknown parameter with value", offer: []string{pmd + "; foo=bar"}},
		{name: "duplicate flag", offer: []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}},
		{name: "duplicate window", offer: []string{pmd + "; server_max_window_bits=10; server_max_window_bits=10"}},
		{name: "duplicate client window", offer: []string{pmd + "; client_max_window_bits; client_max_window_bits=10"}},
		{name: "server_max_window_bits=7", offer: []string{pmd + "; server_max_window_bits=7"}},
		{name: "server_max_window_bits=16", offer: []string{pmd + "; server_max_window_bits=16"}},
		{name: "server_max_window_bits=abc", offer: []string{pmd + "; server_max_window_bits=abc"}},
		{name: "server_max_window_bits=08", offer: []string{pmd + "; server_max_window_bits=08"}},
		{name: "server_max_window_bits without value", offer: []string{pmd + "; server_max_window_bits"}},
		{name: "client_max_window_bits=7", offer: []string{pmd + "; client_max_window_bits=7"}},
		{name: "client_max_window_bits=16", offer: []string{pmd + "; client_max_window_bits=16"}},
		{name: "client_max_window_bits=abc", offer: []string{pmd + "; client_max_window_bits=abc"}},
		{name: "flag with value", offer: []string{pmd + "; client_no_context_takeover=1"}},
		{name: "names are case-sensitive", offer: []string{"Permessage-Deflate"}},
		{name: "other extension only", offer: []string{"x-webkit-deflate-frame"}},
		{name: "malformed", offer: []string{pmd + "; ="}},

		// The server's options.
		{name: "opts server_no_context_takeover", opts: CompressionOptions{ServerNoContextTakeover: true}, offer: []string{pmd}, want: pmd + "; server_no_context_takeover"},
		{name: "opts client_no_context_takeover", opts: CompressionOptions{ClientNoContextTakeover: true}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_no_context_takeover"},
		{name: "opts server window", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd}, want: pmd + "; server_max_window_bits=10"},
		{name: "opts server window, larger asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd + "; server_max_window_bits=12"}, want: pmd + "; server_max_window_bits=10"},
		{name: "opts server window, smaller asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, offer: []string{pmd + "; server_max_window_bits=9"}, want: pmd + "; server_max_window_bits=9"},
		{name: "opts server window 8", opts: CompressionOptions{ServerMaxWindowBits: 8}, offer: []string{pmd}, want: pmd + "; server_max_window_bits=8"},
		{name: "opts client window", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_max_window_bits=10"},
		{name: "opts client window, not allowed by the offer", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd}, want: pmd},
		{name: "opts client window, offer already smaller", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits=9"}, want: pmd},
		{name: "opts client window, offer larger", opts: CompressionOptions{ClientMaxWindowBits: 10}, offer: []string{pmd + "; client_max_window_bits=12"}, want: pmd + "; client_max_window_bits=10"},
		{name: "opts client window 8 asks for 9", opts: CompressionOptions{ClientMaxWindowBits: 8}, offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; client_max_window_bits=9"},
		{name: "opts everything", opts: CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 11, ClientMaxWindowBits: 12},
			offer: []string{pmd + "; client_max_window_bits"}, want: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12"},
		{name: "opts level and threshold", opts: CompressionOptions{Level: 9, Threshold: -1}, offer: []string{pmd}, want: pmd},
		{name: "opts declined offer", opts: CompressionOptions{ServerNoContextTakeover: true}, offer: []string{pmd + "; bogus"}},

		{name: "compression disabled", disabled: true, offer: []string{pmd + "; client_max_window_bits"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upgraded := make(chan error, 1)
			extensions := make(chan string, 1)
			u := &Upgrader{EnableCompression: !tc.disabled, Compression: tc.opts}
			srv := upgradeServer(t, u, func(c *Conn, err error) {
				if c != nil {
					extensions <- c.Extensions()
				}
				upgraded <- err
				if err == nil {
					echoWhole(c)
				}
			})
			conn, br, resp := dialRawUpgrade(t, srv, tc.offer...)
			require.NoError(t, <-upgraded, "an offer never fails the upgrade")
			require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
			got := resp.Header.Values("Sec-Websocket-Extensions")
			if tc.want == "" {
				require.Empty(t, got)
			} else {
				require.Equal(t, []string{tc.want}, got)
			}
			assert.Equal(t, tc.want, <-extensions, "the server Conn's Extensions")

			// Both ends must now agree on the parameters: two copies of a
			// message go each way, compressed as negotiated.
			msg := chatText(rand.New(rand.NewPCG(7, 7)), 600)
			var p negotiatedParams
			if tc.want != "" {
				p = parseNegotiated(t, tc.want)
			}
			// The raw client keeps its history only where the window it
			// may use holds the whole earlier message: a window it
			// promised in its offer binds it too.
			hinted := strings.Contains(strings.Join(tc.offer, ","), "client_max_window_bits=")
			out := newPeerDeflater(p.clientTakeover && p.clientBits == 15 && !hinted, 15, stdflate.BestCompression)
			in := newReferenceInflater(p.serverTakeover, p.serverBits)
			for i := 0; i < 2; i++ {
				if tc.want == "" {
					_, err := conn.Write(encodeFrame(true, 0, opText, msg, true))
					require.NoError(t, err)
				} else {
					_, err := conn.Write(encodeFrame(true, wireRSV1, opText, out.compress(msg), true))
					require.NoError(t, err)
				}
				m, err := readWireMessage(br)
				require.NoError(t, err)
				checkFraming(t, m, false)
				require.Equal(t, tc.want != "", m.compressed, "RSV1 on the echo")
				got := m.payload
				if m.compressed {
					got, _, err = in.inflate(m.payload)
					require.NoError(t, err, "echo %d", i)
				}
				require.Equal(t, string(msg), string(got))
			}
		})
	}
}

func TestCompressHandshakeServerBadOptions(t *testing.T) {
	for _, opts := range []CompressionOptions{
		{ServerMaxWindowBits: 16},
		{ServerMaxWindowBits: 7},
		{ServerMaxWindowBits: -1},
		{ClientMaxWindowBits: 16},
		{ClientMaxWindowBits: 1},
		{Level: 10},
		{Level: -3},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			upgraded := make(chan error, 1)
			srv := upgradeServer(t, &Upgrader{EnableCompression: true, Compression: opts}, func(c *Conn, err error) {
				upgraded <- err
			})
			_, _, resp := dialRawUpgrade(t, srv, permessageDeflate)
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			err := <-upgraded
			var he HandshakeError
			require.ErrorAs(t, err, &he)
			require.ErrorContains(t, err, "CompressionOptions")

			// The options are checked whether or not the client offers
			// compression.
			_, _, resp = dialRawUpgrade(t, srv)
			require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
			require.Error(t, <-upgraded)
		})
	}
}

// ---- the client's handshake ------------------------------------------------

// rawServerResult is what a raw server saw of one client.
type rawServerResult struct {
	offer []string
	err   error
	// Valid responses: the client's messages, inflated, and whether each
	// was compressed.
	got        [][]byte
	compressed []bool
	// Invalid responses: what reading after the response met.
	afterErr error
}

// serveRawClient answers one client on ln with a 101 carrying ext. For a
// valid response it then reads the client's n messages (inflating them as
// p says) and sends back replies, compressed when compress is set; for an
// invalid one it reads until the client closes.
func serveRawClient(ln net.Listener, ext []string, valid bool, p negotiatedParams, n int, replies [][]byte, compress bool) <-chan rawServerResult {
	done := make(chan rawServerResult, 1)
	go func() {
		var res rawServerResult
		defer func() { done <- res }()
		conn, br, req, err := acceptRawUpgrade(ln)
		if err != nil {
			res.err = err
			return
		}
		defer conn.Close()
		res.offer = req.Header.Values("Sec-Websocket-Extensions")
		if res.err = respond101(conn, req, ext...); res.err != nil {
			return
		}
		if !valid {
			_, res.afterErr = br.ReadByte()
			return
		}
		ref := newReferenceInflater(p.clientTakeover, p.clientBits)
		for i := 0; i < n; i++ {
			m, err := readWireMessage(br)
			if err != nil {
				res.err = err
				return
			}
			if !m.frames[0].masked || m.frames[0].rsv&^wireRSV1 != 0 {
				res.err = fmt.Errorf("message %d: bad first frame %+v", i, m.frames[0])
				return
			}
			data := m.payload
			if m.compressed {
				if data, _, err = ref.inflate(m.payload); err != nil {
					res.err = fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
			res.got = append(res.got, data)
			res.compressed = append(res.compressed, m.compressed)
		}
		out := newPeerDeflater(p.serverTakeover && p.serverBits == 15, 15, stdflate.BestCompression)
		for _, r := range replies {
			frame := encodeFrame(true, 0, opBinary, r, false)
			if compress {
				frame = encodeFrame(true, wireRSV1, opBinary, out.compress(r), false)
			}
			if _, res.err = conn.Write(frame); res.err != nil {
				return
			}
		}
		// Wait for the client to close.
		_, err = readCloseCode(br)
		if err != nil && !errors.Is(err, io.EOF) {
			res.err = err
		}
	}()
	return done
}

func TestCompressDialOffer(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		disabled bool
		opts     CompressionOptions
		offer    string // "" for none
		response string
	}{
		{name: "default", offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "server_no_context_takeover", opts: CompressionOptions{ServerNoContextTakeover: true},
			offer: pmd + "; server_no_context_takeover; client_max_window_bits", response: pmd + "; server_no_context_takeover"},
		{name: "client_no_context_takeover", opts: CompressionOptions{ClientNoContextTakeover: true},
			offer: pmd + "; client_no_context_takeover; client_max_window_bits", response: pmd},
		{name: "server window", opts: CompressionOptions{ServerMaxWindowBits: 10},
			offer: pmd + "; server_max_window_bits=10; client_max_window_bits", response: pmd + "; server_max_window_bits=10"},
		{name: "server window 15 is the default", opts: CompressionOptions{ServerMaxWindowBits: 15},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "client window", opts: CompressionOptions{ClientMaxWindowBits: 9},
			offer: pmd + "; client_max_window_bits=9", response: pmd},
		{name: "client window 15 is the default", opts: CompressionOptions{ClientMaxWindowBits: 15},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "level and threshold are not offered", opts: CompressionOptions{Level: 9, Threshold: -1},
			offer: pmd + "; client_max_window_bits", response: pmd},
		{name: "everything", opts: CompressionOptions{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 12, ClientMaxWindowBits: 11},
			offer:    pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"},
		{name: "disabled", disabled: true, opts: CompressionOptions{ServerNoContextTakeover: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			var ext []string
			if tc.response != "" {
				ext = []string{tc.response}
			}
			done := serveRawClient(ln, ext, true, negotiatedParams{}, 0, nil, false)
			d := &Dialer{EnableCompression: !tc.disabled, Compression: tc.opts}
			c, _, err := d.Dial("ws://"+ln.Addr().String()+"/", nil)
			require.NoError(t, err)
			require.NoError(t, c.Close())
			res := <-done
			require.NoError(t, res.err)
			if tc.offer == "" {
				require.Empty(t, res.offer)
			} else {
				require.Equal(t, []string{tc.offer}, res.offer)
			}
		})
	}
}

func TestCompressDialBadOptions(t *testing.T) {
	for _, opts := range []CompressionOptions{
		{ServerMaxWindowBits: 16},
		{ServerMaxWindowBits: 7},
		{ClientMaxWindowBits: 16},
		{ClientMaxWindowBits: -1},
		{Level: 10},
		{Level: -3},
	} {
		t.Run(fmt.Sprintf("%+v", opts), func(t *testing.T) {
			// Nothing listens there: the options fail the dial before
			// it connects.
			ln := listenLoopback(t)
			addr := ln.Addr().String()
			ln.Close()
			d := &Dialer{EnableCompression: true, Compression: opts}
			c, resp, err := d.Dial("ws://"+addr+"/", nil)
			require.Nil(t, c)
			require.Nil(t, resp)
			require.ErrorContains(t, err, "CompressionOptions")
		})
	}
}

func TestCompressDialResponse(t *testing.T) {
	const pmd = permessageDeflate
	for _, tc := range []struct {
		name     string
		opts     CompressionOptions
		response []string // Sec-WebSocket-Extensions lines of the 101
		valid    bool
		p        negotiatedParams // valid responses: what each side must use
	}{
		{name: "declined", response: nil, valid: true},
		{name: "bare", response: []string{pmd}, valid: true, p: negotiatedParams{true, true, 15, 15}},
		{name: "server_no_context_takeover unasked", response: []string{pmd + "; server_no_context_takeover"}, valid: true, p: negotiatedParams{false, true, 15, 15}},
		{name: "client_no_context_takeover demanded", response: []string{pmd + "; client_no_context_takeover"}, valid: true, p: negotiatedParams{true, false, 15, 15}},
		{name: "client window demanded", response: []string{pmd + "; client_max_window_bits=9"}, valid: true, p: negotiatedParams{true, true, 15, 9}},
		{name: "client window 8 demanded", response: []string{pmd + "; client_max_window_bits=8"}, valid: true, p: negotiatedParams{true, true, 15, 8}},
		{name: "server window unasked", response: []string{pmd + "; server_max_window_bits=10"}, valid: true, p: negotiatedParams{true, true, 10, 15}},
		{name: "client promise kept without echo", opts: CompressionOptions{ClientNoContextTakeover: true}, response: []string{pmd}, valid: true, p: negotiatedParams{true, false, 15, 15}},
		{name: "client window offered", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd}, valid: true, p: negotiatedParams{true, true, 15, 10}},
		{name: "client window lowered", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd + "; client_max_window_bits=9"}, valid: true, p: negotiatedParams{true, true, 15, 9}},
		{name: "requests granted", opts: CompressionOptions{ServerNoContextTakeover: true, ServerMaxWindowBits: 10},
			response: []string{pmd + "; server_no_context_takeover; server_max_window_bits=9"}, valid: true, p: negotiatedParams{false, true, 9, 15}},
		{name: "quoted value", response: []string{pmd + `; client_max_window_bits="11"`}, valid: true, p: negotiatedParams{true, true, 15, 11}},

		{name: "unknown parameter", response: []string{pmd + "; foo"}},
		{name: "unknown parameter with value", response: []string{pmd + "; foo=1"}},
		{name: "duplicate parameter", response: []string{pmd + "; client_no_context_takeover; client_no_context_takeover"}},
		{name: "flag with value", response: []string{pmd + "; server_no_context_takeover=1"}},
		{name: "client window without value", response: []string{pmd + "; client_max_window_bits"}},
		{name: "client window 16", response: []string{pmd + "; client_max_window_bits=16"}},
		{name: "client window above the offer", opts: CompressionOptions{ClientMaxWindowBits: 10}, response: []string{pmd + "; client_max_window_bits=11"}},
		{name: "server window 7", response: []string{pmd + "; server_max_window_bits=7"}},
		{name: "server window abc", response: []string{pmd + "; server_max_window_bits=abc"}},
		{name: "server window larger than asked", opts: CompressionOptions{ServerMaxWindowBits: 10}, response: []string{pmd + "; server_max_window_bits=11"}},
		{name: "server window request ignored", opts: CompressionOptions{ServerMaxWindowBits: 10}, response: []string{pmd}},
		{name: "server_no_context_takeover not granted", opts: CompressionOptions{ServerNoContextTakeover: true}, response: []string{pmd + "; client_no_context_takeover"}},
		{name: "two elements", response: []string{pmd + ", " + pmd}},
		{name: "two header lines", response: []string{pmd, pmd + "; server_no_context_takeover"}},
		{name: "another extension", response: []string{"x-webkit-deflate-frame"}},
		{name: "another extension too", response: []string{pmd + ", x-foo"}},
		{name: "names are case-sensitive", response: []string{"Permessage-Deflate"}},
		{name: "malformed", response: []string{pmd + "; ="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln := listenLoopback(t)
			msgs := [][]byte{chatText(rand.New(rand.NewPCG(3, 3)), 700), nil, []byte("short")}
			msgs[1] = msgs[0]
			replies := [][]byte{bytes.Repeat([]byte("reply "), 100), bytes.Repeat([]byte("reply "), 100)}
			done := serveRawClient(ln, tc.response, tc.valid, tc.p, len(msgs), replies, tc.response != nil)
			before := libraryGoroutines()
			d := &Dialer{EnableCompression: true, Compression: tc.opts}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, resp, err := d.DialContext(ctx, "ws://"+ln.Addr().String()+"/", nil)
			if !tc.valid {
				require.ErrorIs(t, err, errInvalidCompression)
				require.Nil(t, c)
				require.NotNil(t, resp, "the response comes with the error")
				require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
				require.Equal(t, tc.response, resp.Header.Values("Sec-Websocket-Extensions"))
				res := <-done
				require.NoError(t, res.err)
				require.ErrorIs(t, res.afterErr, io.EOF, "the client must close the connection")
				require.LessOrEqual(t, libraryGoroutines(), before, "a goroutine outlived DialContext")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, strings.Join(tc.response, ", "), c.Extensions(), "the client Conn's Extensions")
			for _, m := range msgs {
				require.NoError(t, c.WriteMessage(BinaryMessage, m))
			}
			for _, r := range replies {
				_, p, err := c.ReadMessage()
				require.NoError(t, err)
				require.Equal(t, r, p)
			}
			require.NoError(t, c.WriteControl(CloseMessage, FormatCloseMessage(CloseNormalClosure, ""), time.Now().Add(testWait)))
			res := <-done
			require.NoError(t, res.err)
			require.Equal(t, msgs, res.got)
			negotiated := tc.response != nil
			require.Equal(t, []bool{negotiated, negotiated, false}, res.compressed, "RSV1 where compressed")
		})
	}
}
