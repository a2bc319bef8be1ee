package websocket

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseOffers parses Sec-WebSocket-Extensions header lines as a server or
// client receives them.
func parseOffers(t testing.TB, lines ...string) []extensionOffer {
	t.Helper()
	offers, ok := parseExtensions(http.Header{"Sec-Websocket-Extensions": lines}, -1)
	require.True(t, ok, "parseExtensions(%q)", lines)
	return offers
}

// paramsOf builds a pmdParams.
func paramsOf(serverNCT, clientNCT bool, serverBits, clientBits int) pmdParams {
	return pmdParams{
		serverNoContextTakeover: serverNCT,
		clientNoContextTakeover: clientNCT,
		serverMaxWindowBits:     serverBits,
		clientMaxWindowBits:     clientBits,
	}
}

// clientOptsFor returns client options whose clientOffer means the same
// as offer (a valid permessage-deflate offer): what a client that sent
// offer would have been configured with.
func clientOptsFor(t testing.TB, offer extensionOffer) pmdOptions {
	t.Helper()
	w, err := parsePMD(offer, false)
	require.NoError(t, err)
	opts := pmdOptions{
		serverNoContextTakeover: w.serverNoContextTakeover,
		clientNoContextTakeover: w.clientNoContextTakeover,
		serverMaxWindowBits:     w.serverMaxWindowBits,
		clientMaxWindowBits:     w.clientMaxWindowBits,
	}
	if !w.hasClientMaxWindowBits {
		opts.minWindowBits = 9
	}
	return opts
}

// checkResponseRoundTrip checks that a response negotiateServer gave to offer
// is well formed, that a client that sent offer accepts it and derives the
// same parameters, and that the client's own rendering of the same offer
// negotiates the same parameters.
func checkResponseRoundTrip(t testing.TB, offer extensionOffer, sopts pmdOptions, p pmdParams, response string) {
	t.Helper()
	resp := parseOffers(t, response)
	require.Len(t, resp, 1, response)
	require.Equal(t, pmdName, resp[0].Name)
	r, err := parsePMD(resp[0], true)
	require.NoError(t, err, response)
	assert.Equal(t, response, r.String(), "response not in canonical form")
	for _, bits := range []int{p.serverMaxWindowBits, p.clientMaxWindowBits} {
		assert.True(t, bits >= 8 && bits <= 15, "window bits %d in %+v", bits, p)
	}

	copts := clientOptsFor(t, offer)
	cp, negotiated, err := acceptServerResponse(resp, copts)
	require.NoError(t, err, "offer %+v, response %q", offer, response)
	require.True(t, negotiated)
	assert.Equal(t, p, cp, "client and server disagree on %q", response)

	p2, _, ok := negotiateServer(parseOffers(t, clientOffer(copts)), sopts)
	require.True(t, ok, "clientOffer %q declined", clientOffer(copts))
	assert.Equal(t, p, p2, "clientOffer %q negotiates differently", clientOffer(copts))
}

