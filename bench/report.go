package main

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"
)

type report struct {
	cfg        *config
	pin        pinning
	results    map[cellKey][]result
	notes      []string
	errors     []string
	disturbed  []string
	retried    int
	background []float64
	elapsed    time.Duration
}

func newReport(cfg *config, pin pinning) *report {
	return &report{cfg: cfg, pin: pin, results: map[cellKey][]result{}}
}

func (r *report) add(k cellKey, res result) {
	r.results[k] = append(r.results[k], res)
	if res.Err == "" {
		r.background = append(r.background, res.Background)
		if res.Background > r.cfg.maxBg && !isIdle(k.suite) {
			r.disturbed = append(r.disturbed, fmt.Sprintf("%s %s %s %s x%d (%.2f)", k.suite, k.client, k.lib, k.label(), k.conns, res.Background))
		}
	}
	if res.Err != "" {
		r.errors = append(r.errors, fmt.Sprintf("%s %s %s %s x%d: %s", k.suite, k.client, k.lib, k.label(), k.conns, res.Err))
	}
}

// metric pulls one number out of a run; ok is false when the run has none.
type metric func(res result) (float64, bool)

func perOp(f func(res result) float64) metric {
	return func(res result) (float64, bool) {
		if res.Ops <= 0 {
			return 0, false
		}
		return f(res) / float64(res.Ops), true
	}
}

var (
	opsPerSec = func(res result) (float64, bool) {
		if res.Ops <= 0 || res.WallNs <= 0 {
			return 0, false
		}
		return float64(res.Ops) / (float64(res.WallNs) / 1e9), true
	}
	serverUs     = perOp(func(res result) float64 { return float64(res.Server.CPUNs) / 1e3 })
	serverUserUs = perOp(func(res result) float64 { return float64(res.Server.UserNs) / 1e3 })
	clientUs     = perOp(func(res result) float64 { return float64(res.Client.CPUNs) / 1e3 })
	// serverBusy is the share of the window the server spent on a CPU: below
	// 100% the server was waiting, so msgs/s is bounded by the round trip
	// rather than by the server.
	serverBusy = func(res result) (float64, bool) {
		if res.WallNs <= 0 {
			return 0, false
		}
		return float64(res.Server.CPUNs) / float64(res.WallNs) * 100, true
	}
	serverAllocs = perOp(func(res result) float64 { return float64(res.Server.Mallocs) })
	perConn      = func(f func(res result) float64) metric {
		return func(res result) (float64, bool) {
			if res.Conns <= 0 {
				return 0, false
			}
			return f(res) / float64(res.Conns), true
		}
	}
	memKiB    = perConn(func(res result) float64 { return float64(res.HeapBytes+res.StackBytes) / 1024 })
	heapKiB   = perConn(func(res result) float64 { return float64(res.HeapBytes) / 1024 })
	stackKiB  = perConn(func(res result) float64 { return float64(res.StackBytes) / 1024 })
	goroutine = perConn(func(res result) float64 { return float64(res.Goroutines) })
)

// stat is the median of a metric over a cell's good runs and its spread,
// (max-min)/median.
type stat struct {
	n              int
	median, spread float64
}

func (r *report) stat(k cellKey, m metric) stat {
	var v []float64
	for _, res := range r.results[k] {
		if res.Err != "" || res.Note != "" {
			continue
		}
		if x, ok := m(res); ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return stat{}
	}
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	s := stat{n: len(v), median: med}
	if med != 0 {
		s.spread = (v[len(v)-1] - v[0]) / med * 100
	}
	return s
}

// missing says why a cell has no number: its note, or "err".
func (r *report) missing(k cellKey) string {
	for _, res := range r.results[k] {
		if res.Note != "" {
			return res.Note
		}
	}
	if len(r.results[k]) == 0 {
		return "–"
	}
	return "err"
}

func (r *report) val(k cellKey, m metric) string {
	s := r.stat(k, m)
	if s.n == 0 {
		return r.missing(k)
	}
	return num(s.median)
}

func (r *report) pct(k cellKey, m metric) string {
	s := r.stat(k, m)
	if s.n == 0 {
		return r.missing(k)
	}
	return fmt.Sprintf("%.0f%%", s.median)
}

func (r *report) spread(k cellKey, m metric) string {
	s := r.stat(k, m)
	if s.n == 0 {
		return ""
	}
	if s.n == 1 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", s.spread)
}

// ratio compares k's median to gorilla's in the same cell.
func (r *report) ratio(k cellKey, m metric) string { return r.ratioTo(k, m, "gorilla") }

