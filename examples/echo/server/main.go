// Command server is a WebSocket echo server.
//
// It serves a small browser client at / and echoes every message it
// receives on /echo back to the sender, with the same message type.
//
//	go run ./examples/echo/server -addr localhost:8080
//
// then open http://localhost:8080 in a browser. Ctrl-C tells every open
// page the server is going away (close code 1001).
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/wsforge/websocket"
)

//go:embed index.html
var indexHTML []byte

// The zero Upgrader is fine here: default buffer sizes, and the default
// origin check, which accepts the page served by this very server and
// refuses cross-origin pages that would otherwise ride on the visitor's
// browser.
var upgrader websocket.Upgrader

// live holds the open connections, so that Ctrl-C can tell each one the
// server is going away.
var live = connSet{conns: make(map[*websocket.Conn]struct{})}

// newMux returns the server's routes, split out from main so that tests can
// serve them with net/http/httptest.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.HandleFunc("/echo", serveEcho)
	return mux
}

// connSet is a set of connections and a count of the handlers serving
// them.
type connSet struct {
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	handlers sync.WaitGroup
}

func (s *connSet) add(c *websocket.Conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	s.mu.Unlock()
}

func (s *connSet) remove(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// goingAway sends every connection close 1001 and waits a bounded time
// for their handlers, which return when the peer answers.
func (s *connSet) goingAway(wait time.Duration) {
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	deadline := time.Now().Add(wait)
	s.mu.Lock()
	for c := range s.conns {
		c.WriteControl(websocket.CloseMessage, msg, deadline)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(indexHTML)
}

// serveEcho upgrades the request and sends each message back until the
// connection ends. A close frame from the client is answered by the Conn's
// default close handler, after which ReadMessage returns a *CloseError.
func serveEcho(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		log.Printf("upgrade %s: %v", r.RemoteAddr, err)
		return
	}
	defer conn.Close()
	live.add(conn)
	defer live.remove(conn)

	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			// A close with 1000 or 1001 is the normal way for a page to
			// leave; anything else is worth a line in the log.
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				log.Printf("read %s: %v", r.RemoteAddr, err)
			}
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			log.Printf("write %s: %v", r.RemoteAddr, err)
			return
		}
	}
}

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           newMux(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	// The address as bound, so that -addr 127.0.0.1:0 says which port it got.
	log.Printf("echo server listening on http://%s", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Shutdown does not wait for hijacked connections.
	live.goingAway(5 * time.Second)
	log.Print("bye")
}
