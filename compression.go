package websocket

import (
	"errors"

	"github.com/wsforge/websocket/internal/flate"
)

// permessage-deflate (RFC 7692): the public options and how a negotiated
// connection is set up. Negotiation itself is in compression_negotiate.go,
// the compressed paths with the others, in read.go, write.go and
// prepared.go, and the codec (flate.Encoder, flate.Decoder) in
// internal/flate.

const (
	minCompressionLevel = -2 // flate.HuffmanOnly
	maxCompressionLevel = 9  // flate.BestCompression
	// The default level is 2 in a direction with context takeover and 1
	// (flate.BestSpeed, gorilla's default) without: level 2's second
	// candidate per hash bucket and one-step lazy matching take the ratio
	// of 4 KiB JSON with takeover from 0.262 to 0.243 for about 40% more
	// compression time, but find little more in a message that stands
	// alone (0.396 to 0.382).
	defaultCompressionLevel         = 1
	defaultTakeoverCompressionLevel = 2

	// defaultCompressionThreshold: shorter messages go out uncompressed.
	// Below it the deflate framing (a block header, the sync flush) costs
	// about as much as it saves on typical text, even with context
	// takeover.
	defaultCompressionThreshold = 64
)

// CompressionOptions tunes permessage-deflate (RFC 7692) on an Upgrader or
// a Dialer whose EnableCompression is set; without EnableCompression they
// have no effect. The zero value is the default, chosen for ratio on
// chatty traffic: context takeover in both directions with 32 KiB windows,
// level 2 (1 in a direction without takeover), and messages under 64
// bytes sent as they are.
//
// Memory. With context takeover a connection keeps, between messages, the
// window of the peer's messages it inflates against (2^ClientMaxWindowBits
// bytes on a server, 2^ServerMaxWindowBits on a client) and the history of
// its own compressor (7/8 of its window). While it is sending, the
// compressor also holds a match index (as many bytes as its window, 1.5
// times at levels 3 and above), which it drops after a second or two
// without a message. At the defaults an idle server connection holds
// 60 KiB (92 KiB while sending); the README has measured figures. Without
// context takeover in a direction, that direction holds nothing between
// messages: working memory is pooled and taken only for the length of a
// message.
type CompressionOptions struct {
	// Level is the initial compress/flate level of outgoing messages:
	// -2 (HuffmanOnly), -1 (DefaultCompression, 6), 1 (BestSpeed) to 9
	// (BestCompression). Zero means the default: 2 where this side
	// compresses with context takeover, else 1. Conn.SetCompressionLevel
	// changes it per connection, and also accepts 0 (stored blocks only).
	Level int

	// Threshold is the size in bytes below which a message is sent
	// uncompressed. Zero means the default, 64; a negative value
	// compresses every message. A message written with NextWriter is
	// measured when its writer closes, unless it has overflowed the write
	// buffer by then, in which case it is compressed.
	Threshold int

	// ServerNoContextTakeover makes the server compress each message on
	// its own, so that neither side keeps the server's history between
	// messages. On an Upgrader it is granted to every client; on a Dialer
	// it is requested, and a server that does not grant it fails the
	// handshake. A client that asks for it is always granted it.
	ServerNoContextTakeover bool

	// ClientNoContextTakeover makes the client compress each message on
	// its own. On an Upgrader it is required of every client (the server
	// then keeps no window of the client's messages); on a Dialer it is
	// promised in the offer. A server that asks for it is always obeyed.
	ClientNoContextTakeover bool

	// ServerMaxWindowBits (8..15, zero means 15) bounds, as a base-2
	// logarithm, how far back the server's compressor refers. On an
	// Upgrader it is the most the server uses (a client may ask for less,
	// and gets it); on a Dialer, values below 15 are requested, and a
	// server that does not grant them fails the handshake.
	ServerMaxWindowBits int

	// ClientMaxWindowBits (8..15, zero means 15) bounds how far back the
	// client's compressor refers. On an Upgrader it limits the window of
	// clients that allow a limit (browsers do), which bounds what the
	// server keeps to inflate with context takeover; 9 is the least a
	// server asks for, since zlib-based clients cannot compress with 8. On
	// a Dialer it is the window the client's compressor uses.
	ClientMaxWindowBits int
}

// pmdOptions translates the public options into the negotiator's.
func (o *CompressionOptions) pmdOptions() pmdOptions {
	return pmdOptions{
		serverNoContextTakeover: o.ServerNoContextTakeover,
		clientNoContextTakeover: o.ClientNoContextTakeover,
		serverMaxWindowBits:     o.ServerMaxWindowBits,
		clientMaxWindowBits:     o.ClientMaxWindowBits,
	}
}

// errInvalidCompressionOptions reports options out of range.
var errInvalidCompressionOptions = errors.New("websocket: invalid CompressionOptions")

func (o *CompressionOptions) validate() error {
	switch {
	case o.Level < minCompressionLevel || o.Level > maxCompressionLevel:
		return errInvalidCompressionOptions
	case o.ServerMaxWindowBits != 0 && (o.ServerMaxWindowBits < pmdMinWindowBits || o.ServerMaxWindowBits > pmdMaxWindowBits):
		return errInvalidCompressionOptions
	case o.ClientMaxWindowBits != 0 && (o.ClientMaxWindowBits < pmdMinWindowBits || o.ClientMaxWindowBits > pmdMaxWindowBits):
		return errInvalidCompressionOptions
	}
	return nil
}

// enableCompression sets c up for the negotiated parameters p, as the
// server (isServer) or the client.
func (c *Conn) enableCompression(p pmdParams, o *CompressionOptions) {
	c.writeCompress.Store(true)
	c.compressThreshold = o.Threshold
	if c.compressThreshold == 0 {
		c.compressThreshold = defaultCompressionThreshold
	}
	// Each side compresses with its own parameters and inflates with the
	// peer's.
	ownTakeover, ownBits := !p.serverNoContextTakeover, p.serverMaxWindowBits
	peerTakeover, peerBits := !p.clientNoContextTakeover, p.clientMaxWindowBits
	if !c.isServer {
		ownTakeover, ownBits, peerTakeover, peerBits = peerTakeover, peerBits, ownTakeover, ownBits
	}
	level := o.Level
	switch {
	case level != 0:
	case ownTakeover:
		level = defaultTakeoverCompressionLevel
	default:
		level = defaultCompressionLevel
	}
	c.compressionLevel.Store(int32(level))
	c.deflate = flate.NewEncoder(ownBits, level, ownTakeover)
	c.inflate = flate.NewDecoder(peerBits, peerTakeover, c.payloadRun)
}

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
// description of compression levels. It is safe to call concurrently with
// writes; with context takeover the history is kept across a change.
func (c *Conn) SetCompressionLevel(level int) error {
	if level < minCompressionLevel || level > maxCompressionLevel {
		return errors.New("websocket: invalid compression level")
	}
	c.compressionLevel.Store(int32(level))
	return nil
}
