package websocket_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/wsforge/websocket"
)

// What Upgrade does with a WebSocket opened over HTTP/2 (RFC 8441), shown
// on the request net/http's HTTP/2 server hands a handler for a browser's
// extended CONNECT: 200 without Sec-WebSocket-Accept, and then the
// WebSocket's frames in the response body, flushed as they are written.
// (A real server runs with GODEBUG=http2xconnect=1 and serves HTTP/2 over
// TLS; see examples/http2.)
func ExampleUpgrader_http2() {
	body, client := io.Pipe()
	r := httptest.NewRequest(http.MethodConnect, "https://example.com/chat", body)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header.Set(":protocol", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	fmt.Println("IsWebSocketUpgrade:", websocket.IsWebSocketUpgrade(r))

	w := httptest.NewRecorder()
	conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("status:", w.Code, "accept key:", w.Header().Get("Sec-WebSocket-Accept") != "", "flushed:", w.Flushed)

	// The client's frames arrive in the request body: a masked "hi".
	go client.Write([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2})
	_, msg, err := conn.ReadMessage()
	if err != nil {
		fmt.Println(err)
		return
	}
	conn.WriteMessage(websocket.TextMessage, append(msg, '!'))
	fmt.Printf("read %q, wrote % x\n", msg, w.Body.Bytes())
	conn.Close()
	// Output:
	// IsWebSocketUpgrade: true
	// status: 200 accept key: false flushed: true
	// read "hi", wrote 81 03 68 69 21
}
