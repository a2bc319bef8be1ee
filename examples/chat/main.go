// Command chat is a small chat room over WebSocket.
//
// Every message a browser sends on /ws is relayed to everyone in the room.
// One hub goroutine owns the room; each connection has a read pump that
// feeds the hub and a write pump that drains a bounded queue, so a client
// that stops reading is dropped instead of holding up the others.
//
//	go run ./examples/chat -addr localhost:8080
//
// then open http://localhost:8080 in two or more browser tabs.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"log"
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
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	hub := NewHub(DefaultConfig)
	hubDone := make(chan struct{})
	go func() {
		hub.Run(ctx)
		close(hubDone)
	}()

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newMux(hub),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()

	log.Printf("chat listening on http://%s", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Shutdown does not wait for hijacked connections; the hub sends
	// them a going-away close, and Wait lets those frames go out.
	<-hubDone
	hub.Wait()
	log.Print("bye")
}
