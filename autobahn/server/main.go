// Command server is the echo server that the Autobahn|Testsuite drives in
// its fuzzingclient mode:
//
//	go run ./autobahn/server -addr 127.0.0.1:9001
//	go run ./autobahn/server -addr 127.0.0.1:9001 -engine
//
// It answers on every path and echoes each message back with the same type:
// by default on a goroutine per connection, streaming each message from
// NextReader into NextWriter; with -engine from a websocket.Engine's event
// loops, each whole message written back from OnMessage.
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

// engineEcho is the EventHandler of the -engine mode: it echoes every
// message, and nothing else, for the same reason as echoHandler.
type engineEcho struct{}

func (engineEcho) OnOpen(*websocket.Conn) {}

func (engineEcho) OnMessage(c *websocket.Conn, messageType int, data []byte) {
	c.WriteMessage(messageType, data)
}

func (engineEcho) OnClose(*websocket.Conn, error) {}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "address to listen on")
	useEngine := flag.Bool("engine", false, "serve from a websocket.Engine's event loops")
	flag.Parse()
	handler := http.HandlerFunc(echoHandler)
	if *useEngine {
		engine, err := websocket.NewEngine(websocket.EngineOptions{})
		if err != nil {
			log.Fatal(err)
		}
		defer engine.Close()
		handler = func(w http.ResponseWriter, r *http.Request) {
			engine.Upgrade(&upgrader, w, r, nil, engineEcho{})
		}
	}
	log.Printf("autobahn echo server listening on %s (engine: %v)", *addr, *useEngine)
	log.Fatal(http.ListenAndServe(*addr, handler))
}
