// Package echo holds the echo loop shared by the Autobahn server and client.
package echo

import (
	"io"

	"github.com/wsforge/websocket"
)

// Stream echoes every message on conn by streaming it from NextReader into
// a NextWriter of the same type instead of buffering it, so fragmented
// reads and writes are both exercised and an echo may start before its
// message has fully arrived. It returns the error that ended the
// connection; what goes on the wire in answer to a bad frame or a close is
// left entirely to the library, which is what the suite grades.
func Stream(conn *websocket.Conn) error {
	for {
		mt, r, err := conn.NextReader()
		if err != nil {
			return err
		}
		w, err := conn.NextWriter(mt)
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
