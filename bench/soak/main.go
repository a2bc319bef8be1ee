// Command soak stresses wsforge end to end under the race detector: a
// server and thousands of client connections in one process, over loopback
// TCP, checking every echoed byte, with abrupt drops, reconnects, graceful
// closes, compression and concurrent writers on both sides. It is a manual
// tool, not part of CI:
//
//	cd bench && go run -race ./soak -conns 5000 -duration 10m
//
// See README.md ("Soak") for what it does and prints. The exit status is 0
// only if no message was corrupted, lost, duplicated or reordered, nothing
// panicked, every error had a planned cause, and the goroutine count came
// back to its baseline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	conns, writers, maxSize, window, dialConc int
	duration, timeout                         time.Duration
	drop, compress, rate                      float64
	seed                                      uint64

	// Derived.
	think     time.Duration // mean pause between a writer's messages
	pushEvery time.Duration // mean interval between a server connection's pushes
	pingEvery time.Duration // server keep-alive ping interval
	url       string
}

// sizeFlag parses byte counts such as 1048576, 256KiB or 1MiB.
type sizeFlag struct{ n *int }

func (f sizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	return strconv.Itoa(*f.n)
}

func (f sizeFlag) Set(s string) error {
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad size %q", s)
	}
	*f.n = v * mult
	return nil
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := &config{maxSize: 1 << 20}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.IntVar(&cfg.conns, "conns", 5000, "client connections held open at once")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Minute, "how long to run before the final graceful close of every connection")
	fs.IntVar(&cfg.writers, "writers", 2, "concurrent writer goroutines per client connection (1..255)")
	fs.Var(sizeFlag{&cfg.maxSize}, "maxsize", "largest message (B, KiB, MiB suffixes allowed); 1 in 500 messages is between maxsize/4 and maxsize, 1 in 25 between 16 KiB and maxsize/4")
	fs.Float64Var(&cfg.drop, "drop", 0.001, "probability, per client write action, that the writer ends its connection there (abrupt close, RST, NetConn().Close() mid-message, CloseGracefully); with -drop > 0, 5% of connections are also dropped by the server")
	seed := fs.Uint64("seed", 1, "seed of message contents and of every random choice")
	fs.Float64Var(&cfg.compress, "compress", 0.5, "fraction of connections that negotiate permessage-deflate")
	fs.Float64Var(&cfg.rate, "rate", 200, "target client messages per second, all connections together: each connection's writers send bursts of 1..2*window messages at the same instants, paced to this rate")
	fs.IntVar(&cfg.window, "window", 4, "messages a writer may have sent and not yet seen echoed")
	fs.IntVar(&cfg.dialConc, "dialconc", 64, "concurrent dials")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Second, "read and write deadline; a hang shows up as a timeout error after this long")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	only := fs.Int("slot", -1, "debugging: run only this client slot (its seeds and pacing as in the full run)")
	memProfile := fs.String("memprofile", "", "write a heap profile to this file at the end, after every connection is closed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg.seed = *seed
	switch {
	case cfg.conns < 1, cfg.writers < 1 || cfg.writers > 255, cfg.maxSize < hdrLen, cfg.window < 1,
		cfg.dialConc < 1, cfg.rate <= 0, cfg.timeout < time.Second, cfg.drop < 0, cfg.compress < 0:
		fmt.Fprintln(os.Stderr, "soak: flag out of range")
		return 2
	}
	// Two sockets per connection (both ends are in this process), plus
	// headroom for connections closing while their replacements dial.
	if want := uint64(2*cfg.conns + 2*cfg.dialConc + 100); raiseNoFile(want) < want {
		fmt.Fprintf(os.Stderr, "soak: %d connections need %d open files; RLIMIT_NOFILE is lower\n", cfg.conns, want)
		return 2
	}
	// A writer sends bursts of 1..2*window messages.
	burst := float64(1+2*cfg.window) / 2
	writers := float64(cfg.conns * cfg.writers)
	cfg.think = time.Duration(writers * burst / cfg.rate * float64(time.Second))
	// The server pushes about one message per twenty client messages.
	cfg.pushEvery = time.Duration(float64(cfg.conns) / (cfg.rate / 20) * float64(time.Second))
	cfg.pingEvery = min(15*time.Second, cfg.timeout/4)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 2
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	corpus := newCorpus(cfg.seed)
	srv := newServer(cfg, corpus)
	cl := newClient(cfg, corpus)
	base := sampleAfterGC()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: cfg.timeout}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		hs.Serve(ln)
	}()
	cfg.url = "ws://" + ln.Addr().String()

	fmt.Fprintf(os.Stderr, "soak: %d conns x %d writers for %v against %s, seed %d, maxsize %d, drop %g, compress %g, rate %g/s (a burst every %v per connection), window %d\n",
		cfg.conns, cfg.writers, cfg.duration, cfg.url, cfg.seed, cfg.maxSize, cfg.drop, cfg.compress, cfg.rate, cfg.think.Round(time.Millisecond), cfg.window)
	fmt.Fprintf(os.Stderr, "soak: baseline %v\n", base)

	start := time.Now()
	var pk peaks
	pk.update(base)
	monDone := make(chan struct{})
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		monitor(cfg, start, &pk, monDone)
	}()

	for i := 0; i < cfg.conns; i++ {
		if *only >= 0 && i != *only {
			continue
		}
		cl.slots.Add(1)
		go cl.runSlot(uint32(i))
	}
	timer := time.NewTimer(cfg.duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "soak: interrupted, closing every connection")
	}
	timer.Stop()
	ran := time.Since(start)
	closeStart := time.Now()
	close(cl.runEnd)

	var failures []string
	// Every session ends within its deadlines (drain, CloseGracefully,
	// Close); a slot still running well after that is a hang.
	if !waitTimeout(cl.slots.Wait, 2*cfg.timeout+60*time.Second) {
		failures = append(failures, "client connections did not finish closing (hang)")
		dumpGoroutines("shutdown")
	}
	if !waitTimeout(srv.handlers.Wait, cfg.timeout+30*time.Second) {
		failures = append(failures, fmt.Sprintf("%d server handlers still running after every client closed", srv.active.Load()))
		dumpGoroutines("server-shutdown")
	}
	closing := time.Since(closeStart)
	cl.bigBufs.empty()
	cl.readBufs.empty()
	hs.Close()
	<-serveDone
	close(monDone)
	mon.Wait()

	// Settle: goroutines that are on their way out (timers' callbacks,
	// the last net/http connection goroutines) get a few seconds.
	const slack = 3
	settleDeadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > base.goroutines+slack && time.Now().Before(settleDeadline) {
		time.Sleep(100 * time.Millisecond)
	}
	end := sampleAfterGC()
	if *memProfile != "" {
		if f, err := os.Create(*memProfile); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	if end.goroutines > base.goroutines+slack {
		failures = append(failures, fmt.Sprintf("%d goroutines at the end, baseline %d", end.goroutines, base.goroutines))
		dumpGoroutines("leak")
	}

	failures = append(report(cfg, ran, closing, base, pk.get(), end), failures...)
	if len(failures) > 0 {
		fmt.Printf("\nFAIL\n")
		for _, f := range failures {
			fmt.Printf("  - %s\n", f)
		}
		return 1
	}
	fmt.Printf("\nPASS\n")
	return 0
}

