package websocket

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// isValidUTF8Prefix reports whether b is valid UTF-8 or the start of it: some
// completion of at most three continuation bytes makes it valid. Only the
// first missing byte's value matters (it carries the range restrictions
// after E0, ED, F0 and F4), the rest can be 0x80. Those restrictions are
// the intervals 80-BF, A0-BF, 80-9F, 90-BF and 80-8F, so trying their
// endpoints covers every case.
func isValidUTF8Prefix(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	buf := make([]byte, len(b), len(b)+3)
	copy(buf, b)
	for k := 1; k <= 3; k++ {
		for _, c := range []byte{0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF} {
			q := append(buf[:len(b)], c)
			for j := 1; j < k; j++ {
				q = append(q, 0x80)
			}
			if utf8.Valid(q) {
				return true
			}
		}
	}
	return false
}

// firstBadByte returns the index of the byte at which b stops being a
// prefix of valid UTF-8, or -1 if it never does.
func firstBadByte(b []byte) int {
	for i := range b {
		if !isValidUTF8PrefixLinear(b[:i+1]) {
			return i
		}
	}
	return -1
}

// checkPiecesValid feeds b to a validator in the pieces cut at the given
// offsets and checks the outcome against the reference: every piece that
// ends before the first bad byte is accepted, the piece holding it is
// rejected at the latest, and a fully accepted input is complete exactly
// when it is valid UTF-8.
func checkPiecesValid(t *testing.T, b []byte, cuts []int, what string) {
	t.Helper()
	checkPiecesInvalid(t, b, firstBadByte(b), cuts, what)
}

// checkPiecesInvalid is checkPiecesValid with the first bad byte known.
func checkPiecesInvalid(t *testing.T, b []byte, bad int, cuts []int, what string) {
	if msg := piecesError(b, bad, cuts); msg != "" {
		t.Helper()
		t.Fatalf("%s: % x cut at %v: %s", what, b, cuts, msg)
	}
}

// piecesError does the work of checkPiecesInvalid, returning what is wrong
// or "".
func piecesError(b []byte, bad int, cuts []int) string {
	var v utf8Validator
	start := 0
	for i := 0; i <= len(cuts); i++ {
		end := len(b)
		if i < len(cuts) {
			end = cuts[i]
		}
		ok := v.write(b[start:end])
		switch {
		case bad >= start && bad < end:
			if ok {
				return fmt.Sprintf("piece %d [%d:%d] holds bad byte %d but was accepted", i, start, end, bad)
			}
			return ""
		case !ok:
			return fmt.Sprintf("piece %d [%d:%d] rejected, but the first bad byte is %d", i, start, end, bad)
		}
		start = end
	}
	if bad >= 0 {
		return fmt.Sprintf("validator never met bad byte %d", bad)
	}
	if got, want := v.complete(), utf8.Valid(b); got != want {
		return fmt.Sprintf("complete() = %v, want %v", got, want)
	}
	return ""
}

// checkAllSplits checks b whole, in two pieces cut at every position, and
// byte by byte.
func checkAllSplits(t *testing.T, b []byte) {
	t.Helper()
	bad := firstBadByte(b)
	checkPiecesInvalid(t, b, bad, nil, "whole")
	for i := 0; i <= len(b); i++ {
		checkPiecesInvalid(t, b, bad, []int{i}, "two pieces")
	}
	var cuts []int
	for i := 1; i < len(b); i++ {
		cuts = append(cuts, i)
	}
	checkPiecesInvalid(t, b, bad, cuts, "byte by byte")
	if len(b) >= 3 {
		// Three pieces, with an empty one in the middle.
		checkPiecesInvalid(t, b, bad, []int{1, 1, len(b) - 1}, "with an empty piece")
	}
}

type utf8Case struct {
	name string
	in   string
	// valid: the whole input is UTF-8; truncated: it is a proper prefix of
	// UTF-8; otherwise it is invalid. Checked against the standard library
	// so that the table itself cannot be wrong.
	valid, truncated bool
}

