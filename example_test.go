package websocket_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wsforge/websocket"
)

// echoServer serves an echo endpoint on a loopback test server, as a
// program would with http.Handle and http.ListenAndServe, and returns its
// ws:// URL.
func echoServer(upgrader *websocket.Upgrader) (url string, stop func()) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered the client with an HTTP error
		}
		defer conn.Close()
		for {
			messageType, p, err := conn.ReadMessage()
			if err != nil {
				return // the client closed, or broke the protocol
			}
			if err := conn.WriteMessage(messageType, p); err != nil {
				return
			}
		}
	}))
	return "ws" + strings.TrimPrefix(srv.URL, "http"), srv.Close
}

// An echo server and a client that talks to it.
func ExampleUpgrader() {
	url, stop := echoServer(&websocket.Upgrader{})
	defer stop()

	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	_, p, err := conn.ReadMessage()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", p)
	// Output: hello
}

// A client with a handshake timeout, a subprotocol offer and a header of
// its own; the response tells what the server agreed to.
func ExampleDialer() {
	upgrader := websocket.Upgrader{Subprotocols: []string{"chat.v2", "chat.v1"}}
	url, stop := echoServer(&upgrader)
	defer stop()

	dialer := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     []string{"chat.v1", "chat.v2"},
	}
	conn, resp, err := dialer.Dial(url, http.Header{"Origin": {"http://" + strings.TrimPrefix(url, "ws://")}})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println(resp.StatusCode, conn.Subprotocol())
	// Output: 101 chat.v2
}

// permessage-deflate on both sides, with the server keeping no history
// between messages and limiting the client's window; Extensions says what
// was negotiated.
func ExampleCompressionOptions() {
	upgrader := websocket.Upgrader{
		EnableCompression: true,
		Compression: websocket.CompressionOptions{
			ServerNoContextTakeover: true,
			ClientMaxWindowBits:     12,
		},
	}
	url, stop := echoServer(&upgrader)
	defer stop()

	dialer := websocket.Dialer{EnableCompression: true}
	conn, _, err := dialer.Dial(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println(conn.Extensions())

	msg := strings.Repeat(`{"event":"tick","value":42} `, 100)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		log.Fatal(err)
	}
	_, p, err := conn.ReadMessage()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(p) == msg)
	// Output:
	// permessage-deflate; server_no_context_takeover; client_max_window_bits=12
	// true
}

// One message sent to many connections: a PreparedMessage builds the
// frame once (compressed once, for connections that compress alike).
func ExamplePreparedMessage() {
	url, stop := echoServer(&websocket.Upgrader{})
	defer stop()

	var conns []*websocket.Conn
	for i := 0; i < 3; i++ {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte("news for everyone"))
	if err != nil {
		log.Fatal(err)
	}
	for _, conn := range conns {
		if err := conn.WritePreparedMessage(pm); err != nil {
			log.Fatal(err)
		}
	}
	for i, conn := range conns {
		_, p, err := conn.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", i, p)
	}
	// Output:
	// 0: news for everyone
	// 1: news for everyone
	// 2: news for everyone
}

// Ending a connection with the closing handshake: a close frame with a
// code and a reason, a bounded wait for the peer's answer, then TCP closed.
func ExampleConn_CloseGracefully() {
	url, stop := echoServer(&websocket.Upgrader{})
	defer stop()

	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = conn.CloseGracefully(websocket.CloseNormalClosure, "done", 5*time.Second)
	fmt.Println("closed:", err)

	// The Conn now refuses to write.
	fmt.Println(conn.WriteMessage(websocket.TextMessage, []byte("late")) != nil)
	// Output:
	// closed: <nil>
	// true
}

// echoHandler is an EventHandler that echoes every message.
type echoHandler struct{ closed chan error }

func (h *echoHandler) OnOpen(c *websocket.Conn) {}

func (h *echoHandler) OnMessage(c *websocket.Conn, messageType int, data []byte) {
	// data is only valid during the call; WriteMessage is done with it
	// when it returns.
	c.WriteMessage(messageType, data)
}

func (h *echoHandler) OnClose(c *websocket.Conn, err error) { h.closed <- err }

// An echo server on an Engine: the HTTP handler returns as soon as the
// connection is handed over, and no goroutine stays behind for it.
func ExampleEngine() {
	engine, err := websocket.NewEngine(websocket.EngineOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	handler := &echoHandler{closed: make(chan error, 1)}
	upgrader := &websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		engine.Upgrade(upgrader, w, r, nil, handler)
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte("hello, engine"))
	_, p, err := conn.ReadMessage()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(p))
	conn.CloseGracefully(websocket.CloseNormalClosure, "", time.Second)
	fmt.Println(<-handler.closed)
	// Output:
	// hello, engine
	// websocket: close 1000 (normal)
}

// A line protocol written for TCP, tunnelled through a WebSocket: the
// server answers each line in upper case, both sides through NetConn.
func ExampleNetConn() {
	upgrader := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		// The handler serves the whole connection, so r.Context() lives
		// as long as it must.
		conn := websocket.NetConn(r.Context(), c, websocket.BinaryMessage)
		defer conn.Close()
		lines := bufio.NewScanner(conn)
		for lines.Scan() {
			fmt.Fprintln(conn, strings.ToUpper(lines.Text()))
		}
	}))
	defer srv.Close()

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	conn := websocket.NetConn(context.Background(), c, websocket.BinaryMessage)
	defer conn.Close()
	replies := bufio.NewReader(conn)
	for _, line := range []string{"hello", "tunnel"} {
		fmt.Fprintln(conn, line)
		reply, err := replies.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(reply)
	}
	// Output:
	// HELLO
	// TUNNEL
}
