package websocket

import (
	"errors"
	"fmt"
	"strconv"
)

// Negotiation of permessage-deflate (RFC 7692 section 7.1), as pure
// functions of the parsed Sec-WebSocket-Extensions header and the options of
// the side that negotiates. Nothing here touches a connection.
//
// Names are compared exactly (case-sensitively): RFC 6455 section 9.1 makes
// extension and parameter names HTTP tokens without declaring them
// case-insensitive, and every implementation sends them in lower case.
//
// Window bits 8. RFC 7692 allows a 256-byte window, but zlib, which most
// peers compress with, refuses to produce raw deflate with it since zlib
// 1.2.9; Node.js (hence ws) and Chromium then quietly compress with 9 when
// told 8, others fail. So:
//   - the server never asks a client for client_max_window_bits below 9
//     (see pmdOptions.clientMaxWindowBits): a zlib client could fail
//     the handshake or send back-references its peer was told it would not;
//   - our own compressor honours 8 when the peer asks for it; a compressor
//     that cannot sets pmdOptions.minWindowBits, and the server then
//     declines offers asking for less rather than overstep them;
//   - inflating, we accept any distance up to 32 KiB whatever was
//     negotiated (compress/flate always keeps a full window), so a peer
//     that uses 9 for 8 still works.

// errInvalidCompression is wrapped by every error acceptServerResponse
// returns. Its text is gorilla's for the same failure.
var errInvalidCompression = errors.New("websocket: invalid compression negotiation")

const (
	pmdName                    = "permessage-deflate"
	pmdServerNoContextTakeover = "server_no_context_takeover"
	pmdClientNoContextTakeover = "client_no_context_takeover"
	pmdServerMaxWindowBits     = "server_max_window_bits"
	pmdClientMaxWindowBits     = "client_max_window_bits"

	// maxExtensionOffers is how many elements of a client's
	// Sec-WebSocket-Extensions the server considers; it declines the
	// rest. Browsers send one or two.
	maxExtensionOffers = 16

	pmdMinWindowBits = 8
	pmdMaxWindowBits = 15

	// pmdMinRequestedClientWindowBits is the smallest client_max_window_bits
	// the server puts in a response: see the note on window bits 8 above.
	pmdMinRequestedClientWindowBits = 9
)

// pmdParams is the outcome of a negotiation: what each direction uses.
// Both sides derive the same values from the same offer and response (the
// fuzz test checks it), except that on the client clientMaxWindowBits is
// further lowered to the window its own compressor is configured for.
type pmdParams struct {
	// serverNoContextTakeover: the server resets its compressor after each
	// message, so the client may reset its inflater too.
	serverNoContextTakeover bool
	// clientNoContextTakeover: the client resets its compressor after each
	// message, so the server may reset its inflater (and hold no window
	// between messages).
	clientNoContextTakeover bool
	// serverMaxWindowBits (8..15): the largest window the server's
	// compressor may reach back into; the client inflates with it.
	serverMaxWindowBits int
	// clientMaxWindowBits (8..15): the largest window the client's
	// compressor may reach back into; the server inflates with it, and with
	// context takeover this is how much history it must keep.
	clientMaxWindowBits int
}

// pmdOptions is what one side wants or allows. The zero value is the
// default: context takeover in both directions and 15-bit windows. Window
// sizes are base-2 logarithms; 0 means the default and values outside 8..15
// are clamped into that range (the public options are validated before they
// get here).
//
// Each field has a meaning for the server (negotiateServer) and one for the
// client (clientOffer, acceptServerResponse):
type pmdOptions struct {
	// serverNoContextTakeover. Server: reset its compressor after every
	// message and say so in every response (allowed whatever the offer).
	// Client: ask for it in the offer; a response without it is then an
	// error.
	serverNoContextTakeover bool

	// clientNoContextTakeover. Server: require the client to reset its
	// compressor (client_no_context_takeover in every response, allowed
	// whatever the offer). Client: promise it in the offer; the client's
	// compressor then resets whatever the response says.
	clientNoContextTakeover bool

	// serverMaxWindowBits (0 means 15). Server: the largest window its
	// compressor uses; announced in the response when below 15, and lowered
	// further to what an offer asks for. Client: when 8..14, ask the server
	// for it (server_max_window_bits=N); the response must then carry a
	// value no larger.
	serverMaxWindowBits int

	// clientMaxWindowBits (0 means 15). Server: the largest window it lets
	// a client compress with, to bound what it keeps for inflating; sent as
	// client_max_window_bits only to clients whose offer carries that
	// parameter (RFC 7692 forbids it otherwise: others are accepted with 15)
	// and never below 9 (zlib clients cannot do 8). Client: the largest
	// window its compressor uses, declared in the offer when below 15.
	clientMaxWindowBits int

	// minWindowBits (0 means 8): the smallest window this side's compressor
	// can be limited to. Server: offers asking for server_max_window_bits
	// below it are declined. Client: above 8, client_max_window_bits is left
	// out of the offer, so that a server cannot ask for less (a response
	// carrying it is then an error).
	minWindowBits int
}

