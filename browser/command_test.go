package browser_test

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

func TestCommandPage(t *testing.T) {
	ex := startExample(t, "command", "-cmd", "bc -q")

	p := openPage(t, ex.url+"/", "bc")
	p.waitText("#status", "Running: bc -q")
	kids := childrenOf(t, ex.cmd.Process.Pid)
	require.Len(t, kids, 1, "one bc for one page")

	tests := []struct{ input, want string }{
		{"6*7", "42\n"},
		{"2^100", "1267650600228229401496703205376\n"},
		{"1/0", "Runtime error"}, // on standard error
	}
	for _, tt := range tests {
		p.typeAndClick("#input", tt.input, "#send")
		p.waitText("#output", tt.want)
	}
	p.waitFor(`[...document.querySelectorAll("#output .stderr")].some(s => s.textContent.includes("Runtime error"))`,
		"bc's error in red")

	// Closing the page ends bc, and the server reaps it.
	p.close()
	waitGone(t, kids[0])

	// A program that exits by itself: the page says how.
	q := openPage(t, ex.url+"/", "bc quits")
	q.waitText("#status", "Running: bc -q")
	q.typeAndClick("#input", "quit", "#send")
	q.waitText("#status", "Exited: exit status 0")
	q.waitText("#output", "[Disconnected (1000: program exited)]")
	// Run again starts a new one.
	q.do(chromedp.Click(chromedp.CSS("#restart")))
	q.waitText("#status", "Running: bc -q")

	waitExit := ex.interrupt()
	q.waitText("#status", "Disconnected (1001: server shutting down)")
	waitExit()
}