func TestNegotiateServerTable(t *testing.T) {
	const pmd = "permessage-deflate"
	for _, tc := range []struct {
		name     string
		offer    []string // header lines
		opts     pmdOptions
		ok       bool
		response string
		p        pmdParams
	}{
		// One parameter at a time, default server options.
		{name: "bare", offer: []string{pmd}, ok: true, response: pmd, p: paramsOf(false, false, 15, 15)},
		{name: "server_no_context_takeover", offer: []string{pmd + "; server_no_context_takeover"}, ok: true,
			response: pmd + "; server_no_context_takeover", p: paramsOf(true, false, 15, 15)},
		{name: "client_no_context_takeover echoed", offer: []string{pmd + "; client_no_context_takeover"}, ok: true,
			response: pmd + "; client_no_context_takeover", p: paramsOf(false, true, 15, 15)},
		{name: "server_max_window_bits=8", offer: []string{pmd + "; server_max_window_bits=8"}, ok: true,
			response: pmd + "; server_max_window_bits=8", p: paramsOf(false, false, 8, 15)},
		{name: "server_max_window_bits=9", offer: []string{pmd + "; server_max_window_bits=9"}, ok: true,
			response: pmd + "; server_max_window_bits=9", p: paramsOf(false, false, 9, 15)},
		{name: "server_max_window_bits=15 must be answered", offer: []string{pmd + "; server_max_window_bits=15"}, ok: true,
			response: pmd + "; server_max_window_bits=15", p: paramsOf(false, false, 15, 15)},
		{name: "client_max_window_bits", offer: []string{pmd + "; client_max_window_bits"}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 15)},
		{name: "client_max_window_bits=8 hint", offer: []string{pmd + "; client_max_window_bits=8"}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 8)},
		{name: "client_max_window_bits=9 hint", offer: []string{pmd + "; client_max_window_bits=9"}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 9)},
		{name: "client_max_window_bits=15 hint", offer: []string{pmd + "; client_max_window_bits=15"}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 15)},

		// Combinations and forms.
		{name: "all four", offer: []string{pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12"}, ok: true,
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10", p: paramsOf(true, true, 10, 12)},
		{name: "any parameter order, canonical response", offer: []string{pmd + ";client_max_window_bits;server_max_window_bits=11;client_no_context_takeover;server_no_context_takeover"}, ok: true,
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11", p: paramsOf(true, true, 11, 15)},
		{name: "both takeovers", offer: []string{pmd + "; server_no_context_takeover; client_no_context_takeover"}, ok: true,
			response: pmd + "; server_no_context_takeover; client_no_context_takeover", p: paramsOf(true, true, 15, 15)},
		{name: "both window sizes", offer: []string{pmd + "; server_max_window_bits=12; client_max_window_bits=13"}, ok: true,
			response: pmd + "; server_max_window_bits=12", p: paramsOf(false, false, 12, 13)},
		{name: "quoted values", offer: []string{pmd + `; server_max_window_bits="10"; client_max_window_bits="9"`}, ok: true,
			response: pmd + "; server_max_window_bits=10", p: paramsOf(false, false, 10, 9)},
		{name: "quoted value with escape", offer: []string{pmd + `; server_max_window_bits="1\1"`}, ok: true,
			response: pmd + "; server_max_window_bits=11", p: paramsOf(false, false, 11, 15)},

		// Invalid values: the offer is declined, not the handshake.
		{name: "server_max_window_bits=7", offer: []string{pmd + "; server_max_window_bits=7"}},
		{name: "server_max_window_bits=16", offer: []string{pmd + "; server_max_window_bits=16"}},
		{name: "server_max_window_bits=08", offer: []string{pmd + "; server_max_window_bits=08"}},
		{name: "server_max_window_bits=010", offer: []string{pmd + "; server_max_window_bits=010"}},
		{name: "server_max_window_bits=+9", offer: []string{pmd + "; server_max_window_bits=+9"}},
		{name: "server_max_window_bits=-9", offer: []string{pmd + "; server_max_window_bits=-9"}},
		{name: "server_max_window_bits=abc", offer: []string{pmd + "; server_max_window_bits=abc"}},
		{name: "server_max_window_bits=1e1", offer: []string{pmd + "; server_max_window_bits=1e1"}},
		{name: "server_max_window_bits=0", offer: []string{pmd + "; server_max_window_bits=0"}},
		{name: "server_max_window_bits quoted with space", offer: []string{pmd + `; server_max_window_bits=" 9"`}},
		{name: "server_max_window_bits without value", offer: []string{pmd + "; server_max_window_bits"}},
		{name: "client_max_window_bits=7", offer: []string{pmd + "; client_max_window_bits=7"}},
		{name: "client_max_window_bits=16", offer: []string{pmd + "; client_max_window_bits=16"}},
		{name: "client_max_window_bits=08", offer: []string{pmd + "; client_max_window_bits=08"}},
		{name: "client_max_window_bits=abc", offer: []string{pmd + "; client_max_window_bits=abc"}},
		{name: "client_max_window_bits=+15", offer: []string{pmd + "; client_max_window_bits=+15"}},
		{name: "server_no_context_takeover with value", offer: []string{pmd + "; server_no_context_takeover=1"}},
		{name: "server_no_context_takeover with quoted value", offer: []string{pmd + `; server_no_context_takeover="x"`}},
		{name: "client_no_context_takeover with value", offer: []string{pmd + "; client_no_context_takeover=true"}},

		// Duplicates and unknown parameters.
		{name: "duplicate server_no_context_takeover", offer: []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}},
		{name: "duplicate client_no_context_takeover", offer: []string{pmd + "; client_no_context_takeover; client_no_context_takeover"}},
		{name: "duplicate server_max_window_bits", offer: []string{pmd + "; server_max_window_bits=10; server_max_window_bits=10"}},
		{name: "duplicate server_max_window_bits, different values", offer: []string{pmd + "; server_max_window_bits=10; server_max_window_bits=12"}},
		{name: "duplicate client_max_window_bits", offer: []string{pmd + "; client_max_window_bits; client_max_window_bits"}},
		{name: "duplicate client_max_window_bits, with and without value", offer: []string{pmd + "; client_max_window_bits; client_max_window_bits=10"}},
		{name: "unknown parameter", offer: []string{pmd + "; mem_level=8"}},
		{name: "unknown parameter after valid ones", offer: []string{pmd + "; server_no_context_takeover; x"}},
		{name: "parameter names are case-sensitive", offer: []string{pmd + "; Server_No_Context_Takeover"}},

		// Other extensions and lists.
		{name: "no offer", offer: nil},
		{name: "empty header", offer: []string{""}},
		{name: "extension name is case-sensitive", offer: []string{"Permessage-Deflate"}},
		{name: "other extension only", offer: []string{"x-webkit-deflate-frame"}},
		{name: "other extension first", offer: []string{"x-webkit-deflate-frame; no_context_takeover, permessage-deflate; client_max_window_bits"}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 15)},
		{name: "invalid first, valid second", offer: []string{pmd + "; server_max_window_bits=7, " + pmd + "; server_no_context_takeover"}, ok: true,
			response: pmd + "; server_no_context_takeover", p: paramsOf(true, false, 15, 15)},
		{name: "duplicate first, valid second on another line", offer: []string{pmd + "; client_max_window_bits; client_max_window_bits", pmd + "; client_no_context_takeover"}, ok: true,
			response: pmd + "; client_no_context_takeover", p: paramsOf(false, true, 15, 15)},
		{name: "unknown first, other extension, valid third", offer: []string{pmd + "; foo, x-foo, " + pmd + "; server_max_window_bits=9"}, ok: true,
			response: pmd + "; server_max_window_bits=9", p: paramsOf(false, false, 9, 15)},
		{name: "first valid offer wins", offer: []string{pmd + "; server_no_context_takeover, " + pmd}, ok: true,
			response: pmd + "; server_no_context_takeover", p: paramsOf(true, false, 15, 15)},
		{name: "all invalid", offer: []string{pmd + "; a, " + pmd + "; server_max_window_bits, x-foo"}},

		// Server options.
		{name: "server resets its compressor", offer: []string{pmd + "; client_max_window_bits"}, opts: pmdOptions{serverNoContextTakeover: true}, ok: true,
			response: pmd + "; server_no_context_takeover", p: paramsOf(true, false, 15, 15)},
		{name: "server requires the client to reset", offer: []string{pmd}, opts: pmdOptions{clientNoContextTakeover: true}, ok: true,
			response: pmd + "; client_no_context_takeover", p: paramsOf(false, true, 15, 15)},
		{name: "server announces a smaller window", offer: []string{pmd}, opts: pmdOptions{serverMaxWindowBits: 10}, ok: true,
			response: pmd + "; server_max_window_bits=10", p: paramsOf(false, false, 10, 15)},
		{name: "offer larger than the server's window", offer: []string{pmd + "; server_max_window_bits=12"}, opts: pmdOptions{serverMaxWindowBits: 10}, ok: true,
			response: pmd + "; server_max_window_bits=10", p: paramsOf(false, false, 10, 15)},
		{name: "offer smaller than the server's window", offer: []string{pmd + "; server_max_window_bits=9"}, opts: pmdOptions{serverMaxWindowBits: 10}, ok: true,
			response: pmd + "; server_max_window_bits=9", p: paramsOf(false, false, 9, 15)},
		{name: "offer of 15, server window 10", offer: []string{pmd + "; server_max_window_bits=15"}, opts: pmdOptions{serverMaxWindowBits: 10}, ok: true,
			response: pmd + "; server_max_window_bits=10", p: paramsOf(false, false, 10, 15)},
		{name: "offer below the compressor's minimum", offer: []string{pmd + "; server_max_window_bits=8"}, opts: pmdOptions{minWindowBits: 9}},
		{name: "offer at the compressor's minimum", offer: []string{pmd + "; server_max_window_bits=9"}, opts: pmdOptions{minWindowBits: 9}, ok: true,
			response: pmd + "; server_max_window_bits=9", p: paramsOf(false, false, 9, 15)},
		{name: "offer below the minimum, fallback offer", offer: []string{pmd + "; server_max_window_bits=8; server_no_context_takeover, " + pmd + "; server_no_context_takeover"}, opts: pmdOptions{minWindowBits: 9}, ok: true,
			response: pmd + "; server_no_context_takeover", p: paramsOf(true, false, 15, 15)},
		{name: "compressor without window control declines 14", offer: []string{pmd + "; server_max_window_bits=14"}, opts: pmdOptions{minWindowBits: 15}},
		{name: "compressor without window control accepts 15", offer: []string{pmd + "; server_max_window_bits=15"}, opts: pmdOptions{minWindowBits: 15}, ok: true,
			response: pmd + "; server_max_window_bits=15", p: paramsOf(false, false, 15, 15)},
		{name: "server window below its minimum is raised", offer: []string{pmd}, opts: pmdOptions{serverMaxWindowBits: 9, minWindowBits: 12}, ok: true,
			response: pmd + "; server_max_window_bits=12", p: paramsOf(false, false, 12, 15)},
		{name: "server limits the client's window", offer: []string{pmd + "; client_max_window_bits"}, opts: pmdOptions{clientMaxWindowBits: 10}, ok: true,
			response: pmd + "; client_max_window_bits=10", p: paramsOf(false, false, 15, 10)},
		{name: "server limits below the client's hint", offer: []string{pmd + "; client_max_window_bits=12"}, opts: pmdOptions{clientMaxWindowBits: 10}, ok: true,
			response: pmd + "; client_max_window_bits=10", p: paramsOf(false, false, 15, 10)},
		{name: "client's hint already within the limit", offer: []string{pmd + "; client_max_window_bits=10"}, opts: pmdOptions{clientMaxWindowBits: 10}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 10)},
		{name: "client's hint below the limit", offer: []string{pmd + "; client_max_window_bits=9"}, opts: pmdOptions{clientMaxWindowBits: 10}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 9)},
		{name: "client without client_max_window_bits cannot be limited", offer: []string{pmd}, opts: pmdOptions{clientMaxWindowBits: 10}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 15)},
		{name: "server never asks a client for 8", offer: []string{pmd + "; client_max_window_bits"}, opts: pmdOptions{clientMaxWindowBits: 8}, ok: true,
			response: pmd + "; client_max_window_bits=9", p: paramsOf(false, false, 15, 9)},
		{name: "client's own hint of 8 kept", offer: []string{pmd + "; client_max_window_bits=8"}, opts: pmdOptions{clientMaxWindowBits: 8}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 8)},
		{name: "options clamped: too small", offer: []string{pmd}, opts: pmdOptions{serverMaxWindowBits: 3}, ok: true,
			response: pmd + "; server_max_window_bits=8", p: paramsOf(false, false, 8, 15)},
		{name: "options clamped: too large", offer: []string{pmd + "; client_max_window_bits"}, opts: pmdOptions{serverMaxWindowBits: 20, clientMaxWindowBits: 20, minWindowBits: 1}, ok: true,
			response: pmd, p: paramsOf(false, false, 15, 15)},
		{name: "all server options, browser offer", offer: []string{pmd + "; client_max_window_bits"},
			opts: pmdOptions{serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11}, ok: true,
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11",
			p:        paramsOf(true, true, 12, 11)},
		{name: "all server options, offer without client_max_window_bits", offer: []string{pmd},
			opts: pmdOptions{serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11}, ok: true,
			response: pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12",
			p:        paramsOf(true, true, 12, 15)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			offers := parseOffers(t, tc.offer...)
			p, response, ok := negotiateServer(offers, tc.opts)
			require.Equal(t, tc.ok, ok, "response %q", response)
			if !ok {
				assert.Empty(t, response)
				assert.Equal(t, pmdParams{}, p)
				return
			}
			assert.Equal(t, tc.response, response)
			assert.Equal(t, tc.p, p)
			for _, o := range offers {
				if _, _, ok := negotiateServer([]extensionOffer{o}, tc.opts); ok {
					checkResponseRoundTrip(t, o, tc.opts, p, response)
					break
				}
			}
		})
	}
}

