package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	wsforge "github.com/wsforge/websocket"
)

// registry holds the server's connections for the broadcast.
type registry struct {
	mu    sync.Mutex
	conns []*wsforge.Conn
	added chan struct{}
}

func (r *registry) add(c *wsforge.Conn) {
	r.mu.Lock()
	r.conns = append(r.conns, c)
	r.mu.Unlock()
	r.added <- struct{}{}
}

// echoHandler is the Engine's EventHandler: it echoes from the loop.
type echoHandler struct{ r *registry }

func (h echoHandler) OnOpen(c *wsforge.Conn) { h.r.add(c) }
func (h echoHandler) OnMessage(c *wsforge.Conn, mt int, p []byte) {
	c.WriteMessage(mt, p)
}
func (h echoHandler) OnClose(*wsforge.Conn, error) {}

func runServer(mode string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	reg := &registry{added: make(chan struct{}, 1<<16)}
	up := &wsforge.Upgrader{}
	switch mode {
	case "engine":
		e, err := wsforge.NewEngine(wsforge.EngineOptions{})
		if err != nil {
			return err
		}
		go e.Serve(ln, up, echoHandler{reg})
	case "goroutine":
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			reg.add(c)
			go func() {
				defer c.Close()
				for {
					mt, p, err := c.ReadMessage()
					if err != nil {
						return
					}
					c.WriteMessage(mt, p)
				}
			}()
		}))
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Println(ln.Addr().String())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "stats":
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			rss := rssBytes()
			// The same after the runtime returns the pages it holds
			// free (what the scavenger does over the next minutes):
			// the handshakes' garbage, freed but still resident.
			debug.FreeOSMemory()
			fmt.Printf("heap=%d stack=%d rss=%d rssfree=%d goroutines=%d cpu=%.3f\n", ms.HeapInuse, ms.StackInuse, rss, rssBytes(), runtime.NumGoroutine(), cpuSeconds())
		case "wait":
			n, _ := strconv.Atoi(cmd[1])
			for i := 0; i < n; i++ {
				<-reg.added
			}
			fmt.Println("ok")
		case "broadcast":
			pm, err := wsforge.NewPreparedMessage(wsforge.BinaryMessage, make([]byte, 128))
			if err != nil {
				return err
			}
			reg.mu.Lock()
			conns := reg.conns
			reg.mu.Unlock()
			start := nowNanos()
			for _, c := range conns {
				c.WritePreparedMessage(pm)
			}
			fmt.Printf("start=%d done=%d\n", start, nowNanos())
		case "quit":
			fmt.Println("bye")
			return nil
		}
	}
	return in.Err()
}

// cpuSeconds is the CPU time the process has used, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// rssBytes is the process's resident set, from /proc/self/status.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
