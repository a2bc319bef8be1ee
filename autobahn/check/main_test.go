package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// squash collapses runs of spaces so assertions do not depend on the
// table's column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		index    string // written to index.json; "" means no file
		args     func(path string) []string
		wantCode int
		want     []string // lines (after squash) that must appear, in order
		notWant  []string
	}{
		{
			name: "all OK",
			index: `{"wsforge": {
				"1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 2, "remoteCloseCode": 1000, "reportfile": "wsforge_case_1_1_1.json"},
				"1.1.2": {"behavior": "OK", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": 1000, "reportfile": "wsforge_case_1_1_2.json"},
				"6.4.1": {"behavior": "INFORMATIONAL", "behaviorClose": "OK", "duration": 1, "remoteCloseCode": null, "reportfile": "wsforge_case_6_4_1.json"}
			}}`,
			wantCode: 0,
			want: []string{
				"agent wsforge: 3 cases",
				"verdict behavior behaviorClose",
				"OK 2 3",
				"NON-STRICT 0 0",
				"INFORMATIONAL 1 0",
				"UNIMPLEMENTED 0 0",
				"FAILED 0 0",
				"all cases OK or INFORMATIONAL",
			},
			notWant: []string{"not OK"},
		},
		{
			name: "NON-STRICT and FAILED",
			index: `{"wsforge": {
				"2.1":    {"behavior": "OK", "behaviorClose": "FAILED"},
				"1.1.10": {"behavior": "NON-STRICT", "behaviorClose": "OK"},
				"1.1.1":  {"behavior": "OK", "behaviorClose": "OK"},
				"1.1.2":  {"behavior": "FAILED", "behaviorClose": "OK"}
			}}`,
			wantCode: 1,
			want: []string{
				"agent wsforge: 4 cases",
				"OK 2 3",
				"NON-STRICT 1 0",
				"INFORMATIONAL 0 0",
				"UNIMPLEMENTED 0 0",
				"FAILED 1 1",
				"3 cases not OK:",
				"1.1.2 behavior=FAILED behaviorClose=OK",
				"1.1.10 behavior=NON-STRICT behaviorClose=OK",
				"2.1 behavior=OK behaviorClose=FAILED",
			},
			notWant: []string{"1.1.1 behavior"},
		},
		{
			name: "UNIMPLEMENTED",
			index: `{"wsforge": {
				"12.1.1": {"behavior": "UNIMPLEMENTED", "behaviorClose": "UNIMPLEMENTED"},
				"1.1.1":  {"behavior": "OK", "behaviorClose": "OK"}
			}}`,
			wantCode: 1,
			want: []string{
				"UNIMPLEMENTED 1 1",
				"1 cases not OK:",
				"12.1.1 behavior=UNIMPLEMENTED behaviorClose=UNIMPLEMENTED",
			},
		},
		{
			name: "unknown and missing verdicts",
			index: `{"wsforge": {
				"1.1.1": {"behavior": "WRONG CODE", "behaviorClose": "OK"},
				"1.1.2": {"behaviorClose": "OK"}
			}}`,
			wantCode: 1,
			want: []string{
				"FAILED 0 0",
				"(missing) 1 0",
				"WRONG CODE 1 0",
				"1.1.1 behavior=WRONG CODE behaviorClose=OK",
				"1.1.2 behavior=(missing) behaviorClose=OK",
			},
		},
		{
			name: "two agents, one failing",
			index: `{
				"zeta":  {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}},
				"alpha": {"1.1.1": {"behavior": "OK", "behaviorClose": "NON-STRICT"}}
			}`,
			wantCode: 1,
			want: []string{
				"agent alpha: 1 cases",
				"1.1.1 behavior=OK behaviorClose=NON-STRICT",
				"agent zeta: 1 cases",
				"all cases OK or INFORMATIONAL",
			},
		},
		{
			name:     "malformed JSON",
			index:    `{"wsforge": {"1.1.1": {"behavior": "OK"`,
			wantCode: 2,
			want:     []string{"check: invalid report: "},
		},
		{
			name:     "wrong shape",
			index:    `{"wsforge": ["1.1.1"]}`,
			wantCode: 2,
			want:     []string{"check: invalid report: "},
		},
		{
			name:     "no cases",
			index:    `{}`,
			wantCode: 2,
			want:     []string{"report holds no cases"},
		},
		{
			name:     "missing file",
			wantCode: 2,
			want:     []string{"check: "},
		},
		{
			name:     "no arguments",
			args:     func(string) []string { return nil },
			wantCode: 2,
			want:     []string{"usage: check path/to/index.json"},
		},
		{
			name:     "too many arguments",
			index:    `{"a": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}}}`,
			args:     func(p string) []string { return []string{p, p} },
			wantCode: 2,
			want:     []string{"usage: check path/to/index.json"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index.json")
			if tc.index != "" {
				require.NoError(t, os.WriteFile(path, []byte(tc.index), 0o644))
			}
			args := []string{path}
			if tc.args != nil {
				args = tc.args(path)
			}

			var out bytes.Buffer
			code := run(args, &out)
			got := squash(out.String())
			assert.Equal(t, tc.wantCode, code, "output:\n%s", out.String())

			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if !assert.GreaterOrEqual(t, i, 0, "missing (or out of order) %q in output:\n%s", w, out.String()) {
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.notWant {
				assert.NotContains(t, got, w)
			}
		})
	}
}

func TestCompareCaseIDs(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.1.2", "1.1.10", -1},
		{"1.1.10", "2.1", -1},
		{"9.10.1", "9.9.1", 1},
		{"12.1.1", "2.1.1", 1},
		{"1.1", "1.1.1", -1},
		{"1.1.1", "1.1.1", 0},
		{"1.a", "1.b", -1},
		{"1.2", "1.a", -1},
	}
	for _, tc := range tests {
		t.Run(tc.a+"_vs_"+tc.b, func(t *testing.T) {
			assert.Equal(t, tc.want, compareCaseIDs(tc.a, tc.b))
			assert.Equal(t, -tc.want, compareCaseIDs(tc.b, tc.a))
		})
	}

	ids := []string{"2.1", "1.1.10", "13.1.1", "1.1.2", "1.1.1", "9.1.1"}
	sort.Slice(ids, func(i, j int) bool { return compareCaseIDs(ids[i], ids[j]) < 0 })
	assert.Equal(t, []string{"1.1.1", "1.1.2", "1.1.10", "2.1", "9.1.1", "13.1.1"}, ids)
}
