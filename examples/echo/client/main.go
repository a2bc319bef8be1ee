// Command client talks to the echo server in ../server.
//
// It sends the current time once a second and logs whatever comes back.
// Ctrl-C closes the connection with a proper close handshake.
//
//	go run ./examples/echo/server &
//	go run ./examples/echo/client -addr localhost:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/wsforge/websocket"
)

// Timeouts for the closing handshake; variables so that tests may shorten
// them.
var (
	// writeWait bounds how long sending the close frame may take.
	writeWait = time.Second
	// closeWait is how long to wait for the server's answering close frame
	// before giving up and dropping the connection anyway.
	closeWait = time.Second
)

func main() {
	addr := flag.String("addr", "localhost:8080", "echo server address (host:port)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := run(ctx, *addr, time.Second, log.Printf); err != nil {
		log.Fatal(err)
	}
}

// run connects to ws://addr/echo and sends a timestamp every tick, logging
// each echoed message through logf, until ctx is cancelled or the
// connection fails. On cancellation it closes the connection cleanly and
// returns nil; a connection ended by anything but that returns an error.
func run(ctx context.Context, addr string, tick time.Duration, logf func(string, ...any)) error {
	u := url.URL{Scheme: "ws", Host: addr, Path: "/echo"}
	logf("connecting to %s", u.String())

	conn, _, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		return fmt.Errorf("dial %s: %w", u.String(), err)
	}

	// The reader goroutine is the only one calling ReadMessage. When it
	// returns, readErr says why; done publishes readErr to this goroutine.
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				readErr = err
				return
			}
			logf("recv: %s", msg)
		}
	}()
	// Closing the network connection also ends a reader still blocked in
	// ReadMessage, so waiting for it here cannot hang; it keeps run from
	// leaving a goroutine behind.
	defer func() {
		conn.Close()
		<-done
	}()

	ticker := time.NewTicker(tick)
	defer ticker.Stop()

	for {
		select {
		case <-done:
			return fmt.Errorf("connection ended: %w", readErr)

		case t := <-ticker.C:
			// This goroutine is the only writer of data messages.
			if err := conn.WriteMessage(websocket.TextMessage, []byte(t.Format(time.RFC3339Nano))); err != nil {
				return fmt.Errorf("write: %w", err)
			}

		case <-ctx.Done():
			logf("interrupted, closing")
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait)); err != nil {
				return fmt.Errorf("send close: %w", err)
			}
			// The server answers our close with its own; the reader
			// sees it as a *CloseError and ends.
			timer := time.NewTimer(closeWait)
			defer timer.Stop()
			select {
			case <-done:
				var ce *websocket.CloseError
				if !errors.As(readErr, &ce) {
					logf("connection ended without a close frame: %v", readErr)
				}
			case <-timer.C:
				logf("no close frame from server within %v", closeWait)
			}
			return nil
		}
	}
}
