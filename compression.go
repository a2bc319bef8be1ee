package websocket

import "errors"

// permessage-deflate (RFC 7692) is negotiated by nothing yet: Upgrader and
// Dialer accept EnableCompression, and the Conn methods below keep their
// gorilla meaning, but no connection compresses until the compression work
// lands. Frames with RSV1 set are therefore rejected with 1002.

const (
	minCompressionLevel     = -2 // flate.HuffmanOnly
	maxCompressionLevel     = 9  // flate.BestCompression
	defaultCompressionLevel = 1
)

// EnableWriteCompression enables and disables write compression of
// subsequent text and binary messages. This function is a noop if
// compression was not negotiated with the peer. It is safe to call
// concurrently with writes.
func (c *Conn) EnableWriteCompression(enable bool) {
	c.writeCompress.Store(enable)
}

// SetCompressionLevel sets the flate compression level for subsequent text
// and binary messages. This function is a noop if compression was not
// negotiated with the peer. See the compress/flate package for a
// description of compression levels.
func (c *Conn) SetCompressionLevel(level int) error {
	if level < minCompressionLevel || level > maxCompressionLevel {
		return errors.New("websocket: invalid compression level")
	}
	c.compressionLevel.Store(int32(level))
	return nil
}

// compressing reports whether the next message would be compressed.
func (c *Conn) compressing() bool {
	return c.compressionNegotiated && c.writeCompress.Load()
}