// waitTimeout runs wait and reports whether it returned within d.
func waitTimeout(wait func(), d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// monitor samples goroutines and heap for the peaks every two seconds, and
// prints a progress line every 30.
func monitor(cfg *config, start time.Time, pk *peaks, done <-chan struct{}) {
	defer guard("monitor")
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastLine := start
	rampedUp := false
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		s := sample()
		pk.update(s)
		if !rampedUp && stats.firstDials.Load() >= int64(cfg.conns) {
			rampedUp = true
			fmt.Fprintf(os.Stderr, "soak: all %d connections dialled after %v\n", cfg.conns, time.Since(start).Round(100*time.Millisecond))
		}
		if time.Since(lastLine) >= 30*time.Second {
			lastLine = time.Now()
			fmt.Fprintf(os.Stderr, "soak: %4.0fs conns %d sent %d echoed %d verified %d corrupted %d seqerr %d | %s/%s | pushes %d bcasts %d | reconnects %d unexpected %d known %d panics %d | %v\n",
				time.Since(start).Seconds(), stats.active.Load(), stats.sent.Load(), stats.echoed.Load(), stats.verified.Load(),
				stats.corrupted.Load(), stats.lost.Load()+stats.disordered.Load(),
				mib(uint64(stats.sentBytes.Load())), mib(uint64(stats.echoedBytes.Load())),
				stats.pushes.Load(), stats.bcasts.Load(), stats.reconnects.Load(),
				stats.unexpected.Load()+stats.srvFailures.Load(), stats.knownIssue.Load()+stats.lingeringClose.Load(), stats.panics.Load(), s)
		}
	}
}