// pmdNormWindowBits returns bits clamped into 8..15, or def for 0.
func pmdNormWindowBits(bits, def int) int {
	switch {
	case bits == 0:
		return def
	case bits < pmdMinWindowBits:
		return pmdMinWindowBits
	case bits > pmdMaxWindowBits:
		return pmdMaxWindowBits
	}
	return bits
}

// pmdWire is one permessage-deflate element of a Sec-WebSocket-Extensions
// header (an offer or a response), checked for syntax and values only.
type pmdWire struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int  // 0 when absent, else 8..15
	hasClientMaxWindowBits  bool // client_max_window_bits present
	clientMaxWindowBits     int  // its value, 0 when present without one
}

// pmdWindowBits parses a window size: a decimal integer 8..15 without
// leading zeros or sign (RFC 7692 sections 7.1.2.1 and 7.1.2.2). The value
// has already been unquoted by parseExtensions; a quoted "10" is valid.
func pmdWindowBits(s string) (int, bool) {
	switch {
	case len(s) == 1 && (s[0] == '8' || s[0] == '9'):
		return int(s[0] - '0'), true
	case len(s) == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5':
		return 10 + int(s[1]-'0'), true
	}
	return 0, false
}

// parsePMD checks the parameters of one permessage-deflate element. In a
// response client_max_window_bits needs a value; in an offer it may go
// without. The error is for the client's handshake failure; the server
// only needs to know that the offer is not acceptable.
func parsePMD(ext extensionOffer, response bool) (w pmdWire, err error) {
	if ext.TooManyParams {
		return w, fmt.Errorf("more than %d parameters", maxExtensionParams)
	}
	params := ext.Params
	var seen [4]bool
	for _, p := range params {
		var idx int
		switch p.Name {
		case pmdServerNoContextTakeover:
			idx = 0
		case pmdClientNoContextTakeover:
			idx = 1
		case pmdServerMaxWindowBits:
			idx = 2
		case pmdClientMaxWindowBits:
			idx = 3
		default:
			return w, fmt.Errorf("unknown parameter %q", p.Name)
		}
		if seen[idx] {
			return w, fmt.Errorf("duplicate parameter %s", p.Name)
		}
		seen[idx] = true
		switch idx {
		case 0, 1:
			if p.HasValue {
				return w, fmt.Errorf("parameter %s takes no value, got %q", p.Name, p.Value)
			}
			if idx == 0 {
				w.serverNoContextTakeover = true
			} else {
				w.clientNoContextTakeover = true
			}
		case 2, 3:
			if idx == 3 {
				w.hasClientMaxWindowBits = true
				if !p.HasValue && !response {
					continue
				}
			}
			if !p.HasValue {
				return w, fmt.Errorf("parameter %s needs a value", p.Name)
			}
			bits, ok := pmdWindowBits(p.Value)
			if !ok {
				return w, fmt.Errorf("parameter %s=%q is not a window size 8..15", p.Name, p.Value)
			}
			if idx == 2 {
				w.serverMaxWindowBits = bits
			} else {
				w.clientMaxWindowBits = bits
			}
		}
	}
	return w, nil
}

