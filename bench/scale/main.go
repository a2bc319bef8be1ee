// Command scale measures what one server process pays per WebSocket
// connection when it holds many: a server child and a client child, over
// loopback, the server in the Engine or in the goroutine mode (handler
// returned, the lean style of that mode):
//
//	cd bench && go run ./scale -conns 19000 -mode engine
//	cd bench && go run ./scale -conns 19000 -mode goroutine
//
// It prints, per connection: the server's heap+stack (after GC) and RSS
// (both as deltas from before the connections), the kernel's share (the
// Slab delta of /proc/meminfo, both socket ends, so the whole machine's:
// run it alone), the time to accept and upgrade them all, the time from
// the start of a broadcast of one 128-byte message to its last delivery,
// and a final echo on every connection. One process may open at most
// 20,000 files here, so -conns stays below that.
//
// With -procs P above 1 it runs the whole box instead: P server
// processes and P client processes of -conns connections each, every
// client on its own 127.x source address, held for -hold while the
// kernel's counters are sampled (keepalive probes, drops, connections
// ended by timeouts), then a final echo on every connection:
//
//	cd bench && go run ./scale -procs 53 -conns 19000 -mode engine
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	role := flag.String("role", "", "internal: server or client")
	mode := flag.String("mode", "engine", "server mode: engine or goroutine")
	conns := flag.Int("conns", 19000, "connections")
	procs := flag.Int("procs", 1, "server processes (and as many client processes); above 1, the whole-box run")
	hold := flag.Duration("hold", 200*time.Second, "whole-box run: how long to hold the connections before the final echo")
	addr := flag.String("addr", "", "internal: the server's address")
	src := flag.String("src", "", "internal: the client's source addresses, comma-separated")
	flag.Parse()
	var err error
	switch {
	case *role == "server":
		err = runServer(*mode)
	case *role == "client":
		err = runClient(*addr, *src, *conns)
	case *procs > 1:
		err = orchestrateBox(*mode, *procs, *conns, *hold)
	default:
		err = orchestrate(*mode, *conns)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// child is a child process spoken to by lines on stdin and stdout.
type child struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
}

func startChild(args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &child{cmd: cmd, in: bufio.NewWriter(in), out: sc}, nil
}

// ask sends a command line and returns the reply line.
func (c *child) ask(line string) (string, error) {
	if line != "" {
		fmt.Fprintln(c.in, line)
		if err := c.in.Flush(); err != nil {
			return "", err
		}
	}
	if !c.out.Scan() {
		return "", fmt.Errorf("child ended: %v", c.out.Err())
	}
	return c.out.Text(), nil
}

// fields parses "key=value" words.
func fields(line string) map[string]float64 {
	m := map[string]float64{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			f, _ := strconv.ParseFloat(v, 64)
			m[k] = f
		}
	}
	return m
}

func slabKiB() (float64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Slab:") {
			f := strings.Fields(l)
			return strconv.ParseFloat(f[1], 64)
		}
	}
	return 0, fmt.Errorf("no Slab in /proc/meminfo")
}

func orchestrate(mode string, n int) error {
	srv, err := startChild("-role", "server", "-mode", mode)
	if err != nil {
		return err
	}
	defer srv.cmd.Process.Kill()
	addr, err := srv.ask("")
	if err != nil {
		return err
	}
	before, err := srv.ask("stats")
	if err != nil {
		return err
	}
	slab0, err := slabKiB()
	if err != nil {
		return err
	}
	cli, err := startChild("-role", "client", "-addr", addr, "-conns", strconv.Itoa(n))
	if err != nil {
		return err
	}
	defer cli.cmd.Process.Kill()
	connected, err := cli.ask("")
	if err != nil {
		return err
	}
	if _, err := srv.ask(fmt.Sprintf("wait %d", n)); err != nil {
		return err
	}
	after, err := srv.ask("stats")
	if err != nil {
		return err
	}
	slab1, err := slabKiB()
	if err != nil {
		return err
	}
	b, a, cn := fields(before), fields(after), fields(connected)
	perConn := func(k string) float64 { return (a[k] - b[k]) / float64(n) / 1024 }
	fmt.Printf("mode %s, %d connections\n", mode, n)
	fmt.Printf("  server heap+stack: %.2f KiB/conn (heap %.2f, stack %.2f), goroutines %.0f\n",
		perConn("heap")+perConn("stack"), perConn("heap"), perConn("stack"), a["goroutines"])
	fmt.Printf("  server RSS: %.2f KiB/conn; %.2f once freed pages are returned to the OS\n", perConn("rss"), perConn("rssfree"))
	fmt.Printf("  kernel (Slab delta, both socket ends): %.2f KiB/conn\n", (slab1-slab0)/float64(n))
	fmt.Printf("  connect and upgrade all: %.2f s\n", cn["seconds"])

	if _, err := cli.ask("arm"); err != nil {
		return err
	}
	start, err := srv.ask("broadcast")
	if err != nil {
		return err
	}
	last, err := cli.ask("")
	if err != nil {
		return err
	}
	fmt.Printf("  broadcast of 128 B to all: last delivery after %.1f ms (writes done after %.1f ms)\n",
		(fields(last)["last"]-fields(start)["start"])/1e6, (fields(start)["done"]-fields(start)["start"])/1e6)
	echo, err := cli.ask("echo")
	if err != nil {
		return err
	}
	fmt.Printf("  final echo: %.0f of %d answered in %.2f s\n", fields(echo)["ok"], n, fields(echo)["seconds"])
	srv.ask("quit")
	cli.ask("quit")
	return nil
}

func nowNanos() int64 { return time.Now().UnixNano() }
