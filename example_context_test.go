package websocket_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wsforge/websocket"
)

// A read that gives up waiting leaves the connection usable: the context
// ends while no message has begun to arrive, and the next read gets the
// next message.
func ExampleConn_ReadMessageContext() {
	upgrader := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for { // echo
			typ, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			conn.WriteMessage(typ, msg)
		}
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// The server says nothing until spoken to.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, _, err = conn.ReadMessageContext(ctx)
	cancel()
	var ce *websocket.ContextError
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, context.DeadlineExceeded), "failed:", ce.Failed)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.WriteMessageContext(ctx, websocket.TextMessage, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	_, msg, err := conn.ReadMessageContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(msg))
	fmt.Println(conn.CloseContext(ctx, websocket.CloseNormalClosure, ""))
	// Output:
	// true failed: false
	// hello
	// <nil>
}
