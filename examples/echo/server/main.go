// Command server is a WebSocket echo server.
//
// It serves a small browser client at / and echoes every message it
// receives on /echo back to the sender, with the same message type.
//
//	go run ./examples/echo/server -addr localhost:8080
//
// then open http://localhost:8080 in a browser.
package main

import (
	_ "embed"
	"flag"
	"log"
	"net/http"
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

// newMux returns the server's routes, split out from main so that tests can
// serve them with net/http/httptest.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.HandleFunc("/echo", serveEcho)
	return mux
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

	srv := &http.Server{
		Addr:              *addr,
		Handler:           newMux(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Printf("echo server listening on http://%s", *addr)
	log.Fatal(srv.ListenAndServe())
}