var utf8Cases = []utf8Case{
	{name: "empty", in: "", valid: true},
	{name: "ascii", in: "Hello, world", valid: true},
	{name: "NUL", in: "\x00", valid: true},
	{name: "DEL", in: "\x7f", valid: true},
	{name: "U+0080", in: "\xc2\x80", valid: true},
	{name: "U+07FF", in: "\xdf\xbf", valid: true},
	{name: "U+0800", in: "\xe0\xa0\x80", valid: true},
	{name: "U+D7FF", in: "\xed\x9f\xbf", valid: true},
	{name: "U+E000", in: "\xee\x80\x80", valid: true},
	{name: "U+FFFD", in: "\xef\xbf\xbd", valid: true},
	{name: "U+FFFE", in: "\xef\xbf\xbe", valid: true},
	{name: "U+FFFF", in: "\xef\xbf\xbf", valid: true},
	{name: "U+10000", in: "\xf0\x90\x80\x80", valid: true},
	{name: "U+10FFFF", in: "\xf4\x8f\xbf\xbf", valid: true},
	{name: "euro", in: "€", valid: true},
	{name: "mixed", in: "a\u00e9\u20ac\U0001F600z", valid: true},
	{name: "kosme", in: "κόσμε", valid: true},
	{name: "long mixed", in: strings.Repeat("aé€😀", 20), valid: true},

	// Overlong forms.
	{name: "overlong C0 80", in: "\xc0\x80"},
	{name: "overlong C1 BF", in: "\xc1\xbf"},
	{name: "overlong C0 AF", in: "\xc0\xaf"},
	{name: "overlong E0 80 80", in: "\xe0\x80\x80"},
	{name: "overlong E0 80 AF", in: "\xe0\x80\xaf"},
	{name: "overlong E0 9F BF", in: "\xe0\x9f\xbf"},
	{name: "overlong F0 80 80 80", in: "\xf0\x80\x80\x80"},
	{name: "overlong F0 80 80 AF", in: "\xf0\x80\x80\xaf"},
	{name: "overlong F0 8F BF BF", in: "\xf0\x8f\xbf\xbf"},
	{name: "overlong F8 5 bytes", in: "\xf8\x80\x80\x80\xaf"},
	{name: "overlong FC 6 bytes", in: "\xfc\x80\x80\x80\x80\xaf"},

	// Surrogates.
	{name: "surrogate ED A0 80", in: "\xed\xa0\x80"},
	{name: "surrogate ED AD BF", in: "\xed\xad\xbf"},
	{name: "surrogate ED AE 80", in: "\xed\xae\x80"},
	{name: "surrogate ED AF BF", in: "\xed\xaf\xbf"},
	{name: "surrogate ED B0 80", in: "\xed\xb0\x80"},
	{name: "surrogate ED BE 80", in: "\xed\xbe\x80"},
	{name: "surrogate ED BF BF", in: "\xed\xbf\xbf"},
	{name: "surrogate pair", in: "\xed\xa0\x80\xed\xb0\x80"},
	{name: "surrogate pair max", in: "\xed\xaf\xbf\xed\xbf\xbf"},

	// Past U+10FFFF and bytes never used.
	{name: "U+110000 F4 90 80 80", in: "\xf4\x90\x80\x80"},
	{name: "F4 BF BF BF", in: "\xf4\xbf\xbf\xbf"},
	{name: "F5 lead", in: "\xf5\x80\x80\x80"},
	{name: "F7 lead", in: "\xf7\xbf\xbf\xbf"},
	{name: "F8 lead", in: "\xf8"},
	{name: "FB lead", in: "\xfb"},
	{name: "FC lead", in: "\xfc"},
	{name: "FE", in: "\xfe"},
	{name: "FF", in: "\xff"},
	{name: "FE FE FF FF", in: "\xfe\xfe\xff\xff"},

	// Truncated sequences: a proper prefix, so valid so far but incomplete.
	{name: "truncated C2", in: "\xc2", truncated: true},
	{name: "truncated E0 A0", in: "\xe0\xa0", truncated: true},
	{name: "truncated E2 82", in: "\xe2\x82", truncated: true},
	{name: "truncated E2", in: "\xe2", truncated: true},
	{name: "truncated ED 9F", in: "\xed\x9f", truncated: true},
	{name: "truncated F0", in: "\xf0", truncated: true},
	{name: "truncated F0 90", in: "\xf0\x90", truncated: true},
	{name: "truncated F0 90 80", in: "\xf0\x90\x80", truncated: true},
	{name: "truncated F4 8F BF", in: "\xf4\x8f\xbf", truncated: true},
	{name: "truncated after text", in: "κόσμε\xce", truncated: true},
	{name: "truncated 4-byte after text", in: "ab\xf0\x9f\x98", truncated: true},

	// Truncated sequences followed by more text.
	{name: "truncated C2 then ascii", in: "\xc2A"},
	{name: "truncated E2 82 then ascii", in: "\xe2\x82A"},
	{name: "truncated F0 90 80 then ascii", in: "\xf0\x90\x80A"},
	{name: "truncated then lead", in: "\xe2\x82\xe2\x82\xac"},
	{name: "all truncated 2-4 byte", in: "\xc2\xe0\xa0\xf0\x90\x80"},

	// Continuation bytes without a lead.
	{name: "lone 80", in: "\x80"},
	{name: "lone BF", in: "\xbf"},
	{name: "two continuation", in: "\x80\xbf"},
	{name: "continuation after ascii", in: "abc\x80"},
	{name: "extra continuation after 2-byte", in: "\xc2\x80\x80"},
	{name: "extra continuation after 3-byte", in: "\xe2\x82\xac\x80"},
	{name: "extra continuation after 4-byte", in: "\xf0\x90\x80\x80\x80"},
	{name: "64 continuation bytes", in: func() string {
		var b []byte
		for c := 0x80; c <= 0xBF; c++ {
			b = append(b, byte(c))
		}
		return string(b)
	}()},

	// Lead bytes followed by non-continuation bytes.
	{name: "C2 space", in: "\xc2 "},
	{name: "E2 space", in: "\xe2 \x82"},
	{name: "F0 space", in: "\xf0 "},
	{name: "C0 C0", in: "\xc0\xc0"},
	{name: "lead lead", in: "\xc2\xc2\x80"},

	// Autobahn TestSuite case 6.x style: "κόσμε" and its corruptions.
	{name: "6.2 kosme", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", valid: true},
	{name: "6.3 kosme surrogate edited", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"},
	{name: "6.4.1 kosme U+110000 edited", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"},
	{name: "6.4.2 kosme U+110000", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"},
	{name: "6.4 kosme cut mid-char", in: "\xce\xba\xe1\xbd", truncated: true},
	{name: "kosme with lone continuation", in: "\xce\xba\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"},
	{name: "kosme with overlong", in: "\xce\xba\xe1\xbd\xb9\xc0\xaf\xce\xbc\xce\xb5"},
	{name: "kosme then FF", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xff"},
	{name: "6.5 U+FFFE and U+FFFF noncharacters", in: "\xef\xbf\xbe\xef\xbf\xbf", valid: true},
	{name: "6.6 partial kosme", in: "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce", truncated: true},
}

func TestUnitUTF8ValidatorTable(t *testing.T) {
	for _, tc := range utf8Cases {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			// The table's own claims, against the standard library.
			require.Equal(t, tc.valid, utf8.Valid(b), "utf8.Valid")
			if !tc.valid {
				require.Equal(t, tc.truncated, isValidUTF8Prefix(b), "valid prefix")
			}
			checkAllSplits(t, b)
			// With valid text around the input.
			checkAllSplits(t, append([]byte("pre ü "), b...))
			checkAllSplits(t, append(append([]byte("€"), b...), " post"...))
		})
	}
}

func TestUnitUTF8ValidatorTruncatedIncomplete(t *testing.T) {
	for _, tc := range utf8Cases {
		if !tc.truncated {
			continue
		}
		var v utf8Validator
		require.True(t, v.write([]byte(tc.in)), tc.name)
		assert.False(t, v.complete(), tc.name)
	}
}

func TestUnitUTF8ValidatorReset(t *testing.T) {
	var v utf8Validator
	require.True(t, v.complete())
	require.True(t, v.write([]byte("\xe2\x82")))
	require.False(t, v.complete())
	v.reset()
	assert.True(t, v.complete())
	// Without the reset, 0x41 would end the open sequence badly.
	assert.True(t, v.write([]byte("A")))
	assert.True(t, v.complete())

	require.False(t, v.write([]byte("\xff")))
	v.reset()
	assert.True(t, v.write([]byte("ok")))
	assert.True(t, v.complete())
}

func TestUnitUTF8ValidatorExhaustiveTwoBytes(t *testing.T) {
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			in := []byte{byte(a), byte(b)}
			bad := firstBadByte(in)
			checkPiecesInvalid(t, in, bad, nil, "whole")
			checkPiecesInvalid(t, in, bad, []int{1}, "split")
		}
	}
}

func TestUnitUTF8ValidatorLongerSequences(t *testing.T) {
	// Every 3- and 4-byte lead with every second byte, and a few choices of
	// the later bytes, with and without a piece boundary inside.
	later := []byte{0x00, 0x41, 0x7f, 0x80, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xff}
	if testing.Short() {
		later = []byte{0x41, 0x80, 0xbf, 0xc0}
	}
	for lead := 0xE0; lead <= 0xFF; lead++ {
		for second := 0; second < 256; second++ {
			for _, third := range later {
				in := []byte{byte(lead), byte(second), third}
				bad := firstBadByte(in)
				checkPiecesInvalid(t, in, bad, nil, "whole")
				checkPiecesInvalid(t, in, bad, []int{1}, "split 1")
				checkPiecesInvalid(t, in, bad, []int{2}, "split 2")
				if lead < 0xF0 {
					continue
				}
				for _, fourth := range []byte{0x41, 0x80, 0xbf, 0xc0} {
					in := []byte{byte(lead), byte(second), third, fourth}
					bad := firstBadByte(in)
					checkPiecesInvalid(t, in, bad, nil, "whole")
					checkPiecesInvalid(t, in, bad, []int{1, 2, 3}, "bytes")
					checkPiecesInvalid(t, in, bad, []int{3}, "split 3")
				}
			}
		}
	}
}

func TestUnitUTF8ValidatorAgreesOnAllRunes(t *testing.T) {
	// Every scalar value, encoded, is accepted whole and split; every
	// surrogate encoded as three bytes is rejected.
	var v utf8Validator
	buf := make([]byte, 0, 4)
	for r := rune(0); r <= utf8.MaxRune; r++ {
		buf = buf[:0]
		if r >= 0xD800 && r <= 0xDFFF {
			buf = append(buf, byte(0xE0|r>>12), byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
			v.reset()
			if v.write(buf) {
				t.Fatalf("surrogate %U (% x) accepted", r, buf)
			}
			continue
		}
		buf = utf8.AppendRune(buf, r)
		v.reset()
		if !v.write(buf) || !v.complete() {
			t.Fatalf("%U (% x) rejected whole", r, buf)
		}
		if len(buf) > 1 {
			v.reset()
			if !v.write(buf[:1]) || v.complete() || !v.write(buf[1:]) || !v.complete() {
				t.Fatalf("%U (% x) rejected split", r, buf)
			}
		}
	}
}

func TestUnitUTF8IncompleteTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"a", 0}, {"\xc2", 1}, {"\xc2\x80", 0}, {"\xe2\x82", 2}, {"\xe2", 1},
		{"\xe2\x82\xac", 0}, {"\xf0\x90\x80", 3}, {"\xf0\x90", 2}, {"\xf0", 1},
		{"\xf0\x90\x80\x80", 0}, {"\x80", 0}, {"\x80\x80\x80", 0}, {"a\x80", 0},
	} {
		assert.Equal(t, tc.want, incompleteTail([]byte(tc.in)), fmt.Sprintf("% x", tc.in))
	}
}
