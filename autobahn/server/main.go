// Command server is the echo server that the Autobahn|Testsuite drives in
// its fuzzingclient mode:
//
//	go run ./autobahn/server -addr 127.0.0.1:9001
//
// It answers on every path and echoes each message back with the same type.
// On purpose it does nothing else: no UTF-8 checks, no close handling, no
// limits. Every behaviour the suite grades must come from the library, so
// the server must not paper over anything the library gets wrong.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/wsforge/websocket"
	"github.com/wsforge/websocket/autobahn/internal/echo"
)

var upgrader = websocket.Upgrader{
	// The suite connects with an Origin of its own choosing.
	CheckOrigin: func(*http.Request) bool { return true },
	// Compression with the default options, so that the suite's
	// permessage-deflate cases (12.* and 13.*) negotiate it.
	EnableCompression: true,
}

// echoHandler upgrades the request and echoes messages until the connection
// fails or is closed by the peer.
func echoHandler(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already written an HTTP error response.
		return
	}
	defer conn.Close()
	echo.Stream(conn)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "address to listen on")
	flag.Parse()
	log.Printf("autobahn echo server listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(echoHandler)))
}