// TestNegotiateServerCombinations negotiates every combination of the four
// parameters, each absent, valueless or with a valid or invalid value,
// under a range of server options, and checks the outcome against the
// rules of RFC 7692 section 7.1.
func TestNegotiateServerCombinations(t *testing.T) {
	type param struct {
		text  string // as it appears after "; ", "" for absent
		valid bool
		bits  int // window size, 0 when absent or valueless
	}
	flag := func(name string) []param {
		return []param{{valid: true}, {text: name, valid: true}, {text: name + "=1"}, {text: name + "; " + name}}
	}
	bits := func(name string, bare bool) []param {
		ps := []param{{valid: true}, {text: name, valid: bare}}
		for _, v := range []string{"7", "8", "9", "12", "15", "16", "08", "abc", `"10"`} {
			p := param{text: name + "=" + v}
			if n, ok := pmdWindowBits(strings.Trim(v, `"`)); ok {
				p.valid, p.bits = true, n
			}
			ps = append(ps, p)
		}
		return append(ps, param{text: name + "=9; " + name + "=9"})
	}
	var serverOpts []pmdOptions
	for _, snct := range []bool{false, true} {
		for _, cnct := range []bool{false, true} {
			for _, sBits := range []int{0, 10} {
				for _, cBits := range []int{0, 8, 11} {
					for _, minBits := range []int{0, 9} {
						serverOpts = append(serverOpts, pmdOptions{
							serverNoContextTakeover: snct, clientNoContextTakeover: cnct,
							serverMaxWindowBits: sBits, clientMaxWindowBits: cBits, minWindowBits: minBits,
						})
					}
				}
			}
		}
	}

	n := 0
	for _, snct := range flag(pmdServerNoContextTakeover) {
		for _, cnct := range flag(pmdClientNoContextTakeover) {
			for _, smwb := range bits(pmdServerMaxWindowBits, false) {
				for _, cmwb := range bits(pmdClientMaxWindowBits, true) {
					header := pmdName
					for _, p := range []param{snct, cnct, smwb, cmwb} {
						if p.text != "" {
							header += "; " + p.text
						}
					}
					offers := parseOffers(t, header)
					valid := snct.valid && cnct.valid && smwb.valid && cmwb.valid
					for _, opts := range serverOpts {
						n++
						minBits := max(opts.minWindowBits, 8)
						acceptable := valid && (smwb.text == "" || smwb.bits >= minBits)
						p, response, ok := negotiateServer(offers, opts)
						if !assert.Equal(t, acceptable, ok, "%q %+v: %q", header, opts, response) || !ok {
							continue
						}
						r, err := parsePMD(parseOffers(t, response)[0], true)
						require.NoError(t, err)
						what := fmt.Sprintf("%q %+v -> %q", header, opts, response)

						// 7.1.1.1: accepting server_no_context_takeover means
						// saying it; the server may say it on its own.
						assert.Equal(t, snct.text != "" || opts.serverNoContextTakeover, r.serverNoContextTakeover, what)
						assert.Equal(t, r.serverNoContextTakeover, p.serverNoContextTakeover, what)
						// 7.1.1.2: echoed when offered, or required.
						assert.Equal(t, cnct.text != "" || opts.clientNoContextTakeover, r.clientNoContextTakeover, what)
						assert.Equal(t, r.clientNoContextTakeover, p.clientNoContextTakeover, what)

						// 7.1.2.1: a requested window is answered with the
						// same or a smaller value; otherwise announced only
						// when below 15.
						serverBits := max(15, minBits)
						if opts.serverMaxWindowBits != 0 {
							serverBits = max(opts.serverMaxWindowBits, minBits)
						}
						if smwb.text != "" {
							assert.Equal(t, min(smwb.bits, serverBits), r.serverMaxWindowBits, what)
						} else if serverBits < 15 {
							assert.Equal(t, serverBits, r.serverMaxWindowBits, what)
						} else {
							assert.Zero(t, r.serverMaxWindowBits, what)
						}
						if r.serverMaxWindowBits != 0 {
							assert.Equal(t, r.serverMaxWindowBits, p.serverMaxWindowBits, what)
						} else {
							assert.Equal(t, 15, p.serverMaxWindowBits, what)
						}
						assert.GreaterOrEqual(t, p.serverMaxWindowBits, minBits, what)

						// 7.1.2.2: only when offered; never above the
						// client's hint; never 8.
						clientBound := 15
						if cmwb.bits != 0 {
							clientBound = cmwb.bits
						}
						if cmwb.text == "" {
							assert.False(t, r.hasClientMaxWindowBits, what)
							assert.Equal(t, 15, p.clientMaxWindowBits, what)
						} else if limit := max(opts.clientMaxWindowBits, 9); opts.clientMaxWindowBits != 0 && limit < clientBound {
							assert.True(t, r.hasClientMaxWindowBits, what)
							assert.Equal(t, limit, r.clientMaxWindowBits, what)
							assert.Equal(t, limit, p.clientMaxWindowBits, what)
						} else {
							assert.False(t, r.hasClientMaxWindowBits, what)
							assert.Equal(t, clientBound, p.clientMaxWindowBits, what)
						}

						checkResponseRoundTrip(t, offers[0], opts, p, response)
					}
				}
			}
		}
	}
	t.Logf("%d negotiations", n)
}

