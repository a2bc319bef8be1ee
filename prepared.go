package websocket

import (
	"errors"
	"sync"

	"github.com/wsforge/websocket/internal/flate"
)

// PreparedMessage caches on the wire representations of a message payload.
// Use PreparedMessage to efficiently send a message payload to multiple
// connections. PreparedMessage is especially useful when compression is
// used because the CPU and memory expensive compression operation can be
// executed once for a given set of compression options.
//
// A PreparedMessage is immutable and safe for concurrent use. The data
// passed to NewPreparedMessage must not be modified afterwards.
type PreparedMessage struct {
	messageType int
	data        []byte

	// serverFrame is the whole unmasked frame, built on first use by a
	// server connection and then written as it is by every one.
	serverOnce  sync.Once
	serverFrame []byte

	compressed preparedCompressed
}

// NewPreparedMessage returns an initialized PreparedMessage. You can then
// send it to connection using WritePreparedMessage method. Valid wire
// representation will be calculated lazily only once for a set of current
// connection options.
func NewPreparedMessage(messageType int, data []byte) (*PreparedMessage, error) {
	switch messageType {
	case TextMessage, BinaryMessage:
	case CloseMessage, PingMessage, PongMessage:
		if len(data) > maxControlPayload {
			return nil, errInvalidControl
		}
	default:
		return nil, errors.New("websocket: invalid message type for a prepared message")
	}
	return &PreparedMessage{messageType: messageType, data: data}, nil
}

func (pm *PreparedMessage) frame() []byte {
	pm.serverOnce.Do(func() {
		f := make([]byte, 0, headerSize(len(pm.data), false)+len(pm.data))
		f = appendFrameHeader(f, true, 0, byte(pm.messageType), len(pm.data), false, [4]byte{})
		pm.serverFrame = append(f, pm.data...)
	})
	return pm.serverFrame
}

// WritePreparedMessage writes prepared message into connection. A server
// connection writes the cached frame with one write call and no copy; a
// client connection masks a copy with a fresh key, as RFC 6455 requires.
// It is safe to call concurrently with the other write methods.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if isControl(byte(pm.messageType)) {
		return c.WriteControl(pm.messageType, pm.data, c.dataDeadline())
	}
	if err := c.lockMessage(c.dataDeadline()); err != nil {
		return err
	}
	defer c.msgLock.unlock()
	if c.willCompressWhole(len(pm.data)) {
		if !c.isServer || c.deflate.Takeover() {
			return c.writeCompressedMessage(byte(pm.messageType), pm.data)
		}
		c.syncDeflater()
		return c.writeRaw(pm.compressed.frame(pm, c.deflate.Level(), c.deflate.WindowBits()))
	}
	if !c.isServer {
		return c.writeWhole(byte(pm.messageType), pm.data)
	}
	return c.writeRaw(pm.frame())
}

// writeRaw writes the bytes of whole frames prepared in advance.
func (c *Conn) writeRaw(frame []byte) error {
	return c.sendFrame(c.dataDeadline(), false, func() (int64, error) {
		n, err := c.conn.Write(frame)
		return int64(n), err
	})
}

// preparedCompressed caches, in a PreparedMessage, the whole compressed
// frame for server connections that compress each message on its own: the
// output then depends only on the level and the window, so one compression
// serves them all. With context takeover it depends on each connection's
// history, and clients mask every frame with a new key, so those compress
// per connection.
type preparedCompressed struct {
	mu      sync.Mutex
	entries []preparedEntry
}

type preparedEntry struct {
	level, windowBits int
	frame             []byte
}

// frame returns the compressed frame of pm for the given level and
// window, building it on first use.
func (pc *preparedCompressed) frame(pm *PreparedMessage, level, windowBits int) []byte {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, e := range pc.entries {
		if e.level == level && e.windowBits == windowBits {
			return e.frame
		}
	}
	e := flate.NewEncoder(windowBits, level, false)
	payload := e.Compress(make([]byte, 0, deflateBound(len(pm.data))), pm.data)
	f := make([]byte, 0, headerSize(len(payload), false)+len(payload))
	f = appendFrameHeader(f, true, rsv1Bit, byte(pm.messageType), len(payload), false, [4]byte{})
	f = append(f, payload...)
	pc.entries = append(pc.entries, preparedEntry{level: level, windowBits: windowBits, frame: f})
	return f
}
