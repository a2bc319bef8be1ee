package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	wsforge "github.com/wsforge/websocket"
)

// echoConn is one client connection of the echo suite. run does request/echo
// round trips, one in flight, until stop is set, and returns how many it
// completed.
type echoConn interface {
	run(stop *atomic.Bool) (int64, error)
	close()
}

func dialEcho(client, lib, addr string, payload []byte) (echoConn, error) {
	if client == "raw" {
		rc, err := rawDial(addr, handshakeRequest(addr, ""), 64<<10, nil)
		if err != nil {
			return nil, err
		}
		return &rawEcho{rc: rc, size: len(payload), frame: maskedFrame(0x2, payload, false)}, nil
	}
	url := "ws://" + addr + "/"
	switch lib {
	case "wsforge", "wsforge-stream", engineLib:
		d := &wsforge.Dialer{}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			return nil, err
		}
		return &wsforgeClient{c: c, payload: payload, stream: lib == "wsforge-stream",
			buf: make([]byte, len(payload))}, nil
	case "gorilla":
		d := &gorilla.Dialer{}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			return nil, err
		}
		return &gorillaClient{c: c, payload: payload}, nil
	case "gws":
		h := &gwsClient{payload: payload, done: make(chan error, 1)}
		c, _, err := gws.NewClient(h, &gws.ClientOption{Addr: url})
		if err != nil {
			return nil, err
		}
		h.c = c
		go c.ReadLoop()
		return h, nil
	case "gobwas":
		conn, br, _, err := ws.Dial(context.Background(), url)
		if err != nil {
			return nil, err
		}
		g := &gobwasClient{conn: conn, payload: payload}
		g.rw = conn
		if br != nil {
			// The server wrote past its handshake response; read those
			// bytes first.
			g.rw = struct {
				io.Reader
				io.Writer
			}{io.MultiReader(br, conn), conn}
		}
		return g, nil
	case "coder":
		c, _, err := coder.Dial(context.Background(), url, nil)
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(64 << 20)
		return &coderClient{c: c, payload: payload}, nil
	}
	return nil, fmt.Errorf("unknown library %q", lib)
}

type rawEcho struct {
	rc    *rawConn
	frame []byte
	size  int // expected echo length
}

func (e *rawEcho) run(stop *atomic.Bool) (int64, error) {
	var n int64
	for !stop.Load() {
		if _, err := e.rc.c.Write(e.frame); err != nil {
			return n, err
		}
		got, err := e.rc.readMessage()
		if err != nil {
			return n, err
		}
		if got != e.size {
			return n, fmt.Errorf("raw client: echo of %d bytes, want %d", got, e.size)
		}
		n++
	}
	return n, nil
}

func (e *rawEcho) close() { e.rc.closeHard() }

type wsforgeClient struct {
	c       *wsforge.Conn
	payload []byte
	stream  bool
	buf     []byte
}

func (w *wsforgeClient) run(stop *atomic.Bool) (int64, error) {
	var n int64
	for !stop.Load() {
		if w.stream {
			wr, err := w.c.NextWriter(wsforge.BinaryMessage)
			if err != nil {
				return n, err
			}
			if _, err := wr.Write(w.payload); err != nil {
				return n, err
			}
			if err := wr.Close(); err != nil {
				return n, err
			}
			_, rd, err := w.c.NextReader()
			if err != nil {
				return n, err
			}
			if _, err := io.ReadFull(rd, w.buf); err != nil {
				return n, err
			}
		} else {
			if err := w.c.WriteMessage(wsforge.BinaryMessage, w.payload); err != nil {
				return n, err
			}
			_, p, err := w.c.ReadMessage()
			if err != nil {
				return n, err
			}
			if len(p) != len(w.payload) {
				return n, fmt.Errorf("wsforge client: echo of %d bytes, want %d", len(p), len(w.payload))
			}
		}
		n++
	}
	return n, nil
}

func (w *wsforgeClient) close() { w.c.Close() }

type gorillaClient struct {
	c       *gorilla.Conn
	payload []byte
}

func (g *gorillaClient) run(stop *atomic.Bool) (int64, error) {
	var n int64
	for !stop.Load() {
		if err := g.c.WriteMessage(gorilla.BinaryMessage, g.payload); err != nil {
			return n, err
		}
		_, p, err := g.c.ReadMessage()
		if err != nil {
			return n, err
		}
		if len(p) != len(g.payload) {
			return n, fmt.Errorf("gorilla client: echo of %d bytes, want %d", len(p), len(g.payload))
		}
		n++
	}
	return n, nil
}

func (g *gorillaClient) close() { g.c.Close() }

// gwsClient drives the round trips from gws's event callbacks: OnMessage
// sends the next request until the stop flag is seen.
type gwsClient struct {
	gws.BuiltinEventHandler
	c       *gws.Conn
	payload []byte
	stop    *atomic.Bool
	n       int64
	done    chan error
}

func (g *gwsClient) run(stop *atomic.Bool) (int64, error) {
	g.stop, g.n = stop, 0
	if stop.Load() {
		return 0, nil
	}
	if err := g.c.WriteMessage(gws.OpcodeBinary, g.payload); err != nil {
		return 0, err
	}
	err := <-g.done
	return g.n, err
}

func (g *gwsClient) OnMessage(c *gws.Conn, m *gws.Message) {
	got := m.Data.Len()
	m.Close()
	if got != len(g.payload) {
		g.done <- fmt.Errorf("gws client: echo of %d bytes, want %d", got, len(g.payload))
		return
	}
	g.n++
	if g.stop.Load() {
		g.done <- nil
		return
	}
	if err := c.WriteMessage(gws.OpcodeBinary, g.payload); err != nil {
		g.done <- err
	}
}

func (g *gwsClient) OnClose(c *gws.Conn, err error) {
	select {
	case g.done <- fmt.Errorf("gws client: closed: %v", err):
	default:
	}
}

func (g *gwsClient) close() { _ = g.c.NetConn().Close() }

// gobwasClient uses the wsutil helpers, the client-side counterpart of
// gobwas's higher-level example.
type gobwasClient struct {
	conn    net.Conn
	rw      io.ReadWriter
	payload []byte
}

func (g *gobwasClient) run(stop *atomic.Bool) (int64, error) {
	var n int64
	for !stop.Load() {
		if err := wsutil.WriteClientBinary(g.conn, g.payload); err != nil {
			return n, err
		}
		p, _, err := wsutil.ReadServerData(g.rw)
		if err != nil {
			return n, err
		}
		if len(p) != len(g.payload) {
			return n, fmt.Errorf("gobwas client: echo of %d bytes, want %d", len(p), len(g.payload))
		}
		n++
	}
	return n, nil
}

func (g *gobwasClient) close() { g.conn.Close() }

type coderClient struct {
	c       *coder.Conn
	payload []byte
}

func (k *coderClient) run(stop *atomic.Bool) (int64, error) {
	var n int64
	ctx := context.Background()
	for !stop.Load() {
		if err := k.c.Write(ctx, coder.MessageBinary, k.payload); err != nil {
			return n, err
		}
		_, p, err := k.c.Read(ctx)
		if err != nil {
			return n, err
		}
		if len(p) != len(k.payload) {
			return n, fmt.Errorf("coder client: echo of %d bytes, want %d", len(p), len(k.payload))
		}
		n++
	}
	return n, nil
}

func (k *coderClient) close() { k.c.CloseNow() }