func TestNegotiateClientOffer(t *testing.T) {
	const pmd = "permessage-deflate"
	for _, tc := range []struct {
		name string
		opts pmdOptions
		want string
	}{
		{"default, as browsers", pmdOptions{}, pmd + "; client_max_window_bits"},
		{"request server_no_context_takeover", pmdOptions{serverNoContextTakeover: true}, pmd + "; server_no_context_takeover; client_max_window_bits"},
		{"promise client_no_context_takeover", pmdOptions{clientNoContextTakeover: true}, pmd + "; client_no_context_takeover; client_max_window_bits"},
		{"request server window 10", pmdOptions{serverMaxWindowBits: 10}, pmd + "; server_max_window_bits=10; client_max_window_bits"},
		{"request server window 8", pmdOptions{serverMaxWindowBits: 8}, pmd + "; server_max_window_bits=8; client_max_window_bits"},
		{"server window 15 is no request", pmdOptions{serverMaxWindowBits: 15}, pmd + "; client_max_window_bits"},
		{"own window 12 declared", pmdOptions{clientMaxWindowBits: 12}, pmd + "; client_max_window_bits=12"},
		{"own window 8 declared", pmdOptions{clientMaxWindowBits: 8}, pmd + "; client_max_window_bits=8"},
		{"own window 15 not declared", pmdOptions{clientMaxWindowBits: 15}, pmd + "; client_max_window_bits"},
		{"compressor cannot go to 8", pmdOptions{minWindowBits: 9}, pmd},
		{"compressor cannot go to 8, own window 12", pmdOptions{minWindowBits: 9, clientMaxWindowBits: 12}, pmd},
		{"clamped", pmdOptions{serverMaxWindowBits: 3, clientMaxWindowBits: 99}, pmd + "; server_max_window_bits=8; client_max_window_bits"},
		{"everything", pmdOptions{serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 9, clientMaxWindowBits: 10},
			pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := clientOffer(tc.opts)
			assert.Equal(t, tc.want, got)

			// What we offer, our server accepts as it is, and we accept
			// what it answers.
			offers := parseOffers(t, got)
			require.Len(t, offers, 1)
			for _, sopts := range []pmdOptions{{}, {serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 12, clientMaxWindowBits: 11}} {
				sp, response, ok := negotiateServer(offers, sopts)
				require.True(t, ok)
				cp, negotiated, err := acceptServerResponse(parseOffers(t, response), tc.opts)
				require.NoError(t, err, "response %q", response)
				require.True(t, negotiated)
				assert.Equal(t, sp.serverNoContextTakeover, cp.serverNoContextTakeover)
				assert.Equal(t, sp.clientNoContextTakeover, cp.clientNoContextTakeover)
				assert.Equal(t, sp.serverMaxWindowBits, cp.serverMaxWindowBits)
				// The client knows its own window; the server only the bound.
				assert.LessOrEqual(t, cp.clientMaxWindowBits, sp.clientMaxWindowBits)
			}
		})
	}
}

