package browser_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h2Env makes Go's HTTP/2 server announce extended CONNECT (RFC 8441).
var h2Env = []string{"GODEBUG=http2xconnect=1"}

// logLine waits until the example's log has a line matching re and
// returns its submatches.
func logLine(t *testing.T, ex *example, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	require.Eventually(t, func() bool {
		m = re.FindStringSubmatch(ex.output())
		return m != nil
	}, guard, 10*time.Millisecond, "no log line matching %s in:\n%s", re, ex.output())
	return m
}

// TestHTTP2Page loads the http2 example's page over HTTPS, which Chromium
// does over HTTP/2, and checks that the page's WebSocket then rides that
// same connection as an extended CONNECT stream, with permessage-deflate,
// echoing both ways, and closes cleanly.
func TestHTTP2Page(t *testing.T) {
	ex := startExampleEnv(t, h2Env, "http2")
	p := openPage(t, ex.url+"/", "http2")
	assert.Equal(t, "h2", eval[string](p, `performance.getEntriesByType("navigation")[0].nextHopProtocol`), "the page's protocol")
	page := logLine(t, ex, regexp.MustCompile(`page HTTP/2\.0 from (\S+)`))

	p.do(chromedp.Click(chromedp.CSS("#open")))
	p.waitFor(`!document.getElementById("send").disabled`, "the Send button")
	p.waitText("#log", "open, extensions: permessage-deflate")
	ws := logLine(t, ex, regexp.MustCompile(`websocket HTTP/2\.0 CONNECT from (\S+) \(:protocol "websocket"\)`))
	assert.Equal(t, page[1], ws[1], "the WebSocket came on another connection than the page")

	for i, text := range []string{"hello over HTTP/2", "ü" + strings.Repeat("0123456789", 10000)} {
		js := fmt.Sprintf(`document.getElementById("input").value = window.want = %s`, jsString(text))
		eval[string](p, js)
		p.do(chromedp.Click(chromedp.CSS("#send")))
		p.waitFor(fmt.Sprintf(`(() => {
			const r = document.querySelectorAll("#log .recv");
			return r.length === %d && r[%d].textContent === "< " + window.want;
		})()`, i+1, i), fmt.Sprintf("echo %d", i))
	}
	p.do(chromedp.Click(chromedp.CSS("#close")))
	p.waitText("#log", "closed (code 1000)")
	assert.NotContains(t, eval[string](p, `document.getElementById("log").textContent`), "not clean")

	// Ctrl-C tells an open page the server is going away.
	p.do(chromedp.Click(chromedp.CSS("#open")))
	p.waitFor(`!document.getElementById("send").disabled`, "the Send button")
	waitExit := ex.interrupt()
	p.waitText("#log", "closed (code 1001, server shutting down)")
	waitExit()
}

// TestHTTP2ManySockets has one page open 100 WebSockets at once: all of
// them must arrive as streams of the page's HTTP/2 connection. The time
// they took is logged, not checked: Chromium paces the opening of
// WebSockets itself (about 50 ms each past the first few, over HTTP/2 as
// over HTTP/1.1), so it measures the browser; bench/h2open measures the
// transports.
func TestHTTP2ManySockets(t *testing.T) {
	const n = 100
	ex := startExampleEnv(t, h2Env, "http2")
	p := openPage(t, ex.url+"/", "many")
	page := logLine(t, ex, regexp.MustCompile(`page HTTP/2\.0 from (\S+)`))
	ctx, cancel := context.WithTimeout(p.ctx, guard)
	defer cancel()
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf(`window.openMany(%d)`, n), chromedp.EvalAwaitPromise))
	require.NoError(t, err, "opening %d WebSockets", n)
	t.Logf("%d WebSockets opened by one page over HTTP/2 in %.0f ms", n, ms)
	// The log is read on its own goroutine, which may lag behind.
	want := "websocket HTTP/2.0 CONNECT from " + page[1] + " "
	require.Eventually(t, func() bool { return strings.Count(ex.output(), want) >= n }, guard, 10*time.Millisecond,
		"not all %d WebSockets were streams of the page's connection:\n%s", n, ex.output())
	assert.Equal(t, n, strings.Count(ex.output(), "websocket "), "WebSockets in all")
}
