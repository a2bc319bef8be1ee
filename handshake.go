package websocket

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
)

// keyGUID is the fixed string RFC 6455 section 1.3 appends to the client's
// key before hashing it into Sec-WebSocket-Accept.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// computeAcceptKey returns the Sec-WebSocket-Accept value for a
// Sec-WebSocket-Key value.
func computeAcceptKey(challengeKey string) string {
	h := sha1.New()
	io.WriteString(h, challengeKey)
	io.WriteString(h, keyGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// generateChallengeKey returns a fresh Sec-WebSocket-Key: 16 random bytes
// from crypto/rand, base64 encoded.
func generateChallengeKey() (string, error) {
	var p [16]byte
	if _, err := io.ReadFull(rand.Reader, p[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(p[:]), nil
}

// isValidChallengeKey reports whether s is the base64 encoding of exactly
// 16 bytes, as RFC 6455 section 4.1 requires of Sec-WebSocket-Key.
func isValidChallengeKey(s string) bool {
	if len(s) != 24 {
		return false
	}
	var p [18]byte
	n, err := base64.StdEncoding.Decode(p[:], []byte(s))
	return err == nil && n == 16
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 7230).
func isTokenChar(c byte) bool {
	if c >= 0x80 || c <= ' ' || c == 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?={}`, rune(c))
}

// skipSpace returns s without leading spaces and tabs.
func skipSpace(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return s[i:]
}

// nextToken splits s into a leading token and the rest.
func nextToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// nextTokenOrQuoted splits s into a leading token or quoted string (with the
// quotes and escapes removed) and the rest. ok is false for a malformed
// quoted string.
func nextTokenOrQuoted(s string) (value, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		t, r := nextToken(s)
		return t, r, true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			i++
			if i == len(s) {
				return "", "", false
			}
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// cutListElement splits the comma separated list s into its first
// element, trimmed (possibly empty), and the rest.
func cutListElement(s string) (elem, rest string) {
	if i := strings.IndexByte(s, ','); i >= 0 {
		return strings.TrimSpace(s[:i]), s[i+1:]
	}
	return strings.TrimSpace(s), ""
}

// headerListContainsToken reports whether the comma separated token lists
// in header field name contain value, compared case-insensitively (RFC 6455
// section 4.2.1 makes Connection and Upgrade case-insensitive). Like the
// other list scans here it works in place, allocating nothing whatever the
// length of the list a peer sent.
func headerListContainsToken(h http.Header, name, value string) bool {
	for _, s := range h[name] {
		for s != "" {
			var elem string
			elem, s = cutListElement(s)
			if strings.EqualFold(elem, value) {
				return true
			}
		}
	}
	return false
}

// headerListContains reports whether the comma separated lists in header
// field name contain value exactly.
func headerListContains(h http.Header, name, value string) bool {
	for _, s := range h[name] {
		for s != "" {
			var elem string
			elem, s = cutListElement(s)
			if elem == value {
				return true
			}
		}
	}
	return false
}

// headerListEmpty reports whether the comma separated lists in header
// field name have no element.
func headerListEmpty(h http.Header, name string) bool {
	for _, s := range h[name] {
		for s != "" {
			var elem string
			elem, s = cutListElement(s)
			if elem != "" {
				return false
			}
		}
	}
	return true
}

// isRepeatedField reports whether the header field name (canonical form)
// appears more than once, as separate fields or as a comma separated list,
// for the fields RFC 6455 allows only once.
func isRepeatedField(h http.Header, name string) bool {
	vs := h[name]
	return len(vs) > 1 || len(vs) == 1 && strings.IndexByte(vs[0], ',') >= 0
}

// headerList returns the comma separated elements of every header field
// name, trimmed, without empty elements.
func headerList(h http.Header, name string) []string {
	var out []string
	for _, s := range h[name] {
		for _, t := range strings.Split(s, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// extensionOffer is one element of a Sec-WebSocket-Extensions list: an
// extension name and its parameters in order. A parameter without a value
// has Value "" and HasValue false.
type extensionOffer struct {
	Name   string
	Params []extensionParam
	// TooManyParams is set when the element had more than
	// maxExtensionParams parameters; only the first ones are in Params.
	// No extension this package speaks takes that many, and keeping them
	// all would let a peer turn a header into many times its size in
	// memory.
	TooManyParams bool
}

// maxExtensionParams is how many parameters of one extension element
// parseExtensions keeps: permessage-deflate defines four, each allowed
// once.
const maxExtensionParams = 8

type extensionParam struct {
	Name     string
	Value    string
	HasValue bool
}

// parseExtensions parses the Sec-WebSocket-Extensions header fields of h
// (RFC 6455 section 9.1), up to max elements (all when max < 0): a peer
// may send hundreds of thousands, and the caller needs few. Empty list
// elements are skipped, as RFC 7230 section 7 asks of recipients.
// Parameters past maxExtensionParams are checked for syntax but not kept.
// An element that does not parse ends the list: the elements before it are
// returned with ok false.
func parseExtensions(h http.Header, max int) (offers []extensionOffer, ok bool) {
	for _, s := range h["Sec-Websocket-Extensions"] {
		for {
			if len(offers) == max {
				return offers, true
			}
			s = skipSpace(s)
			if s == "" {
				break
			}
			if s[0] == ',' {
				s = s[1:]
				continue
			}
			var name string
			name, s = nextToken(s)
			if name == "" {
				return offers, false
			}
			ext := extensionOffer{Name: name}
			for {
				s = skipSpace(s)
				if !strings.HasPrefix(s, ";") {
					break
				}
				var p extensionParam
				p.Name, s = nextToken(skipSpace(s[1:]))
				if p.Name == "" {
					return offers, false
				}
				s = skipSpace(s)
				if strings.HasPrefix(s, "=") {
					var good bool
					p.Value, s, good = nextTokenOrQuoted(skipSpace(s[1:]))
					if !good || p.Value == "" {
						return offers, false
					}
					p.HasValue = true
				}
				if len(ext.Params) == maxExtensionParams {
					ext.TooManyParams = true
					continue
				}
				ext.Params = append(ext.Params, p)
			}
			if s != "" && s[0] != ',' {
				return offers, false
			}
			offers = append(offers, ext)
		}
	}
	return offers, true
}

// IsWebSocketUpgrade reports whether the client requested upgrade to the
// WebSocket protocol: its Connection header lists "upgrade" and its Upgrade
// header lists "websocket", both compared case-insensitively; or, over
// HTTP/2, it is an extended CONNECT whose :protocol is "websocket" (RFC
// 8441), which Upgrader.Upgrade accepts too.
func IsWebSocketUpgrade(r *http.Request) bool {
	if isExtendedConnect(r) {
		return asciiEqualFold(r.Header.Get(":protocol"), "websocket")
	}
	return headerListContainsToken(r.Header, "Connection", "upgrade") &&
		headerListContainsToken(r.Header, "Upgrade", "websocket")
}

// Subprotocols returns the subprotocols requested by the client in the
// Sec-Websocket-Protocol header, in the client's order of preference.
func Subprotocols(r *http.Request) []string {
	return headerList(r.Header, "Sec-Websocket-Protocol")
}