func TestNegotiateAcceptServerResponse(t *testing.T) {
	const pmd = "permessage-deflate"
	dflt := pmdOptions{}
	for _, tc := range []struct {
		name     string
		opts     pmdOptions
		response []string // header lines
		err      string   // substring of the error, "" for success
		p        pmdParams
		declined bool
	}{
		// Accepted.
		{name: "declined: no header", opts: dflt, response: nil, declined: true},
		{name: "declined: empty header", opts: dflt, response: []string{" , "}, declined: true},
		{name: "bare", opts: dflt, response: []string{pmd}, p: paramsOf(false, false, 15, 15)},
		{name: "server_no_context_takeover unrequested", opts: dflt, response: []string{pmd + "; server_no_context_takeover"}, p: paramsOf(true, false, 15, 15)},
		{name: "client_no_context_takeover unrequested", opts: dflt, response: []string{pmd + "; client_no_context_takeover"}, p: paramsOf(false, true, 15, 15)},
		{name: "server_max_window_bits=8 unrequested", opts: dflt, response: []string{pmd + "; server_max_window_bits=8"}, p: paramsOf(false, false, 8, 15)},
		{name: "server_max_window_bits=9 unrequested", opts: dflt, response: []string{pmd + "; server_max_window_bits=9"}, p: paramsOf(false, false, 9, 15)},
		{name: "server_max_window_bits=15 unrequested", opts: dflt, response: []string{pmd + "; server_max_window_bits=15"}, p: paramsOf(false, false, 15, 15)},
		{name: "client_max_window_bits=8", opts: dflt, response: []string{pmd + "; client_max_window_bits=8"}, p: paramsOf(false, false, 15, 8)},
		{name: "client_max_window_bits=9", opts: dflt, response: []string{pmd + "; client_max_window_bits=9"}, p: paramsOf(false, false, 15, 9)},
		{name: "client_max_window_bits=15", opts: dflt, response: []string{pmd + "; client_max_window_bits=15"}, p: paramsOf(false, false, 15, 15)},
		{name: "quoted values", opts: dflt, response: []string{pmd + `; server_max_window_bits="10"; client_max_window_bits="11"`}, p: paramsOf(false, false, 10, 11)},
		{name: "all four, any order", opts: dflt, response: []string{pmd + ";client_max_window_bits=9;client_no_context_takeover;server_max_window_bits=10;server_no_context_takeover"}, p: paramsOf(true, true, 10, 9)},
		{name: "promised client_no_context_takeover holds without echo", opts: pmdOptions{clientNoContextTakeover: true}, response: []string{pmd}, p: paramsOf(false, true, 15, 15)},
		{name: "requested server_no_context_takeover granted", opts: pmdOptions{serverNoContextTakeover: true}, response: []string{pmd + "; server_no_context_takeover"}, p: paramsOf(true, false, 15, 15)},
		{name: "requested server window granted", opts: pmdOptions{serverMaxWindowBits: 10}, response: []string{pmd + "; server_max_window_bits=10"}, p: paramsOf(false, false, 10, 15)},
		{name: "requested server window granted smaller", opts: pmdOptions{serverMaxWindowBits: 10}, response: []string{pmd + "; server_max_window_bits=8"}, p: paramsOf(false, false, 8, 15)},
		{name: "own window kept without response", opts: pmdOptions{clientMaxWindowBits: 12}, response: []string{pmd}, p: paramsOf(false, false, 15, 12)},
		{name: "own window answered the same", opts: pmdOptions{clientMaxWindowBits: 12}, response: []string{pmd + "; client_max_window_bits=12"}, p: paramsOf(false, false, 15, 12)},
		{name: "own window lowered by the server", opts: pmdOptions{clientMaxWindowBits: 12}, response: []string{pmd + "; client_max_window_bits=9"}, p: paramsOf(false, false, 15, 9)},
		{name: "own window without client_max_window_bits offered", opts: pmdOptions{clientMaxWindowBits: 12, minWindowBits: 10}, response: []string{pmd}, p: paramsOf(false, false, 15, 12)},

		// Not what was offered.
		{name: "other extension", opts: dflt, response: []string{"x-foo"}, err: `extension "x-foo", which was not offered`},
		{name: "other extension after ours", opts: dflt, response: []string{pmd + ", x-foo"}, err: `"x-foo"`},
		{name: "other extension before ours", opts: dflt, response: []string{"x-foo; a=1, " + pmd}, err: `"x-foo"`},
		{name: "extension name is case-sensitive", opts: dflt, response: []string{"Permessage-Deflate"}, err: `"Permessage-Deflate"`},
		{name: "twice", opts: dflt, response: []string{pmd + ", " + pmd}, err: "2 times"},
		{name: "twice on two lines", opts: dflt, response: []string{pmd, pmd + "; server_no_context_takeover"}, err: "2 times"},
		{name: "unknown parameter", opts: dflt, response: []string{pmd + "; mem_level=8"}, err: `unknown parameter "mem_level"`},
		{name: "parameter names are case-sensitive", opts: dflt, response: []string{pmd + "; Server_No_Context_Takeover"}, err: "unknown parameter"},
		{name: "duplicate server_no_context_takeover", opts: dflt, response: []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}, err: "duplicate parameter server_no_context_takeover"},
		{name: "duplicate client_no_context_takeover", opts: dflt, response: []string{pmd + "; client_no_context_takeover; client_no_context_takeover"}, err: "duplicate parameter client_no_context_takeover"},
		{name: "duplicate server_max_window_bits", opts: dflt, response: []string{pmd + "; server_max_window_bits=9; server_max_window_bits=10"}, err: "duplicate parameter server_max_window_bits"},
		{name: "duplicate client_max_window_bits", opts: dflt, response: []string{pmd + "; client_max_window_bits=9; client_max_window_bits=9"}, err: "duplicate parameter client_max_window_bits"},
		{name: "server_no_context_takeover with value", opts: dflt, response: []string{pmd + "; server_no_context_takeover=1"}, err: "takes no value"},
		{name: "client_no_context_takeover with value", opts: dflt, response: []string{pmd + `; client_no_context_takeover="x"`}, err: "takes no value"},
		{name: "server_max_window_bits without value", opts: dflt, response: []string{pmd + "; server_max_window_bits"}, err: "needs a value"},
		{name: "client_max_window_bits without value", opts: dflt, response: []string{pmd + "; client_max_window_bits"}, err: "needs a value"},
		{name: "server_max_window_bits=7", opts: dflt, response: []string{pmd + "; server_max_window_bits=7"}, err: "not a window size"},
		{name: "server_max_window_bits=16", opts: dflt, response: []string{pmd + "; server_max_window_bits=16"}, err: "not a window size"},
		{name: "server_max_window_bits=08", opts: dflt, response: []string{pmd + "; server_max_window_bits=08"}, err: "not a window size"},
		{name: "server_max_window_bits=abc", opts: dflt, response: []string{pmd + "; server_max_window_bits=abc"}, err: "not a window size"},
		{name: "server_max_window_bits=+9", opts: dflt, response: []string{pmd + "; server_max_window_bits=+9"}, err: "not a window size"},
		{name: "client_max_window_bits=7", opts: dflt, response: []string{pmd + "; client_max_window_bits=7"}, err: "not a window size"},
		{name: "client_max_window_bits=16", opts: dflt, response: []string{pmd + "; client_max_window_bits=16"}, err: "not a window size"},
		{name: "client_max_window_bits=010", opts: dflt, response: []string{pmd + "; client_max_window_bits=010"}, err: "not a window size"},
		{name: "client_max_window_bits not offered", opts: pmdOptions{minWindowBits: 9}, response: []string{pmd + "; client_max_window_bits=12"}, err: "client_max_window_bits, which was not offered"},
		{name: "client_max_window_bits above the offered value", opts: pmdOptions{clientMaxWindowBits: 12}, response: []string{pmd + "; client_max_window_bits=13"}, err: "client_max_window_bits=13 to an offer of 12"},
		{name: "requested server_no_context_takeover not granted", opts: pmdOptions{serverNoContextTakeover: true}, response: []string{pmd + "; client_no_context_takeover"}, err: "did not grant the requested server_no_context_takeover"},
		{name: "requested server window not granted", opts: pmdOptions{serverMaxWindowBits: 10}, response: []string{pmd}, err: "did not grant the requested server_max_window_bits=10"},
		{name: "requested server window exceeded", opts: pmdOptions{serverMaxWindowBits: 10}, response: []string{pmd + "; server_max_window_bits=11"}, err: "server_max_window_bits=11 to a request for 10"},
		{name: "requested server window 8, answered 9", opts: pmdOptions{serverMaxWindowBits: 8}, response: []string{pmd + "; server_max_window_bits=9"}, err: "server_max_window_bits=9 to a request for 8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			response, ok := parseExtensions(http.Header{"Sec-Websocket-Extensions": tc.response}, -1)
			require.True(t, ok)
			p, negotiated, err := acceptServerResponse(response, tc.opts)
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, errInvalidCompression)
				assert.True(t, strings.HasPrefix(err.Error(), "websocket: "), err.Error())
				assert.Contains(t, err.Error(), tc.err)
				assert.False(t, negotiated)
				assert.Equal(t, pmdParams{}, p)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, !tc.declined, negotiated)
			assert.Equal(t, tc.p, p)
		})
	}
}

