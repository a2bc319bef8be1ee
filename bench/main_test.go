package main

import (
	"bytes"
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
		"## Broadcast", "## Idle memory", "## Handshakes", "## permessage-deflate echo",
		"| 16 KiB | wsforge |", "| 16 B | gorilla ↔ gorilla |",
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
			p := makePayload(tt.size, false)
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
