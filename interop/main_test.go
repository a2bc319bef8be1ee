package interop_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// TestMain says which peers are missing, one line each, before the tests
// run, so that a run without them does not pass for one with them. Their
// tests skip all the same (or fail, under WSFORGE_INTEROP_REQUIRE_PEERS,
// which needs no notice).
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(requireEnv) == "" {
		var missing []string
		for _, p := range peers {
			if err := p.locate(); err != nil {
				missing = append(missing, fmt.Sprintf("interop: %s not installed, its tests skip (%s; install: %s; see interop/README.md)\n", p.name, lastLine(err.Error()), p.install))
			}
		}
		if len(missing) > 0 {
			w, done := noticeOutput()
			for _, line := range missing {
				io.WriteString(w, line)
			}
			done()
		}
	}
	os.Exit(m.Run())
}

// lastLine returns the last non-empty line of s: the one that says what
// went wrong, in a Python traceback.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// noticeOutput returns where a notice reaches whoever runs go test, and a
// function to call once it is written.
//
// go test keeps the output of a passing test binary to itself unless it
// runs with -v or in the package's own directory ("go help test"), so a
// notice on standard error alone goes unseen in `go test ./...`. Without
// -v it therefore also goes to the go command's own standard error, read
// through /proc (Linux; elsewhere, and where that fails, standard error
// only), when that is a terminal or a pipe and not where this binary's
// standard error already goes. A regular file is left alone: writing to it
// through a second descriptor could overwrite what go writes there.
func noticeOutput() (w io.Writer, done func()) {
	if testing.Verbose() {
		return os.Stderr, func() {}
	}
	parent, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/2", os.Getppid()), os.O_WRONLY, 0)
	if err != nil {
		return os.Stderr, func() {}
	}
	pi, err1 := parent.Stat()
	si, err2 := os.Stderr.Stat()
	streamed := err1 == nil && pi.Mode()&(os.ModeCharDevice|os.ModeNamedPipe|os.ModeSocket) != 0
	if !streamed || err2 != nil || os.SameFile(pi, si) {
		parent.Close()
		return os.Stderr, func() {}
	}
	return io.MultiWriter(os.Stderr, parent), func() { parent.Close() }
}
