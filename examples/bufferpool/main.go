// Command bufferpool measures what a WriteBufferPool saves on a server
// holding many connections.
//
//	go run ./examples/bufferpool                 # 10,000 connections
//	go run ./examples/bufferpool -conns 2000
//
// For each of two servers, one without a WriteBufferPool and one with a
// sync.Pool, it opens -conns loopback connections from a child process
// (so that the server's heap holds only the server's side, and each
// process stays under its open-file limit), sends one message on each and
// waits for its echo, then prints the server's heap and stack per
// connection while all of them are open.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/wsforge/websocket"
)

// clientEnv, set in a child's environment to "ADDR N", makes the program
// the client side of a measurement instead of the server side.
const clientEnv = "WSFORGE_BUFFERPOOL_CLIENT"

// messageSize is the size of each connection's one message: a small JSON
// document, say.
const messageSize = 512

func main() {
	if spec := os.Getenv(clientEnv); spec != "" {
		if err := clientMain(spec); err != nil {
			log.Fatal(err)
		}
		return
	}
	conns := flag.Int("conns", 10000, "connections per measurement (each uses an open file in this process and one in its child)")
	addr := flag.String("addr", "127.0.0.1:0", "address the server listens on (a 127.0.0.x address keeps it local)")
	flag.Parse()
	if *conns < 1 {
		log.Fatal("-conns must be at least 1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if mode := os.Getenv(modeEnv); mode != "" {
		// One measurement, in a process of its own: freed goroutine
		// stacks stay counted as in use, so a second measurement in the
		// same process would start from a baseline the first inflated.
		pool, ok := pools[mode]
		if !ok {
			log.Fatalf("%s=%q: no such mode", modeEnv, mode)
		}
		r, err := measure(ctx, *addr, *conns, pool, os.Args[0])
		if err != nil {
			log.Fatal(err)
		}
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "server\tconnections\theap/conn\tstack/conn\ttotal/conn\t\n")
	for _, mode := range modes {
		// Not CommandContext: Ctrl-C reaches the child too, and it must
		// live to close its connections with 1001 rather than be killed.
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), modeEnv+"="+mode)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if ctx.Err() != nil {
			log.Fatal("interrupted")
		}
		if err != nil {
			log.Fatalf("%s: %v", mode, err)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			log.Fatalf("%s: %v", mode, err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", mode, r.Conns,
			kib(r.Heap, r.Conns), kib(r.Stack, r.Conns), kib(r.Heap+r.Stack, r.Conns))
	}
	tw.Flush()
}

// modeEnv, set in a child's environment to one of modes, makes the
// program measure that server alone and print the result as JSON.
const modeEnv = "WSFORGE_BUFFERPOOL_MODE"

var modes = []string{"no WriteBufferPool", "WriteBufferPool: &sync.Pool{}"}

var pools = map[string]websocket.BufferPool{
	modes[0]: nil,
	modes[1]: &sync.Pool{},
}

func kib(bytes int64, conns int) string {
	return fmt.Sprintf("%.2f KiB", float64(bytes)/float64(conns)/1024)
}

// result is what one measurement found: the growth of the server's live
// heap and of its goroutine stacks with Conns connections open.
type result struct {
	Conns       int
	Heap, Stack int64
	// GoingAway counts the connections the child saw closed with 1001
	// when the server shut down.
	GoingAway int
}

// measure starts a server with pool as its WriteBufferPool, has the
// program at self (run as a child, see clientEnv) open n connections to
// it, and measures the server's memory once each has exchanged a message.
// Then, or as soon as ctx is cancelled, the server closes every
// connection with 1001 and shuts down.
func measure(ctx context.Context, addr string, n int, pool websocket.BufferPool, self string) (result, error) {
	before := memNow()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return result{}, err
	}
	s := newServer(pool)
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		srv.Close()
		s.shutdown()
	}()

	child := exec.Command(self)
	child.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", clientEnv, ln.Addr(), n))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := child.Start(); err != nil {
		return result{}, err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The child is done after its last line; Wait closes the pipe only
	// after that.
	defer child.Wait()

	var r result
	select {
	case line, ok := <-lines:
		if !ok || line != "ready" {
			return r, fmt.Errorf("client: %q instead of ready", line)
		}
		after := memNow()
		r.Conns = s.count()
		r.Heap, r.Stack = after.heap-before.heap, after.stack-before.stack
	case <-ctx.Done():
	}
	// The page-equivalent of Ctrl-C: every connection is told the server
	// is going away, and the child reports how many heard it.
	srv.Close()
	s.shutdown()
	for line := range lines {
		if v, ok := strings.CutPrefix(line, "going away "); ok {
			r.GoingAway, _ = strconv.Atoi(v)
		}
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}

type mem struct{ heap, stack int64 }

// memNow collects garbage twice, so that nothing freed by the first pass
// still counts, and returns live heap bytes and goroutine stack bytes.
func memNow() mem {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mem{int64(ms.HeapAlloc), int64(ms.StackInuse)}
}

// server echoes messages, gorilla's echo style: the handler goroutine
// blocks in ReadMessage for the life of the connection.
type server struct {
	upgrader websocket.Upgrader

	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	closing  bool
	handlers sync.WaitGroup
}

func newServer(pool websocket.BufferPool) *server {
	return &server{
		upgrader: websocket.Upgrader{WriteBufferPool: pool},
		conns:    make(map[*websocket.Conn]struct{}),
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	s.mu.Lock()
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			return
		}
	}
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// shutdown sends every connection close 1001 and waits for the handlers,
// which return once the peer answers (or after the close times out).
func (s *server) shutdown() {
	s.mu.Lock()
	s.closing = true
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range conns {
		if err := c.WriteControl(websocket.CloseMessage, msg, deadline); err != nil {
			c.Close()
		}
	}
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// A peer that never answers: end its connection here.
		for _, c := range conns {
			c.Close()
		}
		<-done
	}
}

// clientMain is the child: it opens the connections spec ("ADDR N")
// asks for, exchanges one message on each, prints "ready", then waits for
// the server to close them and prints how many it closed with 1001.
func clientMain(spec string) error {
	// Ctrl-C reaches the child too; the parent's shutdown is what ends it.
	signal.Ignore(os.Interrupt)
	addr, nstr, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(nstr)
	if err != nil {
		return fmt.Errorf("%s=%q: %v", clientEnv, spec, err)
	}
	conns := make([]*websocket.Conn, n)
	const parallel = 32
	errs := make(chan error, parallel)
	next := make(chan int)
	go func() {
		for i := range conns {
			next <- i
		}
		close(next)
	}()
	msg := []byte(strings.Repeat("x", messageSize))
	for range parallel {
		go func() {
			var err error
			for i := range next {
				if err == nil {
					conns[i], err = exchange("ws://"+addr+"/", msg)
				}
			}
			errs <- err
		}()
	}
	for range parallel {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	fmt.Println("ready")

	var wg sync.WaitGroup
	var mu sync.Mutex
	goingAway := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_, _, err := c.ReadMessage()
			if websocket.IsCloseError(err, websocket.CloseGoingAway) {
				mu.Lock()
				goingAway++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("going away %d\n", goingAway)
	return nil
}

// exchange dials url, sends msg and waits for its echo.
func exchange(url string, msg []byte) (*websocket.Conn, error) {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
		c.Close()
		return nil, err
	}
	_, echo, err := c.ReadMessage()
	if err == nil && string(echo) != string(msg) {
		err = errors.New("echo differs from the message")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadDeadline(time.Time{})
	return c, nil
}
