// Command filewatch shows a file in the browser and updates the page
// whenever the file changes.
//
//	go run ./examples/filewatch                      # watches a file it creates
//	go run ./examples/filewatch -file notes.txt -period 250ms
//
// then open http://localhost:8080 and edit the file. The file is polled
// (modification time and size) every -period; a file that disappears or
// cannot be read is reported on the page, which recovers when the file
// comes back.
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
	"path/filepath"
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
	file := flag.String("file", "", "file to watch (default: a new file in the temporary directory)")
	period := flag.Duration("period", time.Second, "how often to check the file")
	maxSize := flag.Int64("max-size", 1<<20, "show at most this many bytes of the file")
	flag.Parse()

	if *file == "" {
		*file = filepath.Join(os.TempDir(), "wsforge-filewatch.txt")
		if _, err := os.Stat(*file); errors.Is(err, os.ErrNotExist) {
			os.WriteFile(*file, []byte("Edit this file and watch the page change.\n"), 0o644)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *file, *period, *maxSize); err != nil {
		log.Fatal(err)
	}
}

// run serves the page for file on addr until ctx is cancelled, then tells
// every page the server is going away (close code 1001) and returns.
func run(ctx context.Context, addr, file string, period time.Duration, maxSize int64) error {
	if period <= 0 {
		return errors.New("-period must be positive")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	w := NewWatcher(file, maxSize)
	s := NewServer(w, DefaultConfig)
	srv := &http.Server{Handler: newMux(s), ReadHeaderTimeout: 10 * time.Second}
	go w.Run(ctx, period)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()

	// The address as bound, so that -addr 127.0.0.1:0 says which port it got.
	log.Printf("watching %s every %v; listening on http://%s", file, period, ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	// Shutdown does not wait for hijacked connections; Close sends them
	// close 1001 and waits for their handlers.
	s.Close()
	log.Print("bye")
	return nil
}
