package main

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The deflate suite's raw client: permessage-deflate (RFC 7692) echo of a
// JSON corpus, and idle connections that have compressed history.
//
// The client compresses every corpus message once, on its own (no
// references to earlier messages: valid with or without context takeover),
// and writes the same masked frame each time the message comes round. It
// counts the payload bytes of the server's echoes, so the ratio measures
// the server library's compressor. Connection 0 of every run inflates each
// echo, keeping the server's history across messages when the server kept
// it, and compares it with the message sent.

// Modes of a deflate cell: which offer the raw client makes, and how the
// server is configured where the library configures it rather than
// answering the offer.
const (
	// modePlain offers no extension: the baseline of the idle figures.
	modePlain = "plain"
	// modeTakeover offers context takeover in both directions, as
	// browsers do.
	modeTakeover = "takeover"
	// modeNoTakeover asks for no context takeover in either direction.
	modeNoTakeover = "notakeover"
	// modeSmallWindows is modeTakeover with 1 KiB windows both ways.
	modeSmallWindows = "takeover-w10"
)

var deflateModes = []string{modePlain, modeTakeover, modeNoTakeover, modeSmallWindows}

// modeOffer is the Sec-WebSocket-Extensions value the raw client sends.
func modeOffer(mode string) string {
	switch mode {
	case modeTakeover:
		return "permessage-deflate; client_max_window_bits"
	case modeNoTakeover:
		return "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	case modeSmallWindows:
		return "permessage-deflate; client_max_window_bits=10; server_max_window_bits=10"
	}
	return ""
}

// modeCompresses says whether the server of a mode enables compression.
func modeCompresses(mode string) bool { return mode != "" && mode != modePlain }

// pmdResponse reads a Sec-WebSocket-Extensions response: whether it agrees
// to permessage-deflate, and whether the server keeps its compression
// context between messages (no server_no_context_takeover).
func pmdResponse(ext string) (negotiated, serverTakeover bool) {
	for _, elem := range strings.Split(ext, ",") {
		params := strings.Split(elem, ";")
		if strings.TrimSpace(params[0]) != "permessage-deflate" {
			continue
		}
		serverTakeover = true
		for _, p := range params[1:] {
			if strings.TrimSpace(p) == "server_no_context_takeover" {
				serverTakeover = false
			}
		}
		return true, serverTakeover
	}
	return false, false
}

// deflateTail is the end of a sync flush, which permessage-deflate removes
// from every message (RFC 7692 section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// compressMessages compresses every message on its own, as one
// permessage-deflate message each: a sync flush without its tail, no final
// block. One compressor is reset for each (a new one allocates about
// 1 MiB).
func compressMessages(msgs [][]byte, level int) ([][]byte, error) {
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, level)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(msgs))
	for i, p := range msgs {
		buf.Reset()
		fw.Reset(&buf)
		if _, err := fw.Write(p); err != nil {
			return nil, err
		}
		if err := fw.Flush(); err != nil {
			return nil, err
		}
		out[i] = bytes.Clone(bytes.TrimSuffix(buf.Bytes(), deflateTail))
	}
	return out, nil
}

// compressMessage is compressMessages for one message.
func compressMessage(p []byte, level int) ([]byte, error) {
	c, err := compressMessages([][]byte{p}, level)
	if err != nil {
		return nil, err
	}
	return c[0], nil
}

// deflateFrames compresses every message on its own at level into one
// masked binary frame with RSV1 set.
func deflateFrames(msgs [][]byte, level int) ([][]byte, error) {
	c, err := compressMessages(msgs, level)
	if err != nil {
		return nil, err
	}
	for i := range c {
		c[i] = maskedFrame(0x2, c[i], true)
	}
	return c, nil
}

// inflater decompresses a server's messages. With context takeover it
// keeps the last 32 KiB of output as the dictionary of the next message
// (the most any server window reaches back), as a long-lived stream would.
type inflater struct {
	takeover bool
	dict     []byte
	fr       io.ReadCloser
	out      bytes.Buffer
}

// inflateEnd follows a message's data: the sync flush tail the sender
// removed, then an empty final stored block so that the reader ends
// cleanly at the end of the message.
const inflateEnd = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

func (f *inflater) inflate(p []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), strings.NewReader(inflateEnd))
	var dict []byte
	if f.takeover {
		dict = f.dict
	}
	if f.fr == nil {
		f.fr = flate.NewReaderDict(src, dict)
	} else if err := f.fr.(flate.Resetter).Reset(src, dict); err != nil {
		return nil, err
	}
	f.out.Reset()
	if _, err := f.out.ReadFrom(f.fr); err != nil {
		return nil, err
	}
	out := f.out.Bytes()
	if f.takeover {
		f.dict = append(f.dict, out...)
		if over := len(f.dict) - 32<<10; over > 0 {
			f.dict = f.dict[:copy(f.dict, f.dict[over:])]
		}
	}
	return out, nil
}

