package websocket

import (
	"encoding/json"
	"io"
)

// WriteJSON writes the JSON encoding of v as a message.
//
// Deprecated: Use c.WriteJSON instead.
func WriteJSON(c *Conn, v interface{}) error { return c.WriteJSON(v) }

// WriteJSON writes the JSON encoding of v as a text message, followed by a
// newline as encoding/json's Encoder writes it. It is safe to call
// concurrently with the other write methods.
//
// See the documentation for encoding/json Marshal for details about the
// conversion of Go values to JSON.
func (c *Conn) WriteJSON(v interface{}) error {
	// The writer stays busy from start to end: a whole message, which
	// no other write may close as it would an idle writer.
	r, err := c.nextWriter(TextMessage, writerBusy)
	if err != nil {
		return err
	}
	w := r.w
	encErr := json.NewEncoder(ownedWriter{w}).Encode(v)
	closeErr := w.finish()
	c.msgLock.unlock()
	if encErr != nil {
		return encErr
	}
	return closeErr
}

// ownedWriter writes to a message writer its holder owns throughout.
type ownedWriter struct{ w *messageWriter }

func (o ownedWriter) Write(p []byte) (int, error) { return o.w.write(p) }

// ReadJSON reads the next JSON-encoded message from the connection and stores
// it in the value pointed to by v.
//
// Deprecated: Use c.ReadJSON instead.
func ReadJSON(c *Conn, v interface{}) error { return c.ReadJSON(v) }

// ReadJSON reads the next JSON-encoded message from the connection and stores
// it in the value pointed to by v. An empty message yields
// io.ErrUnexpectedEOF.
//
// See the documentation for the encoding/json Unmarshal function for details
// about the conversion of JSON to a Go value.
func (c *Conn) ReadJSON(v interface{}) error {
	_, r, err := c.NextReader()
	if err != nil {
		return err
	}
	if err = json.NewDecoder(r).Decode(v); err == io.EOF {
		// The message held no value at all.
		err = io.ErrUnexpectedEOF
	}
	return err
}