// report prints the results to stdout and returns the failures among them.
func report(cfg *config, ran, closing time.Duration, base, peak, end memSample) []string {
	p := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	secs := ran.Seconds()
	p("soak: %d conns x %d writers, ran %v (+%v closing), seed %d, maxsize %d, drop %g, compress %g, rate %g/s, window %d, timeout %v",
		cfg.conns, cfg.writers, ran.Round(time.Second), closing.Round(100*time.Millisecond), cfg.seed, cfg.maxSize, cfg.drop, cfg.compress, cfg.rate, cfg.window, cfg.timeout)
	p("")
	p("messages    sent %d, echoed %d, verified %d (%.0f/s)", stats.sent.Load(), stats.echoed.Load(), stats.verified.Load(), float64(stats.verified.Load())/secs)
	p("  by method WriteMessage %d, NextWriter+Write %d, NextWriter+ReadFrom %d, WritePreparedMessage %d",
		stats.sentBy[0].Load(), stats.sentBy[1].Load(), stats.sentBy[2].Load(), stats.sentBy[3].Load())
	p("bytes       sent %s, echoed %s (%.1f MiB/s each way)", mib(uint64(stats.sentBytes.Load())), mib(uint64(stats.echoedBytes.Load())), float64(stats.echoedBytes.Load())/secs/(1<<20))
	p("server      echoed %d (%s), pushed %d: own messages %d verified of %d received, broadcasts %d verified of %d received",
		stats.srvEchoed.Load(), mib(uint64(stats.srvEchoBytes.Load())), stats.srvPushes.Load(),
		stats.pushesOK.Load(), stats.pushes.Load(), stats.bcastsOK.Load(), stats.bcasts.Load())
	p("pings       client %d sent, %d pongs back; server %d sent, %d pongs back; compression setting changes %d",
		stats.pings.Load(), stats.pongs.Load(), stats.srvPings.Load(), stats.srvPongs.Load(), stats.toggles.Load())
	p("corrupted   %d", stats.corrupted.Load())
	p("sequence    lost %d, duplicated or reordered %d; graceful closes with every echo checked %d, messages missing at them %d",
		stats.lost.Load(), stats.disordered.Load(), stats.drains.Load(), stats.drainLost.Load())
	p("panics      %d", stats.panics.Load())
	p("connections dialed %d (%d with permessage-deflate), reconnects %d, peak open %d",
		stats.dials.Load(), stats.compressedDials.Load(), stats.reconnects.Load(), stats.peakActive.Load())
	p("  ended by: %s", sessionEnds.String())
	p("client errors by kind (mostly the planned drops' fallout): %s", clientErrs.String())
	p("unexpected client errors (no planned drop explains them): %s", unexpectedErrs.String())
	p("control frame write: sessions lost to a 1 s control frame write that timed out (README.md; 0 unless one was cut mid-write): %d, by where it timed out: %s",
		stats.knownIssue.Load(), knownIssue.String())
	p("server errors by kind: %s", serverErrs.String())
	p("lingering close: CloseGracefully calls still waiting more than 2 s after their connection's reader had ended (README.md; should be 0): %d (longest %v)",
		stats.lingeringClose.Load(), time.Duration(stats.maxLinger.Load()).Round(time.Second))
	p("goroutines  start %d, peak %d, end %d (after settling; must be within 3 of start)", base.goroutines, peak.goroutines, end.goroutines)
	p("heap        start  HeapInuse %s, HeapAlloc %s (after GC)", mib(base.heapInuse), mib(base.heapAlloc))
	p("            peak   HeapInuse %s, HeapAlloc %s (sampled every 2 s, no GC forced)", mib(peak.heapInuse), mib(peak.heapAlloc))
	p("            end    HeapInuse %s, HeapAlloc %s (after GC)", mib(end.heapInuse), mib(end.heapAlloc))

	var f []string
	if n := stats.corrupted.Load(); n > 0 {
		f = append(f, fmt.Sprintf("%d corrupted messages", n))
	}
	if n := stats.lost.Load() + stats.disordered.Load() + stats.drainLost.Load(); n > 0 {
		f = append(f, fmt.Sprintf("%d sequence errors (lost, duplicated, reordered, missing at close)", n))
	}
	if n := stats.panics.Load(); n > 0 {
		f = append(f, fmt.Sprintf("%d panics", n))
	}
	if n := stats.unexpected.Load(); n > 0 {
		f = append(f, fmt.Sprintf("%d client sessions with an unexpected error", n))
	}
	if n := stats.srvFailures.Load(); n > 0 {
		f = append(f, fmt.Sprintf("%d server errors that a departing client cannot explain", n))
	}
	if stats.verified.Load() == 0 {
		f = append(f, "no message was echoed")
	}
	return f
}

var (
	dumped sync.Map
	dumps  atomic.Int64
)

// dumpGoroutines writes every goroutine's stack to a file, once per tag
// and six times at most.
func dumpGoroutines(tag string) {
	if _, loaded := dumped.LoadOrStore(tag, true); loaded || dumps.Add(1) > 6 {
		return
	}
	name := fmt.Sprintf("%s/soak-%s-%d.txt", os.TempDir(), tag, os.Getpid())
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return
	}
	defer f.Close()
	// Grouped stacks, each group with its goroutines' labels (role,
	// slot, generation).
	pprof.Lookup("goroutine").WriteTo(f, 1)
	fmt.Fprintf(os.Stderr, "soak: goroutine stacks (%s) written to %s\n", tag, name)
}

// raiseNoFile lifts RLIMIT_NOFILE's soft limit towards want, within the
// hard limit, and returns the soft limit in force.
func raiseNoFile(want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < want {
		rl.Cur = min(want, rl.Max)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}
