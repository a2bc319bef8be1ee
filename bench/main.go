// Command bench compares wsforge with gorilla/websocket, lxzan/gws,
// gobwas/ws and coder/websocket. One invocation runs every suite for every
// library; the binary re-executes itself as a server child and a client
// child for each measurement, pinned to separate cores, and prints markdown
// tables. See README.md.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// childEnv marks a process started by the orchestrator; its arguments are
// then the child's, not the orchestrator's.
const childEnv = "WSBENCH_CHILD"

func main() {
	if os.Getenv(childEnv) == "1" {
		os.Exit(childMain(os.Args[1:]))
	}
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// childOpts are the flags of a server or client child.
type childOpts struct {
	role, lib, suite, client string
	size, conns              int
	duration, warmup         time.Duration
	corpus, mode             string
	addr, ctl                string
	rounds, workers          int
}

func childMain(args []string) int {
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	o := &childOpts{}
	fs.StringVar(&o.role, "role", "", "server or client")
	fs.StringVar(&o.lib, "lib", "", "library")
	fs.StringVar(&o.suite, "suite", "", "suite")
	fs.StringVar(&o.client, "client", "raw", "raw or native")
	fs.IntVar(&o.size, "size", 16, "message size")
	fs.IntVar(&o.conns, "conns", 1, "connections")
	fs.DurationVar(&o.duration, "duration", time.Second, "measured time")
	fs.DurationVar(&o.warmup, "warmup", 200*time.Millisecond, "warm-up time")
	fs.StringVar(&o.corpus, "corpus", "", "deflate: corpus (api or chat)")
	fs.StringVar(&o.mode, "mode", "", "deflate: offer and server configuration ("+strings.Join(deflateModes, ", ")+")")
	fs.StringVar(&o.addr, "addr", "", "server address")
	fs.StringVar(&o.ctl, "ctl", "", "server control address")
	fs.IntVar(&o.rounds, "rounds", 100, "broadcast rounds")
	fs.IntVar(&o.workers, "workers", 8, "handshake workers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch o.role {
	case "server":
		// WSBENCH_CPUPROFILE=prefix writes the server's CPU profile to
		// prefix-<lib>-<suite>-<pid>.pprof, for looking into a cell.
		if prefix := os.Getenv("WSBENCH_CPUPROFILE"); prefix != "" {
			f, err := os.Create(fmt.Sprintf("%s-%s-%s-%d.pprof", prefix, o.lib, o.suite, os.Getpid()))
			if err == nil {
				pprof.StartCPUProfile(f)
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
		if err := serverMain(o); err != nil {
			fmt.Fprintln(os.Stderr, "server:", err)
			return 1
		}
		return 0
	case "client":
		res := clientMain(o)
		b, _ := json.Marshal(res)
		fmt.Fprintf(os.Stdout, "%s\n", b)
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown role", o.role)
	return 2
}

var allSuites = []string{"echo", "broadcast", "idle", "handshake", "deflate"}
var allLibs = []string{"wsforge", "wsforge-stream", engineLib, "gorilla", "gws", "gobwas", "coder"}

// config is the orchestrator's view of the flags.
type config struct {
	suites, libs, clients []string
	sizes, conns          []int
	duration, warmup      time.Duration
	runs                  int
	bconns, brounds       int
	bsize                 int
	idleConns             int
	hsWorkers             int
	hsDuration            time.Duration
	deflateIdle           int
	maxBg                 float64
	retries               int
	retryBudget           time.Duration
	waitQuiet             time.Duration
	cpus                  string
	out                   string
	quick                 bool
	args                  []string
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suites := fs.String("suites", strings.Join(allSuites, ","), "suites to run")
	libs := fs.String("libs", strings.Join(allLibs, ","), "libraries to run")
	clients := fs.String("clients", "raw,native", "echo clients: raw (common pre-masking client) and/or native (each library's own)")
	sizes := fs.String("sizes", "16,1KiB,16KiB,1MiB", "echo message sizes")
	conns := fs.String("conns", "1,64", "echo connection counts")
	c := &config{args: args}
	fs.DurationVar(&c.duration, "duration", 1500*time.Millisecond, "measured time per echo cell and run")
	fs.DurationVar(&c.warmup, "warmup", 0, "warm-up before each measured window (default duration/5)")
	fs.IntVar(&c.runs, "runs", 3, "repetitions; each cell reports the median")
	fs.IntVar(&c.bconns, "bconns", 1000, "broadcast: connections")
	fs.IntVar(&c.brounds, "brounds", 100, "broadcast: messages sent to all connections")
	fs.IntVar(&c.bsize, "bsize", 128, "broadcast: message size")
	fs.IntVar(&c.idleConns, "idleconns", 10000, "idle: connections")
	fs.IntVar(&c.hsWorkers, "hsworkers", 8, "handshake: concurrent client loops")
	fs.DurationVar(&c.hsDuration, "hsduration", 0, "handshake: measured time (default -duration)")
	fs.IntVar(&c.deflateIdle, "deflateidle", 2000, "deflate: idle connections with compression history (0: skip that part)")
	fs.Float64Var(&c.maxBg, "maxbg", 0.15, "repeat a run when other processes used more than this many CPUs during it")
	fs.IntVar(&c.retries, "retries", 2, "how often to repeat a run disturbed by other processes")
	fs.DurationVar(&c.retryBudget, "retrybudget", 3*time.Minute, "total time allowed for waiting and repeating disturbed runs")
	fs.DurationVar(&c.waitQuiet, "waitquiet", time.Minute, "at start, wait up to this long for other processes to use less than -maxbg CPUs")
	fs.StringVar(&c.cpus, "cpus", "0,1", "CPUs for server,client children (\"none\": no pinning)")
	fs.StringVar(&c.out, "out", "", "also write the markdown to this file")
	fs.BoolVar(&c.quick, "quick", false, "smoke test: tiny durations and counts, one run")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if c.suites, err = pickList(*suites, allSuites, "suite"); err != nil {
		return nil, err
	}
	if c.libs, err = pickList(*libs, allLibs, "library"); err != nil {
		return nil, err
	}
	if c.clients, err = pickList(*clients, []string{"raw", "native"}, "client"); err != nil {
		return nil, err
	}
	if c.sizes, err = parseInts(*sizes, true); err != nil {
		return nil, err
	}
	if c.conns, err = parseInts(*conns, false); err != nil {
		return nil, err
	}
	if c.quick {
		if !set["duration"] {
			c.duration = 100 * time.Millisecond
		}
		if !set["runs"] {
			c.runs = 1
		}
		if !set["bconns"] {
			c.bconns = 50
		}
		if !set["brounds"] {
			c.brounds = 5
		}
		if !set["idleconns"] {
			c.idleConns = 200
		}
		if !set["deflateidle"] {
			c.deflateIdle = 50
		}
		if !set["retries"] {
			c.retries = 0
		}
		if !set["waitquiet"] {
			c.waitQuiet = 0
		}
	}
	if c.warmup == 0 {
		c.warmup = c.duration / 5
	}
	if c.hsDuration == 0 {
		c.hsDuration = c.duration
	}
	if c.runs < 1 {
		return nil, errors.New("-runs must be at least 1")
	}
	return c, nil
}

func pickList(s string, allowed []string, what string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == v
		}
		if !ok {
			return nil, fmt.Errorf("unknown %s %q (known: %s)", what, v, strings.Join(allowed, ","))
		}
		out = append(out, v)
	}
	return out, nil
}

// parseInts reads a comma list; with sizes it accepts B, KiB and MiB
// suffixes.
func parseInts(s string, sizes bool) ([]int, error) {
	var out []int
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		mult := 1
		if sizes {
			switch {
			case strings.HasSuffix(v, "MiB"):
				mult, v = 1<<20, strings.TrimSuffix(v, "MiB")
			case strings.HasSuffix(v, "KiB"):
				mult, v = 1<<10, strings.TrimSuffix(v, "KiB")
			case strings.HasSuffix(v, "B"):
				v = strings.TrimSuffix(v, "B")
			}
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", v)
		}
		out = append(out, n*mult)
	}
	return out, nil
}

// cell is one table row's worth of measurement for one library. corpus
// and mode are the deflate suite's.
type cell struct {
	suite, client string
	size, conns   int
	corpus, mode  string
}

// label names the cell in progress lines and notes.
func (c cell) label() string {
	if c.corpus == "" && c.mode == "" {
		return sizeLabel(c.size)
	}
	return strings.TrimSpace(c.corpus + " " + c.mode)
}

// isIdle says whether a suite measures memory rather than CPU.
func isIdle(suite string) bool { return suite == "idle" || suite == "deflate-idle" }

type cellKey struct {
	cell
	lib string
}

// plan lists, per suite, the cells and which libraries run them.
type planned struct {
	cells []cell
	libs  []string
	// only, when set, says whether lib runs cell c.
	only func(c cell, lib string) bool
}

// libsOf lists the libraries that run cell c.
func (p planned) libsOf(c cell) []string {
	if p.only == nil {
		return p.libs
	}
	var out []string
	for _, l := range p.libs {
		if p.only(c, l) {
			out = append(out, l)
		}
	}
	return out
}

func (c *config) plan() map[string]planned {
	p := map[string]planned{}
	without := func(drop ...string) []string {
		var out []string
		for _, l := range c.libs {
			keep := true
			for _, d := range drop {
				keep = keep && l != d
			}
			if keep {
				out = append(out, l)
			}
		}
		return out
	}
	for _, s := range c.suites {
		switch s {
		case "echo":
			var cells []cell
			for _, cl := range c.clients {
				for _, n := range c.conns {
					for _, sz := range c.sizes {
						cells = append(cells, cell{suite: s, client: cl, size: sz, conns: n})
					}
				}
			}
			p[s] = planned{cells: cells, libs: c.libs}
		case "broadcast":
			// The streaming variant differs from wsforge only in its
			// echo loop, so it is left out where no echo happens.
			p[s] = planned{cells: []cell{{suite: s, client: "raw", size: c.bsize, conns: c.bconns}}, libs: without("wsforge-stream")}
		case "idle":
			p[s] = planned{cells: []cell{{suite: s, client: "raw", conns: c.idleConns}}, libs: append(append([]string(nil), c.libs...), detachedLib, floorLib)}
		case "handshake":
			p[s] = planned{cells: []cell{{suite: s, client: "raw", conns: c.hsWorkers}}, libs: without("wsforge-stream")}
		case "deflate":
			// Echo cells: every corpus with and without context takeover
			// at the largest connection count; then idle connections
			// without the extension, with it, and (wsforge only) with it
			// and 1 KiB windows. gobwas is left out: its compression needs
			// wsflate wiring.
			n := c.conns[len(c.conns)-1]
			var cells []cell
			for _, corpus := range corpusNames {
				for _, mode := range []string{modeTakeover, modeNoTakeover} {
					cells = append(cells, cell{suite: s, client: "raw", conns: n, corpus: corpus, mode: mode})
				}
			}
			if c.deflateIdle > 0 {
				for _, mode := range []string{modePlain, modeTakeover, modeSmallWindows} {
					cells = append(cells, cell{suite: "deflate-idle", client: "raw", conns: c.deflateIdle, corpus: "api", mode: mode})
				}
			}
			p[s] = planned{cells: cells, libs: without("gobwas"), only: func(c cell, lib string) bool {
				return c.mode != modeSmallWindows || lib == "wsforge"
			}}
		}
	}
	return p
}

// runner starts the children.
type runner struct {
	cfg *config
	exe string
	pin pinning
}

// runOne measures one library in one cell: a fresh server child and a
// fresh client child.
func (r *runner) runOne(c cell, lib string) (res result) {
	cfg := r.cfg
	common := []string{"-lib", lib, "-suite", c.suite, "-size", strconv.Itoa(c.size),
		"-conns", strconv.Itoa(c.conns)}
	if c.corpus != "" {
		common = append(common, "-corpus", c.corpus)
	}
	if c.mode != "" {
		common = append(common, "-mode", c.mode)
	}
	dur := cfg.duration
	if c.suite == "handshake" {
		dur = cfg.hsDuration
	}
	limit := 2*(cfg.warmup+dur) + 90*time.Second

	srv := r.pin.command(r.exe, r.pin.server, append([]string{"-role", "server"}, common...))
	srv.Env = append(os.Environ(), childEnv+"=1", "GOMAXPROCS=1")
	var srvErr bytes.Buffer
	srv.Stderr = &srvErr
	out, err := srv.StdoutPipe()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	if err := srv.Start(); err != nil {
		res.Err = err.Error()
		return res
	}
	srvDone := make(chan error, 1)
	other0, t0 := otherCPU(), time.Now()
	defer func() {
		select {
		case <-srvDone:
		case <-time.After(10 * time.Second):
			_ = srv.Process.Kill()
			<-srvDone
		}
		if res.Err != "" && srvErr.Len() > 0 {
			res.Err += "; server stderr: " + lastLines(srvErr.String(), 5)
		}
		// What the machine did besides the two children, in CPUs: other
		// processes competing for the cores make every number suspect.
		if wall := time.Since(t0); wall > 0 {
			res.Background = float64(otherCPU()-other0) / float64(wall)
		}
	}()
	helloCh := make(chan serverHello, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var h serverHello
		if sc.Scan() {
			_ = json.Unmarshal(sc.Bytes(), &h)
		}
		helloCh <- h
		_, _ = io.Copy(io.Discard, out)
		srvDone <- srv.Wait()
	}()
	var hello serverHello
	select {
	case hello = <-helloCh:
	case <-time.After(30 * time.Second):
	}
	if hello.Addr == "" {
		_ = srv.Process.Kill()
		res.Err = "server did not start"
		return res
	}

	args := append([]string{"-role", "client", "-client", c.client, "-addr", hello.Addr, "-ctl", hello.Ctl,
		"-duration", dur.String(), "-warmup", cfg.warmup.String(),
		"-rounds", strconv.Itoa(cfg.brounds), "-workers", strconv.Itoa(cfg.hsWorkers)}, common...)
	cli := r.pin.command(r.exe, r.pin.client, args)
	cli.Env = append(os.Environ(), childEnv+"=1", "GOMAXPROCS=1")
	var cliOut, cliErr bytes.Buffer
	cli.Stdout, cli.Stderr = &cliOut, &cliErr
	if err := cli.Start(); err != nil {
		_ = srv.Process.Kill()
		res.Err = err.Error()
		return res
	}
	cliDone := make(chan error, 1)
	go func() { cliDone <- cli.Wait() }()
	select {
	case err = <-cliDone:
	case <-time.After(limit):
		_ = cli.Process.Kill()
		_ = srv.Process.Kill()
		<-cliDone
		res.Err = fmt.Sprintf("timed out after %v", limit)
		return res
	}
	lines := strings.Split(strings.TrimSpace(cliOut.String()), "\n")
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &res); jerr != nil {
		_ = srv.Process.Kill()
		res.Err = fmt.Sprintf("client: %v; stderr: %s", err, lastLines(cliErr.String(), 5))
	}
	return res
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// run is the orchestrator: it runs every planned cell for every library,
// libraries round-robin within each repetition, and writes the report.
func run(args []string, stdout, progress io.Writer) error {
	cfg, err := parseConfig(args, progress)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	r := &runner{cfg: cfg, exe: exe, pin: choosePinning(cfg.cpus)}

	rep := newReport(cfg, r.pin)
	// Children inherit the limit; raising it here also lifts the hard limit
	// for them when this process may.
	need := uint64(max(cfg.idleConns, cfg.deflateIdle)) + 1024
	if got := raiseNoFile(need); got < need {
		scaled := max(int(got)-1024, 1)
		if contains(cfg.suites, "idle") && cfg.idleConns > scaled {
			rep.notes = append(rep.notes, fmt.Sprintf("idle: RLIMIT_NOFILE is %d, so the idle suite uses %d connections instead of %d", got, scaled, cfg.idleConns))
			cfg.idleConns = scaled
		}
		if contains(cfg.suites, "deflate") && cfg.deflateIdle > scaled {
			rep.notes = append(rep.notes, fmt.Sprintf("deflate: RLIMIT_NOFILE is %d, so idle connections with compression are %d instead of %d", got, scaled, cfg.deflateIdle))
			cfg.deflateIdle = scaled
		}
	}
	plan := cfg.plan()
	if cfg.waitQuiet > 0 {
		fmt.Fprintf(progress, "waiting up to %v for other processes to use less than %.2f CPUs\n", cfg.waitQuiet, cfg.maxBg)
		waitQuiet(cfg.maxBg, cfg.waitQuiet)
	}
	total := 0
	for _, s := range cfg.suites {
		for _, c := range plan[s].cells {
			total += len(plan[s].libsOf(c)) * cfg.runs
		}
	}
	start := time.Now()
	done := 0
	// Repeating runs disturbed by other processes is bounded in total.
	budget := cfg.retryBudget
	for round := 0; round < cfg.runs; round++ {
		for _, s := range cfg.suites {
			p := plan[s]
			for _, c := range p.cells {
				libs := p.libsOf(c)
				for i := range libs {
					// Rotate the order each repetition so that no library
					// always runs first or last.
					lib := libs[(i+round)%len(libs)]
					res := r.runOne(c, lib)
					// Memory does not depend on competing for CPU, so idle
					// runs are never repeated.
					retries := cfg.retries
					if isIdle(c.suite) {
						retries = 0
					}
					for try := 0; try < retries && res.Err == "" && res.Background > cfg.maxBg && budget > 0; try++ {
						fmt.Fprintf(progress, "  other processes used %.2f CPUs during %s %s %s; waiting for a quiet machine and repeating\n",
							res.Background, c.suite, lib, c.label())
						t := time.Now()
						waitQuiet(cfg.maxBg, 20*time.Second)
						again := r.runOne(c, lib)
						budget -= time.Since(t)
						rep.retried++
						if again.Err == "" && again.Background < res.Background {
							res = again
						}
					}
					rep.add(cellKey{c, lib}, res)
					done++
					status := "ok"
					if res.Err != "" {
						status = "error: " + res.Err
					}
					fmt.Fprintf(progress, "[%d/%d %s] run %d %s %s %s x%d %s: %s (background %.2f CPUs)\n", done, total,
						time.Since(start).Round(time.Second), round+1, c.suite, c.client, c.label(), c.conns, lib, status, res.Background)
				}
			}
		}
	}
	rep.elapsed = time.Since(start)
	md := rep.markdown(plan)
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// waitQuiet waits, up to limit, until other processes use less than maxBg
// CPUs over a 500 ms sample.
func waitQuiet(maxBg float64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		b0, t0 := otherCPU(), time.Now()
		time.Sleep(500 * time.Millisecond)
		if float64(otherCPU()-b0)/float64(time.Since(t0)) < maxBg {
			return
		}
	}
}
