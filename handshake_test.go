package websocket

import (
	"bufio"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUnitComputeAcceptKey(t *testing.T) {
	// RFC 6455 section 1.3.
	assert.Equal(t, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="))
	// RFC 6455 section 4.2.2 is defined over the key as sent, not decoded.
	assert.NotEqual(t, computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), computeAcceptKey("dGhlIHNhbXBsZSBub25jZQ"))
	assert.Len(t, computeAcceptKey(""), 28)
}

func TestUnitGenerateChallengeKey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 32; i++ {
		k, err := generateChallengeKey()
		require.NoError(t, err)
		require.True(t, isValidChallengeKey(k), k)
		require.False(t, seen[k], "repeated key %q", k)
		seen[k] = true
	}
}

func TestUnitIsValidChallengeKey(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"dGhlIHNhbXBsZSBub25jZQ==", true},
		{"AAAAAAAAAAAAAAAAAAAAAA==", true},
		{"/////////////////////w==", true},
		{"+/+/+/+/+/+/+/+/+/+/+w==", true},
		{"", false},
		{"dGhlIHNhbXBsZSBub25jZQ", false},       // unpadded
		{"dGhlIHNhbXBsZSBub25jZQ=", false},      // short padding
		{"dGhlIHNhbXBsZSBub25jZQ===", false},    // extra padding
		{" dGhlIHNhbXBsZSBub25jZQ==", false},    // leading space
		{"dGhlIHNhbXBsZSBub25jZQ== ", false},    // trailing space
		{"AAAAAAAAAAAAAAAAAAAAAAAA", false},     // 18 bytes
		{"AAAAAAAAAAAAAAAAAAAAAAA=", false},     // 17 bytes
		{"AAAAAAAAAAAAAAAAAAAA", false},         // 15 bytes
		{"AAAAAAAAAAAAAAAAAAAAAAAAAAAA", false}, // 21 bytes
		{"_____________________w==", false},     // URL alphabet
		{"-----------------------w==", false},   // URL alphabet, wrong length
		{"dGhlIHNhbXBsZSBub25jZQ=A", false},     // data after padding
		{"dGhlIHNhbXBsZSBub!5jZQ==", false},     // bad character
		{"dGhlIHNhbXBsZSBub25jZQ=\x00", false},
		{fixedChallengeKey(), true},
	} {
		assert.Equal(t, tc.want, isValidChallengeKey(tc.key), "%q", tc.key)
	}
}

func fixedChallengeKey() string { return base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")) }

func TestUnitHeaderListContainsToken(t *testing.T) {
	h := func(kv ...string) http.Header {
		hdr := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hdr.Add(kv[i], kv[i+1])
		}
		return hdr
	}
	for _, tc := range []struct {
		name  string
		h     http.Header
		field string
		value string
		want  bool
	}{
		{"exact", h("Connection", "Upgrade"), "Connection", "upgrade", true},
		{"upper case", h("Connection", "UPGRADE"), "Connection", "upgrade", true},
		{"mixed case value", h("Upgrade", "WebSocket"), "Upgrade", "websocket", true},
		{"mixed case query", h("Upgrade", "websocket"), "Upgrade", "WebSocket", true},
		{"in list", h("Connection", "keep-alive, Upgrade"), "Connection", "upgrade", true},
		{"in list no spaces", h("Connection", "keep-alive,Upgrade,close"), "Connection", "upgrade", true},
		{"in list tabs", h("Connection", "keep-alive,\tUpgrade\t"), "Connection", "upgrade", true},
		{"second header line", h("Connection", "keep-alive", "Connection", "Upgrade"), "Connection", "upgrade", true},
		{"second line in list", h("Connection", "close", "Connection", "foo, upgrade"), "Connection", "upgrade", true},
		{"absent", h("Connection", "keep-alive"), "Connection", "upgrade", false},
		{"no header", h(), "Connection", "upgrade", false},
		{"empty value", h("Connection", ""), "Connection", "upgrade", false},
		{"prefix only", h("Connection", "upgrades"), "Connection", "upgrade", false},
		{"substring", h("Connection", "xupgrade"), "Connection", "upgrade", false},
		{"other field", h("Upgrade", "upgrade"), "Connection", "upgrade", false},
		{"token with space inside", h("Connection", "up grade"), "Connection", "upgrade", false},
		{"version 13", h("Sec-WebSocket-Version", "13"), "Sec-Websocket-Version", "13", true},
		{"version list", h("Sec-WebSocket-Version", "8, 13"), "Sec-Websocket-Version", "13", true},
		{"version other", h("Sec-WebSocket-Version", "8"), "Sec-Websocket-Version", "13", false},
	} {
		assert.Equal(t, tc.want, headerListContainsToken(tc.h, tc.field, tc.value), tc.name)
	}
}

