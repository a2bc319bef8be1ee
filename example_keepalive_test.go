package websocket_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/wsforge/websocket"
)

// A server that pings its clients every 20 ms and drops a client from
// which nothing has arrived for 20+50 ms. (Real intervals are tens of
// seconds.) Here the client does not read, so it answers no ping.
func ExampleKeepAlive() {
	upgrader := websocket.Upgrader{
		KeepAlive: websocket.KeepAlive{Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond},
	}
	readErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	err = <-readErr
	fmt.Println(err)
	fmt.Println(errors.Is(err, websocket.ErrKeepAliveTimeout))
	// Output:
	// websocket: keepalive timeout: the peer stopped answering
	// true
}
