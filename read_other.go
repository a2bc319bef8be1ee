//go:build !unix

package websocket

// idleReader is unused where there is no raw file descriptor to wait on:
// a waiting connection keeps its read buffer.
type idleReader struct{}

func (c *Conn) initIdleRead() {}

func (c *Conn) fillIdle() (done bool, err error) { return false, nil }
