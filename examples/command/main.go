// Command command runs a program for each browser page that connects and
// joins the page to it over a WebSocket: what the page sends goes to the
// program's standard input, and what the program writes to standard output
// and standard error comes back to the page a line at a time.
//
//	go run ./examples/command                     # runs cat
//	go run ./examples/command -cmd "bc -q"        # a calculator
//
// then open http://localhost:8080. Closing the page ends the program:
// its standard input is closed, then it gets SIGINT, SIGTERM and SIGKILL,
// each after a grace period, until it exits; it is always reaped.
//
// Anyone who can reach the address can run the program, so keep the
// default loopback address unless the program is harmless.
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
	"strings"
	"syscall"
	"time"
)

//go:embed index.html
var indexHTML []byte

// newMux returns the routes for s, split out from main so that tests can
// serve them with net/http/httptest.
func newMux(s *Server) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.Handle("/ws", s)
	return mux
}

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	command := flag.String("cmd", "cat", "program to run for each page, with its arguments (split on spaces)")
	readLimit := flag.Int64("read-limit", DefaultConfig.ReadLimit, "largest message accepted from a page, in bytes")
	flag.Parse()

	cfg := DefaultConfig
	cfg.Command = strings.Fields(*command)
	cfg.ReadLimit = *readLimit
	if len(cfg.Command) == 0 {
		log.Fatal("-cmd is empty")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, cfg); err != nil {
		log.Fatal(err)
	}
}

// run serves cfg on addr until ctx is cancelled, then tells every page the
// server is going away (close code 1001), ends every program and returns.
func run(ctx context.Context, addr string, cfg Config) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newMux(s), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()

	// The address as bound, so that -addr 127.0.0.1:0 says which port it got.
	log.Printf("command %q listening on http://%s", cfg.Command, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Shutdown does not wait for hijacked connections; Close ends them
	// and their programs and waits until every program is reaped.
	s.Close()
	log.Print("bye")
	return nil
}