// String returns w as a Sec-WebSocket-Extensions element, parameters in
// the order RFC 7692 section 7.1 lists them.
func (w pmdWire) String() string {
	b := make([]byte, 0, 128)
	b = append(b, pmdName...)
	if w.serverNoContextTakeover {
		b = append(b, "; "+pmdServerNoContextTakeover...)
	}
	if w.clientNoContextTakeover {
		b = append(b, "; "+pmdClientNoContextTakeover...)
	}
	if w.serverMaxWindowBits != 0 {
		b = append(b, "; "+pmdServerMaxWindowBits+"="...)
		b = strconv.AppendInt(b, int64(w.serverMaxWindowBits), 10)
	}
	if w.hasClientMaxWindowBits {
		b = append(b, "; "+pmdClientMaxWindowBits...)
		if w.clientMaxWindowBits != 0 {
			b = append(b, '=')
			b = strconv.AppendInt(b, int64(w.clientMaxWindowBits), 10)
		}
	}
	return string(b)
}

// negotiateServer picks the first acceptable permessage-deflate offer among
// the client's, in the client's order (elements for other extensions are
// skipped), and returns the agreed parameters and the exact value for the
// Sec-WebSocket-Extensions response header. ok false means that no offer is
// acceptable: the server then answers without the header and the
// connection runs uncompressed; it is not a failed handshake.
//
// An offer is not acceptable (RFC 7692 section 7.1) when it has an unknown
// or duplicate parameter, a value on a parameter that takes none, a
// missing or invalid window size, or asks for server_max_window_bits below
// opts.minWindowBits. offers is what parseExtensions returns; when that
// reported a malformed header, passing the elements it did parse is safe.
//
// The response carries server_no_context_takeover when the offer or opts
// ask for it, client_no_context_takeover when the offer promises it (echoed
// so that clients built on the pre-RFC drafts, which read it as a request,
// also reset: Autobahn's does) or opts require it, server_max_window_bits
// when the offer asks for a window (answered with min(offer, opts)) or
// opts limit the server's window below 15, and client_max_window_bits when
// the offer allows it and opts limit the client's window below what the
// offer already promises.
func negotiateServer(offers []extensionOffer, opts pmdOptions) (p pmdParams, response string, ok bool) {
	minBits := pmdNormWindowBits(opts.minWindowBits, pmdMinWindowBits)
	serverBits := max(pmdNormWindowBits(opts.serverMaxWindowBits, pmdMaxWindowBits), minBits)
	clientLimit := max(pmdNormWindowBits(opts.clientMaxWindowBits, pmdMaxWindowBits), pmdMinRequestedClientWindowBits)

	for _, offer := range offers {
		if offer.Name != pmdName {
			continue
		}
		w, err := parsePMD(offer, false)
		if err != nil {
			continue
		}
		bits := serverBits
		if w.serverMaxWindowBits != 0 {
			if w.serverMaxWindowBits < minBits {
				continue
			}
			bits = min(bits, w.serverMaxWindowBits)
		}

		var r pmdWire
		r.serverNoContextTakeover = w.serverNoContextTakeover || opts.serverNoContextTakeover
		r.clientNoContextTakeover = w.clientNoContextTakeover || opts.clientNoContextTakeover
		if w.serverMaxWindowBits != 0 || bits < pmdMaxWindowBits {
			r.serverMaxWindowBits = bits
		}
		clientBits := pmdMaxWindowBits
		if w.hasClientMaxWindowBits {
			if w.clientMaxWindowBits != 0 {
				clientBits = w.clientMaxWindowBits
			}
			if clientLimit < clientBits {
				clientBits = clientLimit
				r.hasClientMaxWindowBits = true
				r.clientMaxWindowBits = clientLimit
			}
		}

		p = pmdParams{
			serverNoContextTakeover: r.serverNoContextTakeover,
			clientNoContextTakeover: r.clientNoContextTakeover,
			serverMaxWindowBits:     bits,
			clientMaxWindowBits:     clientBits,
		}
		return p, r.String(), true
	}
	return pmdParams{}, "", false
}

// offerWire returns the single permessage-deflate offer a client with opts
// sends.
func (opts pmdOptions) offerWire() pmdWire {
	w := pmdWire{
		serverNoContextTakeover: opts.serverNoContextTakeover,
		clientNoContextTakeover: opts.clientNoContextTakeover,
	}
	if bits := pmdNormWindowBits(opts.serverMaxWindowBits, pmdMaxWindowBits); bits < pmdMaxWindowBits {
		w.serverMaxWindowBits = bits
	}
	if pmdNormWindowBits(opts.minWindowBits, pmdMinWindowBits) == pmdMinWindowBits {
		w.hasClientMaxWindowBits = true
		if bits := pmdNormWindowBits(opts.clientMaxWindowBits, pmdMaxWindowBits); bits < pmdMaxWindowBits {
			w.clientMaxWindowBits = bits
		}
	}
	return w
}