// echoFrames describes one echoed message.
type echoFrames struct {
	wire       int  // payload bytes of its frames
	frames     int  // data frames
	compressed bool // RSV1 on its first frame
}

// readEcho reads the frames of the next data message. With collect, their
// payloads are appended to *buf; otherwise they are skipped. Control frames
// other than close are skipped.
func (rc *rawConn) readEcho(collect bool, buf *[]byte) (echoFrames, error) {
	var e echoFrames
	for {
		h, err := rc.br.Peek(2)
		if err != nil {
			return e, err
		}
		b0, b1 := h[0], h[1]
		if b1&0x80 != 0 {
			return e, errors.New("raw client: masked frame from the server")
		}
		hl := 2
		switch b1 & 0x7f {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		h, err = rc.br.Peek(hl)
		if err != nil {
			return e, err
		}
		n := int(b1 & 0x7f)
		switch n {
		case 126:
			n = int(binary.BigEndian.Uint16(h[2:]))
		case 127:
			n = int(binary.BigEndian.Uint64(h[2:]))
		}
		if _, err := rc.br.Discard(hl); err != nil {
			return e, err
		}
		op := b0 & 0x0f
		if op >= 0x8 {
			if _, err := rc.br.Discard(n); err != nil {
				return e, err
			}
			if op == 0x8 {
				return e, errPeerClosed
			}
			continue
		}
		if b0&0x30 != 0 {
			return e, fmt.Errorf("raw client: RSV2/RSV3 set in frame header 0x%02x", b0)
		}
		if e.frames == 0 {
			e.compressed = b0&0x40 != 0
		} else if b0&0x40 != 0 {
			return e, errors.New("raw client: RSV1 on a continuation frame")
		}
		if collect {
			at := len(*buf)
			*buf = append(*buf, make([]byte, n)...)
			if _, err := io.ReadFull(rc.br, (*buf)[at:]); err != nil {
				return e, err
			}
		} else if _, err := rc.br.Discard(n); err != nil {
			return e, err
		}
		e.wire += n
		e.frames++
		if b0&0x80 != 0 {
			return e, nil
		}
	}
}

// deflateCounts are one connection's byte counts over a phase.
type deflateCounts struct {
	wire, plain, compressed, frames int64
}

func (a *deflateCounts) add(b deflateCounts) {
	a.wire += b.wire
	a.plain += b.plain
	a.compressed += b.compressed
	a.frames += b.frames
}

// deflateEcho is one connection of the deflate echo: it cycles through
// the corpus, one message in flight.
type deflateEcho struct {
	rc         *rawConn
	frames     [][]byte // precompressed masked frames, shared
	plain      [][]byte // the corpus
	next       int
	counts     deflateCounts
	extensions string
	takeover   bool
	// check, on connection 0, inflates and compares every echo.
	check *inflater
	buf   []byte
}

func (e *deflateEcho) run(stop *atomic.Bool) (int64, error) {
	var n int64
	for !stop.Load() {
		i := e.next
		e.next = (e.next + 1) % len(e.frames)
		if _, err := e.rc.c.Write(e.frames[i]); err != nil {
			return n, err
		}
		e.buf = e.buf[:0]
		f, err := e.rc.readEcho(e.check != nil, &e.buf)
		if err != nil {
			return n, err
		}
		e.counts.wire += int64(f.wire)
		e.counts.plain += int64(len(e.plain[i]))
		e.counts.frames += int64(f.frames)
		if f.compressed {
			e.counts.compressed++
		}
		if e.check != nil {
			if err := e.verify(f, i); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

// verify inflates the echo of corpus message i, read into e.buf, and
// compares it with what was sent.
func (e *deflateEcho) verify(f echoFrames, i int) error {
	got := e.buf
	if f.compressed {
		var err error
		if got, err = e.check.inflate(e.buf); err != nil {
			return fmt.Errorf("echo of corpus message %d (%d bytes) does not inflate: %v (%d compressed bytes in %d frame(s), takeover %v)",
				i, len(e.plain[i]), err, f.wire, f.frames, e.takeover)
		}
	}
	return compareEcho(got, e.plain[i], i, f, e.takeover)
}

func compareEcho(got, want []byte, i int, f echoFrames, takeover bool) error {
	if bytes.Equal(got, want) {
		return nil
	}
	at := 0
	for at < len(got) && at < len(want) && got[at] == want[at] {
		at++
	}
	return fmt.Errorf("echo of corpus message %d differs from the message sent: %d bytes, want %d, first difference at byte %d (compressed %v, %d wire bytes in %d frame(s), takeover %v)",
		i, len(got), len(want), at, f.compressed, f.wire, f.frames, takeover)
}

func (e *deflateEcho) close() { e.rc.closeHard() }

// dialDeflate opens a raw connection making mode's offer. Its extensions
// field holds the server's answer.
func dialDeflate(addr, mode string, bufSize int) (*rawConn, error) {
	return rawDial(addr, handshakeRequest(addr, modeOffer(mode)), bufSize, nil)
}

func clientDeflate(o *childOpts, ctl *control, res *result) error {
	corpus, err := makeCorpus(o.corpus)
	if err != nil {
		return err
	}
	frames, err := deflateFrames(corpus, flate.BestSpeed)
	if err != nil {
		return err
	}
	conns, err := dialAll(o.conns, 4, func() (*deflateEcho, error) {
		rc, err := dialDeflate(o.addr, o.mode, 64<<10)
		if err != nil {
			return nil, err
		}
		e := &deflateEcho{rc: rc, frames: frames, plain: corpus, extensions: rc.extensions}
		return e, nil
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err != nil {
		return err
	}
	res.Conns = len(conns)
	for i, c := range conns {
		ok, takeover := pmdResponse(c.extensions)
		if !ok {
			res.Note = "not negotiated"
			res.Extensions = c.extensions
			return nil
		}
		c.takeover = takeover
		// Connections start at different places in the corpus, so that
		// the server is not handed the same message by all at once.
		c.next = i * 37 % len(frames)
	}
	conns[0].check = &inflater{takeover: conns[0].takeover}
	res.Extensions, res.Takeover = conns[0].extensions, conns[0].takeover
	var last deflateCounts
	phase := func(d time.Duration) (int64, error) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		counts := make([]int64, len(conns))
		errs := make([]error, len(conns))
		for i, c := range conns {
			c.counts = deflateCounts{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				counts[i], errs[i] = c.run(&stop)
				if errs[i] != nil {
					errs[i] = fmt.Errorf("connection %d: %w", i, errs[i])
				}
			}()
		}
		time.Sleep(d)
		stop.Store(true)
		wg.Wait()
		var total int64
		last = deflateCounts{}
		for i, n := range counts {
			total += n
			last.add(conns[i].counts)
		}
		return total, errors.Join(errs...)
	}
	err = measure(o, ctl, res, phase)
	res.WireBytes, res.PlainBytes, res.Compressed, res.Frames = last.wire, last.plain, last.compressed, last.frames
	return err
}

// clientDeflateIdle opens o.conns connections making mode's offer (none
// for modePlain); each sends one API message, compressed where negotiated,
// and checks its echo. Then they sit idle while the server measures its
// memory.
func clientDeflateIdle(o *childOpts, ctl *control, res *result) error {
	corpus, err := makeCorpus("api")
	if err != nil {
		return err
	}
	// Huffman-only: no back-references at all, so the message is valid
	// under any window size the server asks for (10 bits here, which a
	// compress/flate stream of 4 KiB would exceed).
	var frames [][]byte
	if modeCompresses(o.mode) {
		if frames, err = deflateFrames(corpus, flate.HuffmanOnly); err != nil {
			return err
		}
	} else {
		for _, m := range corpus {
			frames = append(frames, maskedFrame(0x2, m, false))
		}
	}
	var next atomic.Int64
	conns, err := dialAll(o.conns, 8, func() (*rawConn, error) {
		rc, err := dialDeflate(o.addr, o.mode, 8<<10)
		if err != nil {
			return nil, err
		}
		if err := idleRoundTrip(rc, o.mode, frames, corpus, int(next.Add(1)-1)%len(corpus)); err != nil {
			rc.closeHard()
			return nil, err
		}
		rc.br = nil // nothing more will be read; do not hold the buffer
		return rc, nil
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.closeHard()
			}
		}
	}()
	if err != nil {
		if errors.Is(err, errNoDeflate) {
			res.Note = "not negotiated"
			return nil
		}
		return err
	}
	res.Conns = len(conns)
	res.Extensions = conns[0].extensions
	_, res.Takeover = pmdResponse(res.Extensions)
	// A compressor may keep working state while its connection is sending
	// and let it go once the connection is idle (wsforge drops its match
	// index after one to two seconds without a message). Every library
	// gets the same wait, so the figure is what an idle connection holds.
	time.Sleep(deflateIdleSettle)
	return idleMemory(ctl, res, len(conns))
}

// deflateIdleSettle is how long the idle connections sit before the
// server's memory is measured.
const deflateIdleSettle = 2500 * time.Millisecond

var errNoDeflate = errors.New("server did not negotiate permessage-deflate")

// idleRoundTrip sends corpus message i and checks its echo.
func idleRoundTrip(rc *rawConn, mode string, frames, corpus [][]byte, i int) error {
	ok, takeover := pmdResponse(rc.extensions)
	if modeCompresses(mode) && !ok {
		return errNoDeflate
	}
	if _, err := rc.c.Write(frames[i]); err != nil {
		return err
	}
	var buf []byte
	f, err := rc.readEcho(true, &buf)
	if err != nil {
		return err
	}
	got := buf
	if f.compressed {
		if !ok {
			return errors.New("raw client: compressed echo without permessage-deflate")
		}
		if got, err = (&inflater{takeover: takeover}).inflate(buf); err != nil {
			return fmt.Errorf("echo of corpus message %d does not inflate: %v", i, err)
		}
	}
	return compareEcho(got, corpus[i], i, f, takeover)
}
