package websocket

import (
	"io"
	"time"
)

// The test kit: what the package's tests share.

// testWait bounds every wait of the tests for an event (a read, a write,
// a goroutine to end), so that a broken library fails a test instead of
// hanging the suite. It is a failure guard, never a delay: nothing waits
// for it to pass, and it is long enough to hold on a loaded machine under
// the race detector.
const testWait = 20 * time.Second

// sampleKey is the Sec-WebSocket-Key of RFC 6455 section 1.3's example,
// and sampleAccept the Sec-WebSocket-Accept that answers it.
const (
	sampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	sampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// echoWhole echoes every data message with ReadMessage and WriteMessage
// until a read fails, and returns that read's error. A failed write does
// not stop it: the tests look at how the read ended (the peer's close, a
// protocol error, the peer gone), which follows.
func echoWhole(c *Conn) error {
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		c.WriteMessage(mt, p)
	}
}

// echoStreamed echoes every data message by streaming it from NextReader
// into NextWriter (io.Copy, so the writer's ReadFrom), as autobahn/server
// and autobahn/client do, so that fragmentation is exercised both ways. It
// returns the error that ended the loop.
func echoStreamed(c *Conn) error {
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return err
		}
		w, err := c.NextWriter(mt)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
}

// startEcho runs echoWhole on c in a goroutine and returns a channel that
// carries its result.
func startEcho(c *Conn) <-chan error {
	done := make(chan error, 1)
	go func() { done <- echoWhole(c) }()
	return done
}