// TestNegotiateAutobahn13 negotiates the offers and answers of the Autobahn
// testsuite's 13.* cases (case12_x_x.py: DEFLATE_PARAMS, and the strings
// its PerMessageDeflateOffer and PerMessageDeflateOfferAccept build).
func TestNegotiateAutobahn13(t *testing.T) {
	const pmd = "permessage-deflate"
	// The fuzzing client's offers (it always adds client_no_context_takeover
	// and client_max_window_bits: accept_no_context_takeover and
	// accept_max_window_bits default to true).
	const (
		suiteOffer    = pmd + "; client_no_context_takeover; client_max_window_bits"
		suiteOfferNCT = suiteOffer + "; server_no_context_takeover"
	)
	t.Run("as server", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			offer    string
			response string
			p        pmdParams
		}{
			{"13.1 default", suiteOffer, pmd + "; client_no_context_takeover", paramsOf(false, true, 15, 15)},
			{"13.2 no context takeover", suiteOfferNCT, pmd + "; server_no_context_takeover; client_no_context_takeover", paramsOf(true, true, 15, 15)},
			{"13.3 window 8", suiteOffer + "; server_max_window_bits=8", pmd + "; client_no_context_takeover; server_max_window_bits=8", paramsOf(false, true, 8, 15)},
			{"13.4 window 15", suiteOffer + "; server_max_window_bits=15", pmd + "; client_no_context_takeover; server_max_window_bits=15", paramsOf(false, true, 15, 15)},
			{"13.5 no context takeover, window 8", suiteOfferNCT + "; server_max_window_bits=8", pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8", paramsOf(true, true, 8, 15)},
			{"13.6 no context takeover, window 15", suiteOfferNCT + "; server_max_window_bits=15", pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15", paramsOf(true, true, 15, 15)},
			{"13.7 list of three", suiteOfferNCT + "; server_max_window_bits=8, " + suiteOfferNCT + ", " + suiteOffer, pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8", paramsOf(true, true, 8, 15)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				offers := parseOffers(t, tc.offer)
				p, response, ok := negotiateServer(offers, pmdOptions{})
				require.True(t, ok)
				assert.Equal(t, tc.response, response)
				assert.Equal(t, tc.p, p)
				checkResponseRoundTrip(t, offers[0], pmdOptions{}, p, response)

				// A server whose compressor cannot go below 9 falls back
				// to the next offer of 13.7 and declines 13.3 and 13.5.
				p9, response9, ok9 := negotiateServer(offers, pmdOptions{minWindowBits: 9})
				switch {
				case strings.HasPrefix(tc.name, "13.7"):
					require.True(t, ok9)
					assert.Equal(t, pmd+"; server_no_context_takeover; client_no_context_takeover", response9)
					assert.Equal(t, paramsOf(true, true, 15, 15), p9)
				case strings.Contains(tc.offer, "server_max_window_bits=8"):
					assert.False(t, ok9, response9)
				default:
					assert.True(t, ok9)
				}

				// With a limit on the client's window, every offer (all
				// carry client_max_window_bits) gets one.
				pl, responsel, okl := negotiateServer(offers, pmdOptions{clientMaxWindowBits: 10})
				require.True(t, okl)
				assert.True(t, strings.HasSuffix(responsel, "; client_max_window_bits=10"), responsel)
				assert.Equal(t, 10, pl.clientMaxWindowBits)
			})
		}
	})

	t.Run("as client", func(t *testing.T) {
		// The fuzzing server's accept1..accept7 answer our default offer
		// ("permessage-deflate; client_max_window_bits") with these.
		offer := clientOffer(pmdOptions{})
		require.Equal(t, pmd+"; client_max_window_bits", offer)
		for _, tc := range []struct {
			name     string
			response string
			p        pmdParams
		}{
			{"13.1 accept1", pmd, paramsOf(false, false, 15, 15)},
			{"13.2 accept2", pmd + "; client_no_context_takeover", paramsOf(false, true, 15, 15)},
			{"13.3 accept3", pmd + "; client_max_window_bits=8", paramsOf(false, false, 15, 8)},
			{"13.4 accept4", pmd + "; client_max_window_bits=15", paramsOf(false, false, 15, 15)},
			{"13.5 accept5", pmd + "; client_no_context_takeover; client_max_window_bits=8", paramsOf(false, true, 15, 8)},
			{"13.6 accept6", pmd + "; client_no_context_takeover; client_max_window_bits=15", paramsOf(false, true, 15, 15)},
			{"13.7 accept7", pmd + "; client_no_context_takeover; client_max_window_bits=8", paramsOf(false, true, 15, 8)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, negotiated, err := acceptServerResponse(parseOffers(t, tc.response), pmdOptions{})
				require.NoError(t, err)
				require.True(t, negotiated)
				assert.Equal(t, tc.p, p)
			})
		}
	})
}

