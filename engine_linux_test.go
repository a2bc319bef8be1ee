//go:build linux

package websocket

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEngineWriteQueueFull writes to a peer that never reads: once the
// socket buffers are full, writes queue up to MaxQueuedBytes and then fail
// with ErrWriteQueueFull instead of blocking or growing without bound.
func TestEngineWriteQueueFull(t *testing.T) {
	rec := newEngineRecorder(false)
	conns := make(chan *Conn, 1)
	rec.onOpen = func(c *Conn) { conns <- c }
	_, url := startEngine(t, EngineOptions{Loops: 1, MaxQueuedBytes: 256 << 10}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	sc := wait(t, conns, "OnOpen")
	msg := make([]byte, 64<<10)
	// Loopback socket buffers take a few MiB at most; 10,000 writes
	// (640 MiB) only bound the test should the queue not.
	for i := 0; i < 10_000; i++ {
		if err = sc.WriteMessage(BinaryMessage, msg); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, ErrWriteQueueFull)
	assert.ErrorIs(t, sc.WriteMessage(BinaryMessage, msg), ErrWriteQueueFull, "the write side stays failed")
}

// TestEngineBlockingReadsRefused: a Conn served by an Engine is read by
// its handler; NextReader and ReadMessage say so instead of racing the loop.
func TestEngineBlockingReadsRefused(t *testing.T) {
	rec := newEngineRecorder(false)
	errs := make(chan error, 2)
	rec.onOpen = func(c *Conn) {
		_, _, err := c.ReadMessage()
		errs <- err
		_, _, err = c.NextReader()
		errs <- err
	}
	_, url := startEngine(t, EngineOptions{Loops: 1}, &Upgrader{}, rec)
	c, _, err := DefaultDialer.Dial(url, nil)
	require.NoError(t, err)
	defer c.Close()
	assert.ErrorIs(t, wait(t, errs, "ReadMessage"), errEngineRead)
	assert.ErrorIs(t, wait(t, errs, "NextReader"), errEngineRead)
}