// clientOffer returns the Sec-WebSocket-Extensions value a client with
// opts sends: one permessage-deflate offer, such as
// "permessage-deflate; client_max_window_bits" for the zero options (what
// browsers send). acceptServerResponse must be given the same opts.
func clientOffer(opts pmdOptions) string {
	return opts.offerWire().String()
}

// acceptServerResponse checks the server's Sec-WebSocket-Extensions
// response, parsed by parseExtensions, against the offer clientOffer(opts)
// made, and returns the agreed parameters. negotiated is false, with a nil
// error, when the response names no extension: the server declined and the
// connection runs uncompressed. A response the client must fail the
// handshake on (RFC 7692 section 7.1, RFC 6455 section 9.1) gives an error
// wrapping errInvalidCompression: another extension or more than one
// permessage-deflate element, an unknown or duplicate parameter, a bad
// value, client_max_window_bits when the offer had none or larger than the
// offered value, and a response that does not
// grant server_no_context_takeover or server_max_window_bits (no larger
// than asked) when the offer asked for them. When parseExtensions reported
// a malformed header, the caller fails the handshake without calling this.
func acceptServerResponse(response []extensionOffer, opts pmdOptions) (p pmdParams, negotiated bool, err error) {
	if len(response) == 0 {
		return pmdParams{}, false, nil
	}
	fail := func(format string, args ...any) (pmdParams, bool, error) {
		return pmdParams{}, false, fmt.Errorf("%w: "+format, append([]any{errInvalidCompression}, args...)...)
	}
	for _, ext := range response {
		if ext.Name != pmdName {
			return fail("server selected extension %q, which was not offered", ext.Name)
		}
	}
	if len(response) > 1 {
		return fail("server selected %s %d times", pmdName, len(response))
	}
	r, err := parsePMD(response[0], true)
	if err != nil {
		return fail("%s response: %v", pmdName, err)
	}

	o := opts.offerWire()
	if o.serverNoContextTakeover && !r.serverNoContextTakeover {
		return fail("server did not grant the requested %s", pmdServerNoContextTakeover)
	}
	if o.serverMaxWindowBits != 0 {
		if r.serverMaxWindowBits == 0 {
			return fail("server did not grant the requested %s=%d", pmdServerMaxWindowBits, o.serverMaxWindowBits)
		}
		if r.serverMaxWindowBits > o.serverMaxWindowBits {
			return fail("server answered %s=%d to a request for %d", pmdServerMaxWindowBits, r.serverMaxWindowBits, o.serverMaxWindowBits)
		}
	}
	if r.hasClientMaxWindowBits {
		if !o.hasClientMaxWindowBits {
			return fail("server sent %s, which was not offered", pmdClientMaxWindowBits)
		}
		// RFC 7692 section 7.1.2.2 has the server answer with the offered
		// value or less. A larger one is rejected, as ws and Python's
		// websockets do, although the offer's value alone would keep our
		// compressor within what the server can inflate.
		if o.clientMaxWindowBits != 0 && r.clientMaxWindowBits > o.clientMaxWindowBits {
			return fail("server answered %s=%d to an offer of %d", pmdClientMaxWindowBits, r.clientMaxWindowBits, o.clientMaxWindowBits)
		}
	}

	p = pmdParams{
		serverNoContextTakeover: r.serverNoContextTakeover,
		clientNoContextTakeover: r.clientNoContextTakeover || o.clientNoContextTakeover,
		serverMaxWindowBits:     pmdMaxWindowBits,
		clientMaxWindowBits:     pmdNormWindowBits(opts.clientMaxWindowBits, pmdMaxWindowBits),
	}
	if r.serverMaxWindowBits != 0 {
		p.serverMaxWindowBits = r.serverMaxWindowBits
	}
	if r.hasClientMaxWindowBits {
		p.clientMaxWindowBits = min(p.clientMaxWindowBits, r.clientMaxWindowBits)
	}
	return p, true, nil
}