func TestUnitHeaderList(t *testing.T) {
	hdr := http.Header{}
	hdr.Add("Sec-WebSocket-Protocol", " chat , superchat,, ")
	hdr.Add("Sec-WebSocket-Protocol", "v2")
	assert.Equal(t, []string{"chat", "superchat", "v2"}, headerList(hdr, "Sec-Websocket-Protocol"))
	assert.Empty(t, headerList(hdr, "Sec-Websocket-Extensions"))
	assert.Empty(t, headerList(http.Header{"X": {"", " , "}}, "X"))
}

func TestUnitParseExtensions(t *testing.T) {
	type param = extensionParam
	type offer = extensionOffer
	for _, tc := range []struct {
		name   string
		values []string // Sec-WebSocket-Extensions header lines
		want   []extensionOffer
		ok     bool
	}{
		{name: "none", values: nil, want: nil, ok: true},
		{name: "bare", values: []string{"permessage-deflate"}, want: []offer{{Name: "permessage-deflate"}}, ok: true},
		{
			name:   "list with parameters",
			values: []string{`permessage-deflate; client_max_window_bits, x-foo; a="b c"; d=1`},
			want: []offer{
				{Name: "permessage-deflate", Params: []param{{Name: "client_max_window_bits"}}},
				{Name: "x-foo", Params: []param{{Name: "a", Value: "b c", HasValue: true}, {Name: "d", Value: "1", HasValue: true}}},
			},
			ok: true,
		},
		{
			name:   "no spaces",
			values: []string{`permessage-deflate;server_no_context_takeover;client_max_window_bits=10,x`},
			want: []offer{
				{Name: "permessage-deflate", Params: []param{{Name: "server_no_context_takeover"}, {Name: "client_max_window_bits", Value: "10", HasValue: true}}},
				{Name: "x"},
			},
			ok: true,
		},
		{
			name:   "spaces and tabs around separators",
			values: []string{" a ;\tb = 1 ;c\t, d "},
			want: []offer{
				{Name: "a", Params: []param{{Name: "b", Value: "1", HasValue: true}, {Name: "c"}}},
				{Name: "d"},
			},
			ok: true,
		},
		{
			name:   "several header lines",
			values: []string{"permessage-deflate; client_max_window_bits", "permessage-deflate"},
			want: []offer{
				{Name: "permessage-deflate", Params: []param{{Name: "client_max_window_bits"}}},
				{Name: "permessage-deflate"},
			},
			ok: true,
		},
		{
			name:   "quoted with escapes",
			values: []string{`x; a="b\"c\\d"; e="\q"`},
			want:   []offer{{Name: "x", Params: []param{{Name: "a", Value: `b"c\d`, HasValue: true}, {Name: "e", Value: "q", HasValue: true}}}},
			ok:     true,
		},
		{
			name:   "quoted with separators inside",
			values: []string{`x; a=",;=", y`},
			want:   []offer{{Name: "x", Params: []param{{Name: "a", Value: ",;=", HasValue: true}}}, {Name: "y"}},
			ok:     true,
		},
		{
			name:   "quoted token value",
			values: []string{`permessage-deflate; client_max_window_bits="10"`},
			want:   []offer{{Name: "permessage-deflate", Params: []param{{Name: "client_max_window_bits", Value: "10", HasValue: true}}}},
			ok:     true,
		},
		{
			name:   "case kept",
			values: []string{"Permessage-Deflate; Server_No_Context_Takeover"},
			want:   []offer{{Name: "Permessage-Deflate", Params: []param{{Name: "Server_No_Context_Takeover"}}}},
			ok:     true,
		},

		// Empty list elements are legal and ignored: RFC 6455 section 9.1
		// uses the #rule of RFC 2616 section 2.1 ("null elements are
		// allowed"), and RFC 7230 section 7 says a recipient MUST accept
		// and ignore them.
		{name: "empty line", values: []string{""}, ok: true},
		{name: "only spaces", values: []string{"   "}, ok: true},
		{name: "leading comma", values: []string{", x"}, want: []offer{{Name: "x"}}, ok: true},
		{name: "trailing comma", values: []string{"x,"}, want: []offer{{Name: "x"}}, ok: true},
		{name: "double comma", values: []string{"x,,y"}, want: []offer{{Name: "x"}, {Name: "y"}}, ok: true},
		{name: "empty elements with spaces", values: []string{" , x ; a=1 , ,\t, y ,"}, want: []offer{{Name: "x", Params: []param{{Name: "a", Value: "1", HasValue: true}}}, {Name: "y"}}, ok: true},
		{name: "empty line between", values: []string{"x", "", "y"}, want: []offer{{Name: "x"}, {Name: "y"}}, ok: true},

		// Malformed: the elements before the bad one come back with ok
		// false, and nothing of the bad one.
		{name: "leading semicolon", values: []string{"; a"}, ok: false},
		{name: "empty parameter", values: []string{"x;"}, ok: false},
		{name: "empty parameter before comma", values: []string{"a, x; , y"}, want: []offer{{Name: "a"}}, ok: false},
		{name: "missing value", values: []string{"x; a="}, ok: false},
		{name: "missing value before semicolon", values: []string{"x; a=; b"}, ok: false},
		{name: "empty quoted value", values: []string{`x; a=""`}, ok: false},
		{name: "unterminated quote", values: []string{`x; a="b`}, ok: false},
		{name: "unterminated escape", values: []string{`x; a="b\`}, ok: false},
		{name: "junk after quote", values: []string{`x; a="b"c`}, ok: false},
		{name: "quoted name", values: []string{`"x"`}, ok: false},
		{name: "separator in name", values: []string{"x/y"}, ok: false},
		{name: "space inside name", values: []string{"x y"}, ok: false},
		{name: "equals in name", values: []string{"x=1"}, ok: false},
		{name: "bad second line", values: []string{"a", "b; c=", "d"}, want: []offer{{Name: "a"}}, ok: false},
		{name: "non-ASCII", values: []string{"permessage-déflate"}, ok: false},
		{name: "control char", values: []string{"x\x01"}, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			for _, v := range tc.values {
				hdr.Add("Sec-WebSocket-Extensions", v)
			}
			got, ok := parseExtensions(hdr, -1)
			assert.Equal(t, tc.ok, ok)
			if len(tc.want) == 0 {
				assert.Empty(t, got)
			} else {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}

func TestUnitSubprotocols(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   []string
	}{
		{"none", nil, nil},
		{"one", []string{"chat"}, []string{"chat"}},
		{"list", []string{"chat, superchat"}, []string{"chat", "superchat"}},
		{"list no spaces", []string{"a,b,c"}, []string{"a", "b", "c"}},
		{"several lines in order", []string{"chat, superchat", "v2.proto"}, []string{"chat", "superchat", "v2.proto"}},
		{"whitespace", []string{"  chat\t,\tsuperchat  "}, []string{"chat", "superchat"}},
		{"empty", []string{""}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
			for _, v := range tc.values {
				r.Header.Add("Sec-WebSocket-Protocol", v)
			}
			got := Subprotocols(r)
			if tc.want == nil {
				assert.Empty(t, got)
			} else {
				assert.Equal(t, tc.want, got)
			}
		})
	}
}

func TestUnitIsWebSocketUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name       string
		connection []string
		upgrade    []string
		want       bool
	}{
		{"canonical", []string{"Upgrade"}, []string{"websocket"}, true},
		{"case-insensitive", []string{"uPgRaDe"}, []string{"WebSocket"}, true},
		{"connection list", []string{"keep-alive, Upgrade"}, []string{"websocket"}, true},
		{"connection second line", []string{"keep-alive", "upgrade"}, []string{"websocket"}, true},
		{"upgrade list", []string{"Upgrade"}, []string{"h2c, websocket"}, true},
		{"no connection", nil, []string{"websocket"}, false},
		{"no upgrade", []string{"Upgrade"}, nil, false},
		{"connection keep-alive only", []string{"keep-alive"}, []string{"websocket"}, false},
		{"other protocol", []string{"Upgrade"}, []string{"h2c"}, false},
		{"websocket as connection token", []string{"websocket"}, []string{"upgrade"}, false},
		{"near miss", []string{"Upgrade"}, []string{"websockets"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://example.com/ws", nil)
			for _, v := range tc.connection {
				r.Header.Add("Connection", v)
			}
			for _, v := range tc.upgrade {
				r.Header.Add("Upgrade", v)
			}
			assert.Equal(t, tc.want, IsWebSocketUpgrade(r))
		})
	}
	// A request parsed off the wire, as a server sees it.
	raw := "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nupgrade: WEBSOCKET\r\nconnection: keep-alive, UPGRADE\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	require.NoError(t, err)
	assert.True(t, IsWebSocketUpgrade(r))
	assert.Equal(t, []string{"chat", "superchat"}, Subprotocols(r))
	assert.True(t, headerListContainsToken(r.Header, "Sec-Websocket-Version", "13"))
	assert.True(t, isValidChallengeKey(r.Header.Get("Sec-WebSocket-Key")))
}
