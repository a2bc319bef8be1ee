package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// srcPerClient is how many source addresses each client connects from.
const srcPerClient = 4

// orchestrateBox is the whole-box run: procs servers, procs clients of n
// connections each.
func orchestrateBox(mode string, procs, n int, hold time.Duration) error {
	servers := make([]*child, procs)
	addrs := make([]string, procs)
	defer func() {
		for _, c := range servers {
			if c != nil {
				c.cmd.Process.Kill()
			}
		}
	}()
	for i := range servers {
		c, err := startChild("-role", "server", "-mode", mode)
		if err != nil {
			return err
		}
		servers[i] = c
		if addrs[i], err = c.ask(""); err != nil {
			return err
		}
	}
	before, err := askAll(servers, "stats")
	if err != nil {
		return err
	}
	slab0, err := slabKiB()
	if err != nil {
		return err
	}
	k0 := kernelCounters()

	t0 := time.Now()
	clients := make([]*child, procs)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.cmd.Process.Kill()
			}
		}
	}()
	for i := range clients {
		// Loopback sources of its own for each client, 127.1.i.1 to
		// 127.1.i.4 (127.2.… past 250 clients), so that no source and
		// destination pair needs more than a third of the ephemeral
		// ports: Linux tries even ports first, and once they are all
		// taken for a pair every connect walks them all.
		srcs := make([]string, srcPerClient)
		for j := range srcs {
			srcs[j] = fmt.Sprintf("127.%d.%d.%d", 1+i/250, i%250, j+1)
		}
		c, err := startChild("-role", "client", "-addr", addrs[i], "-src", strings.Join(srcs, ","), "-conns", strconv.Itoa(n))
		if err != nil {
			return err
		}
		clients[i] = c
	}
	if _, err := askAll(clients, ""); err != nil {
		return err
	}
	connectTime := time.Since(t0)
	if _, err := askAll(servers, fmt.Sprintf("wait %d", n)); err != nil {
		return err
	}
	after, err := askAll(servers, "stats")
	if err != nil {
		return err
	}
	slab1, err := slabKiB()
	if err != nil {
		return err
	}
	cstats, err := askAll(clients, "stats")
	if err != nil {
		return err
	}
	total := procs * n
	var heap, stack, rss, rssfree, crss, scpu, ccpu float64
	for i := range servers {
		b, a := fields(before[i]), fields(after[i])
		heap += a["heap"] - b["heap"]
		stack += a["stack"] - b["stack"]
		rss += a["rss"] - b["rss"]
		rssfree += a["rssfree"] - b["rssfree"]
		scpu += a["cpu"] - b["cpu"]
		crss += fields(cstats[i])["rss"]
		ccpu += fields(cstats[i])["cpu"]
	}
	per := func(v float64) float64 { return v / float64(total) / 1024 }
	fmt.Printf("mode %s, %d server processes x %d = %d connections\n", mode, procs, n, total)
	fmt.Printf("  connected and upgraded all in %.1f s (CPU: servers %.1f s, clients %.1f s)\n", connectTime.Seconds(), scpu, ccpu)
	fmt.Printf("  servers: heap+stack %.2f KiB/conn (heap %.2f, stack %.2f), RSS %.2f KiB/conn (%.2f GiB in all; %.2f KiB/conn once freed pages are returned)\n",
		per(heap+stack), per(heap), per(stack), per(rss), rss/(1<<30), per(rssfree))
	fmt.Printf("  clients: RSS %.2f KiB/conn\n", per(crss))
	fmt.Printf("  kernel (Slab delta, both socket ends): %.2f KiB/conn, %.2f GiB in all\n",
		(slab1-slab0)/float64(total), (slab1-slab0)/(1<<20))

	fmt.Printf("  holding for %s; kernel counters since before the clients:\n", hold)
	end := time.Now().Add(hold)
	for time.Now().Before(end) {
		time.Sleep(min(20*time.Second, time.Until(end)))
		k := kernelCounters()
		fmt.Printf("    %4.0f s: %s\n", time.Since(t0).Seconds(), k.since(k0))
	}

	t1 := time.Now()
	echoes, err := askAll(clients, "echo")
	if err != nil {
		return err
	}
	var ok, pongs, partial float64
	for _, e := range echoes {
		f := fields(e)
		ok, pongs, partial = ok+f["ok"], pongs+f["pongs"], partial+f["partial"]
	}
	fmt.Printf("  final echo: %.0f of %d answered in %.1f s\n", ok, total, time.Since(t1).Seconds())
	fmt.Printf("  pings the clients answered while held: %.0f (reads cut inside a frame: %.0f)\n", pongs, partial)
	askAll(servers, "quit")
	askAll(clients, "quit")
	return nil
}

// askAll asks every child at once and returns their replies in order.
func askAll(cs []*child, line string) ([]string, error) {
	replies := make([]string, len(cs))
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = c.ask(line)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("child %d: %w", i, err)
		}
	}
	return replies, nil
}

// counters are the kernel's figures that show a probe storm: probes sent,
// connections ended by unanswered probes or retransmissions, packets
// dropped at loopback's input queue or pruned from full receive queues,
// and the TCP sockets in use.
type counters struct {
	probes, aborts, timeouts, dropped, pruned, inuse float64
}

func kernelCounters() counters {
	ext := netstat("TcpExt")
	return counters{
		probes:   ext["TCPKeepAlive"],
		aborts:   ext["TCPAbortOnTimeout"],
		timeouts: ext["TCPTimeouts"],
		pruned:   ext["RcvPruned"],
		dropped:  softnetDropped(),
		inuse:    sockstatInuse(),
	}
}

func (k counters) since(k0 counters) string {
	return fmt.Sprintf("keepalive probes %.0f, aborted on timeout %.0f, timeouts %.0f, backlog drops %.0f, pruned %.0f; TCP sockets in use %.0f",
		k.probes-k0.probes, k.aborts-k0.aborts, k.timeouts-k0.timeouts, k.dropped-k0.dropped, k.pruned-k0.pruned, k.inuse)
}

// netstat reads one section of /proc/net/netstat: a line of names, then
// a line of values.
func netstat(section string) map[string]float64 {
	m := map[string]float64{}
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return m
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != section+":" || len(values) != len(names) {
			continue
		}
		for j := 1; j < len(names); j++ {
			m[names[j]], _ = strconv.ParseFloat(values[j], 64)
		}
		break
	}
	return m
}

// softnetDropped sums the second column of /proc/net/softnet_stat (hex,
// one line per CPU): packets dropped because the input queue was full.
func softnetDropped() float64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var sum float64
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			sum += float64(v)
		}
	}
	return sum
}

// sockstatInuse is the "TCP: inuse" figure of /proc/net/sockstat.
func sockstatInuse() float64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "TCP:") {
			f := strings.Fields(l)
			for i := 1; i+1 < len(f); i += 2 {
				if f[i] == "inuse" {
					v, _ := strconv.ParseFloat(f[i+1], 64)
					return v
				}
			}
		}
	}
	return 0
}