// ratioTo compares k's median to base's in the same cell.
func (r *report) ratioTo(k cellKey, m metric, base string) string {
	g := k
	g.lib = base
	a, b := r.stat(k, m), r.stat(g, m)
	if a.n == 0 || b.n == 0 || b.median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.median/b.median)
}

func num(v float64) string {
	switch {
	case v >= 1e5:
		return groupThousands(fmt.Sprintf("%.0f", v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func groupThousands(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

type table struct {
	b *strings.Builder
}

func (t table) row(cells ...string) {
	t.b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

func (t table) head(cells ...string) {
	t.row(cells...)
	seps := make([]string, len(cells))
	for i := range seps {
		seps[i] = "---"
		if i > 0 {
			seps[i] = "---:"
		}
	}
	t.row(seps...)
}

func (r *report) markdown(plan map[string]planned) string {
	cfg := r.cfg
	var b strings.Builder
	t := table{&b}
	b.WriteString("# wsforge benchmark results\n\n")
	fmt.Fprintf(&b, "- Machine: %s, %d logical CPUs, %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- Processes: every measurement uses a fresh server process and a fresh client process, GOMAXPROCS=1 each, %s; 127.0.0.1 only\n", r.pin.describe())
	fmt.Fprintf(&b, "- Go: %s\n", runtime.Version())
	fmt.Fprintf(&b, "- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- Command: `%s`\n", strings.TrimSpace("cd bench && go run . "+strings.Join(cfg.args, " ")))
	if v := moduleVersions(); v != "" {
		fmt.Fprintf(&b, "- Peers: %s\n", v)
	}
	fmt.Fprintf(&b, "- Repetitions: %d; every number is the median over them, \"spread\" is (max−min)/median. Libraries run round-robin within each repetition.\n", cfg.runs)
	fmt.Fprintf(&b, "- Wall time: %s\n", r.elapsed.Round(time.Second))
	if len(r.background) > 0 {
		bg := append([]float64(nil), r.background...)
		sort.Float64s(bg)
		fmt.Fprintf(&b, "- Other processes on the machine while runs were measured: median %.2f CPUs, max %.2f CPUs; %d run(s) repeated because they exceeded %.2f CPUs\n",
			bg[len(bg)/2], bg[len(bg)-1], r.retried, r.cfg.maxBg)
	}
	b.WriteString("\n")

	libName := func(lib, client string) string {
		if client == "native" {
			switch lib {
			case "wsforge-stream":
				return "wsforge-stream ↔ wsforge-stream"
			}
			return lib + " ↔ " + lib
		}
		return lib
	}

	for _, suite := range cfg.suites {
		p := plan[suite]
		switch suite {
		case "echo":
			b.WriteString("## Echo\n\n")
			fmt.Fprintf(&b, "Request/echo round trips, one message in flight per connection, binary messages, %v measured per run after %v of warm-up. Server µs/msg is the server process's CPU time (user+sys) divided by the echoed messages; lower is better.\n\n", cfg.duration, cfg.warmup)
			if contains(cfg.clients, "raw") {
				n := cfg.conns[len(cfg.conns)-1]
				fmt.Fprintf(&b, "### Summary: server CPU µs per echoed message, common raw client, %d connection(s)\n\n", n)
				t.head(append([]string{"size"}, p.libs...)...)
				for _, sz := range cfg.sizes {
					row := []string{sizeLabel(sz)}
					for _, lib := range p.libs {
						row = append(row, r.val(cellKey{cell{suite: suite, client: "raw", size: sz, conns: n}, lib}, serverUs))
					}
					t.row(row...)
				}
				b.WriteString("\n")
			}
			if contains(cfg.clients, "native") {
				b.WriteString("### Summary: msgs/s, each library's own client against its own server\n\n")
				t.head(append([]string{"size", "conns"}, p.libs...)...)
				for _, n := range cfg.conns {
					for _, sz := range cfg.sizes {
						row := []string{sizeLabel(sz), fmt.Sprint(n)}
						for _, lib := range p.libs {
							row = append(row, r.val(cellKey{cell{suite: suite, client: "native", size: sz, conns: n}, lib}, opsPerSec))
						}
						t.row(row...)
					}
				}
				b.WriteString("\n")
			}
			for _, cl := range cfg.clients {
				for _, n := range cfg.conns {
					what := "common raw client"
					if cl == "native" {
						what = "native clients (each library's own client against its own server)"
					}
					fmt.Fprintf(&b, "### Echo, %s, %d connection(s)\n\n", what, n)
					t.head("size", "library", "msgs/s", "spread", "server µs/msg", "spread", "server user µs/msg", "client µs/msg", "server allocs/msg", "server busy", "server CPU vs gorilla")
					for _, sz := range cfg.sizes {
						for _, lib := range p.libs {
							k := cellKey{cell{suite: suite, client: cl, size: sz, conns: n}, lib}
							t.row(sizeLabel(sz), libName(lib, cl), r.val(k, opsPerSec), r.spread(k, opsPerSec),
								r.val(k, serverUs), r.spread(k, serverUs), r.val(k, serverUserUs), r.val(k, clientUs),
								r.val(k, serverAllocs), r.pct(k, serverBusy), r.ratio(k, serverUs))
						}
					}
					b.WriteString("\n")
				}
			}
		case "broadcast":
			c := p.cells[0]
			b.WriteString("## Broadcast\n\n")
			fmt.Fprintf(&b, "%d connections (common raw client); the server sends %d messages of %s, each to every connection, using the library's prepared-message facility where it has one (wsforge and gorilla PreparedMessage, gws Broadcaster, gobwas a frame compiled once with ws.CompileFrame, coder none: Conn.Write per connection). Each message goes out only after the client has acknowledged that every connection received the previous one.\n\n", c.conns, cfg.brounds, sizeLabel(c.size))
			t.head("library", "deliveries/s", "server µs/delivery", "spread", "server user µs/delivery", "client µs/delivery", "server allocs/delivery", "server CPU vs gorilla")
			for _, lib := range p.libs {
				k := cellKey{c, lib}
				t.row(lib, r.val(k, opsPerSec), r.val(k, serverUs), r.spread(k, serverUs), r.val(k, serverUserUs), r.val(k, clientUs), r.val(k, serverAllocs), r.ratio(k, serverUs))
			}
			b.WriteString("\n")
		case "idle":
			c := p.cells[0]
			b.WriteString("## Idle memory\n\n")
			fmt.Fprintf(&b, "%d idle connections held by the client process; each server handler is blocked in its library's read call. Memory is the server's HeapInuse+StackInuse after runtime.GC(), minus the same before any connection, divided by the connections. The row \"wsforge, handler returned\" runs the read loop in a goroutine of its own and returns from the HTTP handler, as gorilla's chat example does, so net/http's per-request state is released. The last row, net/http floor, is no library: a handler that hijacks, writes the 101 response, drops net/http's bufio buffers and blocks reading the raw connection, i.e. what net/http itself keeps per blocked handler (request, contexts, connection state, and a stack that cannot shrink below 4 KiB while its frames are in use).\n\n", c.conns)
			t.head("library", "KiB/conn (heap+stack)", "spread", "heap KiB/conn", "stack KiB/conn", "goroutines/conn", "vs gorilla")
			for _, lib := range p.libs {
				k := cellKey{c, lib}
				t.row(lib, r.val(k, memKiB), r.spread(k, memKiB), r.val(k, heapKiB), r.val(k, stackKiB), r.val(k, goroutine), r.ratio(k, memKiB))
			}
			b.WriteString("\n")
		case "handshake":
			c := p.cells[0]
			b.WriteString("## Handshakes\n\n")
			fmt.Fprintf(&b, "%d client loops (common raw client) each connect, upgrade, send a close frame, wait for the server's close and reset the connection, for %v per run. Server µs/upgrade covers the whole connection lifetime: accept, HTTP parsing, upgrade, close.\n\n", c.conns, cfg.hsDuration)
			t.head("library", "upgrades/s", "spread", "server µs/upgrade", "spread", "server user µs/upgrade", "client µs/upgrade", "server allocs/upgrade", "server CPU vs gorilla")
			for _, lib := range p.libs {
				k := cellKey{c, lib}
				t.row(lib, r.val(k, opsPerSec), r.spread(k, opsPerSec), r.val(k, serverUs), r.spread(k, serverUs), r.val(k, serverUserUs), r.val(k, clientUs), r.val(k, serverAllocs), r.ratio(k, serverUs))
			}
			b.WriteString("\n")
		case "deflate":
			r.deflateMarkdown(&b, p)
		}
	}
	if len(r.notes) > 0 || len(r.disturbed) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.notes {
			b.WriteString("- " + n + "\n")
		}
		if len(r.disturbed) > 0 {
			fmt.Fprintf(&b, "- %d kept run(s) shared the machine with other processes using more than %.2f CPUs (CPUs in parentheses); their msgs/s in particular is suspect: %s\n",
				len(r.disturbed), r.cfg.maxBg, strings.Join(r.disturbed, ", "))
		}
		b.WriteString("\n")
	}
	if len(r.errors) > 0 {
		b.WriteString("## Errors\n\n")
		for _, e := range r.errors {
			b.WriteString("- " + e + "\n")
		}
		b.WriteString("\n")
	}
	return b.String()
}
