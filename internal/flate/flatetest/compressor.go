package flatetest

import (
	"bytes"
	"compress/flate"
	"testing"
)

// StdCompressor compresses messages with compress/flate as a
// permessage-deflate peer does: each message ends with a sync flush whose
// 00 00 ff ff tail is removed, and the LZ77 window is kept from one
// message to the next (context takeover) unless a message asks for a
// fresh start.
type StdCompressor struct {
	buf bytes.Buffer
	fw  *flate.Writer
}

// NewStdCompressor returns a StdCompressor at the given compress/flate
// level.
func NewStdCompressor(t testing.TB, level int) *StdCompressor {
	t.Helper()
	c := &StdCompressor{}
	var err error
	c.fw, err = flate.NewWriter(&c.buf, level)
	if err != nil {
		t.Fatalf("flate.NewWriter: %v", err)
	}
	return c
}

// Compress returns msg compressed as the next message, its tail removed;
// with fresh set the window starts empty.
func (c *StdCompressor) Compress(t testing.TB, msg []byte, fresh bool) []byte {
	t.Helper()
	if fresh {
		c.fw.Reset(&c.buf)
	}
	c.buf.Reset()
	if _, err := c.fw.Write(msg); err != nil {
		t.Fatalf("flate.Writer.Write: %v", err)
	}
	if err := c.fw.Flush(); err != nil {
		t.Fatalf("flate.Writer.Flush: %v", err)
	}
	out := bytes.Clone(c.buf.Bytes())
	if !bytes.HasSuffix(out, tail) {
		t.Fatalf("a sync flush ends with % x, got % x", tail, out[max(0, len(out)-len(tail)):])
	}
	return out[:len(out)-len(tail)]
}
