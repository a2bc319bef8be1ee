package main

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve as the server and client children
// that the orchestrator starts by re-executing itself.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestQuickRun runs every suite in -quick mode for two libraries, end to
// end through real child processes, and checks that every cell produced a
// number. It asserts nothing about speed.
func TestQuickRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "results.md")
	var stdout, progress bytes.Buffer
	sizes, conns := "16,16KiB,1MiB", "1,64"
	if raceEnabled {
		// The children are race-instrumented too: each starts slowly and
		// masks 1 MiB slowly, so keep the load small.
		sizes, conns = "16,16KiB", "1,8"
	}
	err := run([]string{"-quick", "-libs", "wsforge,gorilla", "-sizes", sizes, "-conns", conns,
		"-idleconns", "100", "-bconns", "20", "-out", out}, &stdout, &progress)
	require.NoError(t, err, progress.String())

	md := stdout.String()
	file, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Equal(t, md, string(file), "-out must hold the printed markdown")

	for _, want := range []string{
		"# wsforge benchmark results", "- Machine: ", "- Go: ", "- Command: `cd bench && go run . -quick",
		"## Echo", "### Echo, common raw client, 1 connection(s)", "### Echo, native clients",
		"## Broadcast", "## Idle memory", "## Handshakes", "## permessage-deflate",
		"| 16 KiB | wsforge |", "| 16 B | gorilla ↔ gorilla |",
		"| ~4 KiB API JSON | takeover | wsforge | yes |", "| ~200 B chatty JSON | no takeover | gorilla | no |",
		"| ~4 KiB API JSON | takeover | gorilla | no |",
		"### Idle connections with compression history", "| wsforge | takeover, 10-bit windows | yes |",
	} {
		assert.Contains(t, md, want)
	}
	assert.NotContains(t, md, "## Errors", "a run failed:\n%s", md)
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| ") {
			assert.NotContains(t, line, "| err |", "failed cell: %s", line)
		}
	}
}

func TestParseSizes(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		ok   bool
	}{
		{in: "16,1KiB,16KiB,1MiB", want: []int{16, 1024, 16384, 1 << 20}, ok: true},
		{in: "16B, 2048", want: []int{16, 2048}, ok: true},
		{in: "0", ok: false},
		{in: "lots", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseInts(tt.in, true)
			if !tt.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestRawFrames checks the common client's frame builder against the
// RFC 6455 layout: FIN, opcode, mask bit, length forms and masking.
func TestRawFrames(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		header int
	}{
		{name: "7-bit length", size: 125, header: 2 + 4},
		{name: "16-bit length", size: 126, header: 4 + 4},
		{name: "64-bit length", size: 1 << 16, header: 10 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := makePayload(tt.size)
			f := maskedFrame(0x2, p, false)
			require.Len(t, f, tt.header+tt.size)
			assert.Equal(t, byte(0x82), f[0])
			assert.NotZero(t, f[1]&0x80, "client frames are masked")
			key := f[tt.header-4 : tt.header]
			got := make([]byte, tt.size)
			for i := range got {
				got[i] = f[tt.header+i] ^ key[i&3]
			}
			assert.Equal(t, p, got)
		})
	}
}

// TestCorpus checks that the deflate corpora are deterministic, of the
// announced sizes, and without repeats.
func TestCorpus(t *testing.T) {
	for _, name := range corpusNames {
		t.Run(name, func(t *testing.T) {
			a, err := makeCorpus(name)
			require.NoError(t, err)
			b, err := makeCorpus(name)
			require.NoError(t, err)
			assert.Equal(t, a, b, "the corpus must not change between processes")
			require.Len(t, a, corpusMessages)
			seen := map[string]bool{}
			for i, m := range a {
				assert.False(t, seen[string(m)], "message %d repeats an earlier one", i)
				seen[string(m)] = true
				assert.True(t, json.Valid(m), "message %d is not JSON", i)
			}
			mean, lo, hi := corpusStats(a)
			switch name {
			case "api":
				assert.LessOrEqual(t, hi, corpusAPIMax)
				assert.Greater(t, lo, 3<<10)
			case "chat":
				assert.InDelta(t, 200, mean, 30)
				assert.Greater(t, lo, 128, "every chat message is above every library's threshold")
				assert.Less(t, hi, 300)
			}
		})
	}
	_, err := makeCorpus("nope")
	assert.Error(t, err)
}

// TestInflater checks the raw client's inflater against compress/flate
// used as a permessage-deflate server would: one stream, a sync flush per
// message, the tail removed. Without takeover it must not inflate a
// stream that refers back across messages.
func TestInflater(t *testing.T) {
	corpus, err := makeCorpus("chat")
	require.NoError(t, err)
	var stream bytes.Buffer
	fw, err := flate.NewWriter(&stream, flate.DefaultCompression)
	require.NoError(t, err)
	var msgs [][]byte
	for _, m := range corpus[:100] {
		before := stream.Len()
		_, err := fw.Write(m)
		require.NoError(t, err)
		require.NoError(t, fw.Flush())
		c := append([]byte(nil), stream.Bytes()[before:]...)
		require.Equal(t, deflateTail, c[len(c)-4:])
		msgs = append(msgs, c[:len(c)-4])
	}
	in := &inflater{takeover: true}
	for i, c := range msgs {
		got, err := in.inflate(c)
		require.NoError(t, err, "message %d", i)
		require.Equal(t, corpus[i], got, "message %d", i)
	}
	in = &inflater{}
	wrong := 0
	for i, c := range msgs {
		got, err := in.inflate(c)
		if err != nil || !bytes.Equal(got, corpus[i]) {
			wrong++
		}
	}
	assert.Positive(t, wrong, "a stateless inflater cannot follow a takeover stream")

	for i, m := range corpus[:10] {
		c, err := compressMessage(m, flate.BestSpeed)
		require.NoError(t, err)
		got, err := (&inflater{}).inflate(c)
		require.NoError(t, err)
		require.Equal(t, m, got, "message %d compressed alone", i)
	}
}

func TestPMDResponse(t *testing.T) {
	tests := []struct {
		in           string
		ok, takeover bool
	}{
		{in: "", ok: false},
		{in: "permessage-deflate", ok: true, takeover: true},
		{in: "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", ok: true, takeover: true},
		{in: "permessage-deflate; server_no_context_takeover; client_no_context_takeover", ok: true, takeover: false},
		{in: "x-webkit-deflate-frame, permessage-deflate;server_no_context_takeover", ok: true, takeover: false},
		{in: "x-webkit-deflate-frame", ok: false},
	}
	for _, tt := range tests {
		ok, takeover := pmdResponse(tt.in)
		assert.Equal(t, tt.ok, ok, tt.in)
		assert.Equal(t, tt.takeover, takeover, tt.in)
	}
}