// TestNegotiateRealWorldOffers checks what common clients send.
func TestNegotiateRealWorldOffers(t *testing.T) {
	for _, tc := range []struct {
		name, offer, response string
	}{
		{"Chromium, Firefox, ws, Python websockets", "permessage-deflate; client_max_window_bits", "permessage-deflate"},
		{"gorilla", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"old Safari", "x-webkit-deflate-frame", ""},
		{"Python websockets, no takeover", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", "permessage-deflate; server_max_window_bits=12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, response, ok := negotiateServer(parseOffers(t, tc.offer), pmdOptions{})
			assert.Equal(t, tc.response != "", ok)
			assert.Equal(t, tc.response, response)
		})
	}
}

// FuzzNegotiateServer: any header must negotiate without panicking, and an
// accepted offer's response must be well formed and accepted, with the same
// parameters, by a client that sent that offer.
func FuzzNegotiateServer(f *testing.F) {
	f.Add("permessage-deflate; client_max_window_bits", uint16(0))
	f.Add("permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8", uint16(0x1ff))
	f.Add(`permessage-deflate; server_max_window_bits=7, x-foo; a="b", permessage-deflate; client_max_window_bits="10"`, uint16(0x2a5))
	f.Add("permessage-deflate; server_max_window_bits=08; server_max_window_bits=8, permessage-deflate; foo", uint16(0xffff))
	f.Add("permessage-deflate;server_no_context_takeover=1,permessage-deflate;client_max_window_bits=15", uint16(0x13))
	f.Fuzz(func(t *testing.T, header string, flags uint16) {
		// flags: bit 0 server NCT, bit 1 client NCT, bits 2-5 server
		// window, bits 6-9 client window, bits 10-13 minimum: 0 (the
		// default) or 5..19, values outside 8..15 included for the
		// clamping.
		bits := func(shift uint) int {
			if v := int(flags >> shift & 15); v != 0 {
				return v + 4
			}
			return 0
		}
		opts := pmdOptions{
			serverNoContextTakeover: flags&1 != 0,
			clientNoContextTakeover: flags&2 != 0,
			serverMaxWindowBits:     bits(2),
			clientMaxWindowBits:     bits(6),
			minWindowBits:           bits(10),
		}
		offers, _ := parseExtensions(http.Header{"Sec-Websocket-Extensions": {header}}, -1)
		p, response, ok := negotiateServer(offers, opts)
		if !ok {
			if response != "" || p != (pmdParams{}) {
				t.Fatalf("declined with %q %+v", response, p)
			}
			return
		}
		for _, o := range offers {
			p1, response1, ok1 := negotiateServer([]extensionOffer{o}, opts)
			if !ok1 {
				continue
			}
			if response1 != response || p1 != p {
				t.Fatalf("first acceptable offer %+v gives %q, the list %q", o, response1, response)
			}
			if minBits := pmdNormWindowBits(opts.minWindowBits, 8); p.serverMaxWindowBits < minBits {
				t.Fatalf("server window %d below its minimum %d", p.serverMaxWindowBits, minBits)
			}
			checkResponseRoundTrip(t, o, opts, p, response)

			// Whatever our client is configured with, it accepts what the
			// server answers to its offer.
			copts := clientOptsFor(t, o)
			copts.minWindowBits = opts.minWindowBits
			sp, cresponse, ok := negotiateServer(parseOffers(t, clientOffer(copts)), opts)
			if !ok {
				return
			}
			cp, negotiated, err := acceptServerResponse(parseOffers(t, cresponse), copts)
			if err != nil || !negotiated {
				t.Fatalf("client %+v rejects %q: %v", copts, cresponse, err)
			}
			if cp.serverNoContextTakeover != sp.serverNoContextTakeover || cp.clientNoContextTakeover != sp.clientNoContextTakeover ||
				cp.serverMaxWindowBits != sp.serverMaxWindowBits || cp.clientMaxWindowBits > sp.clientMaxWindowBits {
				t.Fatalf("client %+v and server %+v disagree: %+v, %+v", copts, opts, cp, sp)
			}
			return
		}
		t.Fatalf("list %q accepted but no offer alone", header)
	})
}
