// Command chat is a small chat server with rooms over WebSocket.
//
// A page joins a room on /ws?room=NAME&name=USER; every message it sends
// is relayed to everyone in that room, and everyone in a room is told who
// is in it whenever someone joins or leaves. One hub goroutine owns the
// rooms; each connection has a read pump that feeds the hub and a write
// pump that drains a bounded queue, so a client that stops reading is
// dropped instead of holding up the others. With -token, only requests
// carrying that token (?token=...) are upgraded.
//
//	go run ./examples/chat -addr localhost:8080 -token secret
//
// then open http://localhost:8080/?token=secret in two or more browser
// tabs.
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
	"time"
)

//go:embed index.html
var indexHTML []byte

// newMux returns the routes for a room served by hub.
func newMux(hub *Hub) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.Handle("/ws", hub)
	return mux
}

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	token := flag.String("token", "", "if set, the token pages must pass (?token=...) to join")
	flag.Parse()
	cfg := DefaultConfig
	cfg.Token = *token

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	hub := NewHub(cfg)
	hubDone := make(chan struct{})
	go func() {
		hub.Run(ctx)
		close(hubDone)
	}()

	srv := &http.Server{
		Handler:           newMux(hub),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	// The address as bound, so that -addr 127.0.0.1:0 says which port it got.
	log.Printf("chat listening on http://%s", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Shutdown does not wait for hijacked connections; the hub sends
	// them a going-away close, and Wait lets those frames go out.
	<-hubDone
	hub.Wait()
	log.Print("bye")
}
