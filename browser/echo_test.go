package browser_test

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
)

func TestEchoPage(t *testing.T) {
	ex := startExample(t, "server")
	p := openPage(t, ex.url+"/", "echo")
	p.do(chromedp.Click(chromedp.CSS("#open")))
	p.waitFor(`!document.getElementById("send").disabled`, "the Send button")

	// Each text is built in the page (a 1 MiB literal would be a 1 MiB
	// protocol message) and put in the page's own input box.
	tests := []struct {
		name  string
		js    string
		bytes int
	}{
		{"1 B", `"a"`, 1},
		{"125 B", `"b".repeat(125)`, 125},
		{"126 B", `"c".repeat(126)`, 126},
		{"64 KiB - 1", `"d".repeat(65535)`, 65535},
		{"64 KiB", `"e".repeat(65536)`, 65536},
		{"1 MiB", `"0123456789abcdef".repeat(65536)`, 1 << 20},
		{"UTF-8", `"héllo wörld ✓ 🌍"`, 22},
		{"markup stays text", `"<b>not bold</b>"`, 15},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			n := eval[int](p, fmt.Sprintf(`new TextEncoder().encode(document.getElementById("input").value = window.want = %s).length`, tt.js))
			assert.Equal(t, tt.bytes, n)
			p.do(chromedp.Click(chromedp.CSS("#send")))
			p.waitFor(fmt.Sprintf(`(() => {
				const r = document.querySelectorAll("#log .recv");
				return r.length === %d && r[%d].textContent === "< " + window.want;
			})()`, i+1, i), "the echo of "+tt.name)
		})
	}
	p.t = t

	// The server's default close handler answers with the page's code and
	// no reason, and onclose reports the server's frame.
	p.do(chromedp.Click(chromedp.CSS("#close")))
	p.waitText("#log", "closed (code 1000)")

	// Ctrl-C tells an open page the server is going away.
	p.do(chromedp.Click(chromedp.CSS("#open")))
	p.waitFor(`!document.getElementById("send").disabled`, "the Send button")
	waitExit := ex.interrupt()
	p.waitText("#log", "closed (code 1001, server shutting down)")
	waitExit()
}
