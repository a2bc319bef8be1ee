package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
	wsforge "github.com/wsforge/websocket"
)

// libServer is one library's WebSocket server, written the way that
// library's documentation shows: the handler echoes every data message and,
// when nothing arrives, sits blocked in the library's read call.
type libServer struct {
	handler http.Handler

	// active counts connections whose handler has reached its read loop.
	active atomic.Int64

	// register is on only for the broadcast suite; holding every connection
	// of the handshake suite would keep them all reachable.
	register bool
	mu       sync.Mutex
	conns    []any

	// broadcast sends payload once to every registered connection.
	broadcast func(conns []any, payload []byte) error
}

func (s *libServer) add(c any) {
	if !s.register {
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
}

func (s *libServer) snapshotConns() []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]any(nil), s.conns...)
}

// deflateThreshold is the smallest message gws and coder compress in the
// deflate suite: wsforge's default. Their defaults (gws 512 bytes without
// context takeover, coder 512 without and 128 with) would send the ~200 B
// corpus uncompressed in some cells; the ~4 KiB cells are above every
// default, so there they run at their defaults.
const deflateThreshold = 64

// newLibServer builds lib's server. mode is the deflate suite's (see
// modeOffer); "" and modePlain leave compression off. Where a library
// answers the client's offer by itself (wsforge, gorilla) the server only
// enables compression; gws and coder are configured for the mode's context
// takeover, since they do not grant takeover unless told to.
func newLibServer(lib, mode string, register bool) (*libServer, error) {
	s := &libServer{register: register}
	deflate := modeCompresses(mode)
	takeover := mode != modeNoTakeover
	switch lib {
	case "wsforge", "wsforge-stream":
		up := wsforge.Upgrader{EnableCompression: deflate}
		stream := lib == "wsforge-stream"
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			s.add(c)
			s.active.Add(1)
			defer s.active.Add(-1)
			if stream {
				wsforgeStreamEcho(c)
			} else {
				wsforgeEcho(c)
			}
		})
		s.broadcast = wsforgeBroadcast
	case engineLib:
		e, err := wsforge.NewEngine(wsforge.EngineOptions{})
		if err != nil {
			return nil, err
		}
		up := wsforge.Upgrader{EnableCompression: deflate}
		h := &engineEcho{s: s}
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.Upgrade(&up, w, r, nil, h)
		})
		s.broadcast = wsforgeBroadcast
	case detachedLib:
		// gorilla's chat example style: the handler starts the read loop
		// in a goroutine of its own and returns, so net/http's
		// per-request state and its goroutine go away.
		var up wsforge.Upgrader
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			s.active.Add(1)
			go func() {
				defer s.active.Add(-1)
				defer c.Close()
				wsforgeEcho(c)
			}()
		})
	case floorLib:
		// No WebSocket library: what net/http itself keeps per hijacked
		// connection whose handler stays blocked in a read. Every
		// library's server that upgrades from net/http (all here but
		// gws and gobwas, which may run their own loops) pays this.
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			nc, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer nc.Close()
			_, err = nc.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				floorAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n"))
			if err != nil {
				return
			}
			// Drop net/http's 4 KiB buffers as a lean library would.
			*brw.Reader, *brw.Writer = bufio.Reader{}, bufio.Writer{}
			s.active.Add(1)
			defer s.active.Add(-1)
			var b [1]byte
			nc.Read(b[:])
		})
	case "gorilla":
		up := gorilla.Upgrader{EnableCompression: deflate}
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			s.add(c)
			s.active.Add(1)
			defer s.active.Add(-1)
			for {
				mt, p, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(mt, p); err != nil {
					return
				}
			}
		})
		s.broadcast = func(conns []any, payload []byte) error {
			pm, err := gorilla.NewPreparedMessage(gorilla.BinaryMessage, payload)
			if err != nil {
				return err
			}
			var first error
			for _, c := range conns {
				if err := c.(*gorilla.Conn).WritePreparedMessage(pm); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
	case "gws":
		h := &gwsEcho{s: s}
		up := gws.NewUpgrader(h, &gws.ServerOption{
			PermessageDeflate: gws.PermessageDeflate{
				Enabled:               deflate,
				ServerContextTakeover: takeover,
				ClientContextTakeover: takeover,
				Threshold:             deflateThreshold,
			},
		})
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			s.add(c)
			// gws's README runs ReadLoop in its own goroutine so that the
			// HTTP handler returns and its request can be collected.
			go c.ReadLoop()
		})
		s.broadcast = func(conns []any, payload []byte) error {
			b := gws.NewBroadcaster(gws.OpcodeBinary, payload)
			defer b.Close()
			var first error
			for _, c := range conns {
				if err := b.Broadcast(c.(*gws.Conn)); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
	case "gobwas":
		if deflate {
			return nil, errors.New("gobwas: permessage-deflate needs wsflate, not wired up")
		}
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, _, err := ws.UpgradeHTTP(r, w)
			if err != nil {
				return
			}
			s.add(conn)
			go func() {
				defer conn.Close()
				s.active.Add(1)
				defer s.active.Add(-1)
				gobwasEcho(conn)
			}()
		})
		s.broadcast = func(conns []any, payload []byte) error {
			// gobwas has no prepared message type; compiling the frame
			// once and writing the bytes to every connection is its
			// equivalent.
			frame, err := ws.CompileFrame(ws.NewBinaryFrame(payload))
			if err != nil {
				return err
			}
			var first error
			for _, c := range conns {
				if _, err := c.(net.Conn).Write(frame); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
	case "coder":
		opts := &coder.AcceptOptions{}
		if deflate {
			opts.CompressionMode = coder.CompressionNoContextTakeover
			if takeover {
				opts.CompressionMode = coder.CompressionContextTakeover
			}
			opts.CompressionThreshold = deflateThreshold
		}
		s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, opts)
			if err != nil {
				return
			}
			defer c.CloseNow()
			// The default limit of 32 KiB would reject the 1 MiB cells.
			c.SetReadLimit(64 << 20)
			s.add(c)
			s.active.Add(1)
			defer s.active.Add(-1)
			ctx := context.Background()
			var buf []byte
			for {
				typ, rd, err := c.Reader(ctx)
				if err != nil {
					return
				}
				wr, err := c.Writer(ctx, typ)
				if err != nil {
					return
				}
				if err := copyMessage(wr, rd, &buf); err != nil {
					return
				}
				if err := wr.Close(); err != nil {
					return
				}
			}
		})
		s.broadcast = func(conns []any, payload []byte) error {
			ctx := context.Background()
			var first error
			for _, c := range conns {
				if err := c.(*coder.Conn).Write(ctx, coder.MessageBinary, payload); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
	default:
		return nil, fmt.Errorf("unknown library %q", lib)
	}
	return s, nil
}

// wsforgeEcho is the gorilla-style blocking handler.
func wsforgeEcho(c *wsforge.Conn) {
	for {
		mt, p, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(mt, p); err != nil {
			return
		}
	}
}

// copyMessage copies one message from r to w. It is io.Copy, except that
// when neither side offers ReadFrom or WriteTo it reuses a per-connection
// buffer, allocated on first use, instead of io.Copy's fresh 32 KiB per
// call, which would otherwise dominate small-message costs.
func copyMessage(w io.Writer, r io.Reader, buf *[]byte) error {
	_, rf := w.(io.ReaderFrom)
	_, wt := r.(io.WriterTo)
	if rf || wt {
		_, err := io.Copy(w, r)
		return err
	}
	if *buf == nil {
		*buf = make([]byte, 32<<10)
	}
	_, err := io.CopyBuffer(w, r, *buf)
	return err
}

// wsforgeStreamEcho streams each message from NextReader to NextWriter.
func wsforgeStreamEcho(c *wsforge.Conn) {
	var buf []byte
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			return
		}
		w, err := c.NextWriter(mt)
		if err != nil {
			return
		}
		if err := copyMessage(w, r, &buf); err != nil {
			return
		}
		if err := w.Close(); err != nil {
			return
		}
	}
}

// gobwasEcho is the low-level loop from gobwas/ws's README: read the header
// straight from the connection, read and unmask the payload, write it back.
func gobwasEcho(conn net.Conn) {
	for {
		header, err := ws.ReadHeader(conn)
		if err != nil {
			return
		}
		payload := make([]byte, header.Length)
		if _, err := io.ReadFull(conn, payload); err != nil {
			return
		}
		if header.Masked {
			ws.Cipher(payload, header.Mask, 0)
		}
		header.Masked = false
		if err := ws.WriteHeader(conn, header); err != nil {
			return
		}
		if _, err := conn.Write(payload); err != nil {
			return
		}
		if header.OpCode == ws.OpClose {
			return
		}
	}
}

// gwsEcho is gws's event handler: OnMessage writes the message back.
type gwsEcho struct {
	gws.BuiltinEventHandler
	s *libServer
}

func (h *gwsEcho) OnOpen(c *gws.Conn) { h.s.active.Add(1) }

func (h *gwsEcho) OnClose(c *gws.Conn, err error) { h.s.active.Add(-1) }

func (h *gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	_ = c.WriteMessage(m.Opcode, m.Bytes())
}

// serverHello is the first line a server child prints on stdout.
type serverHello struct {
	Addr  string `json:"addr"`
	Ctl   string `json:"ctl"`
	Limit uint64 `json:"nofile"`
}

// ctlReply is the server's answer to stop, bcast and mem.
type ctlReply struct {
	Server         sideStats `json:"server"`
	HeapBytes      int64     `json:"heap_bytes"`
	StackBytes     int64     `json:"stack_bytes"`
	Goroutines     int       `json:"goroutines"`
	Active         int64     `json:"active"`
	BroadcastError string    `json:"broadcast_error,omitempty"`
}

// serverMain runs a server child. It serves WebSocket on one loopback
// listener and takes one control connection on another, on which the client
// child drives the measurement with one-line commands:
//
//	start        begin a measured window            -> ok
//	stop         end it                             -> ctlReply
//	wait N       wait until N handlers are reading  -> ok
//	bcast R SIZE R broadcast rounds, each followed by
//	             an "ack" line from the client       -> ctlReply
//	mem          heap+stack and goroutines vs start -> ctlReply
//	quit         exit
func serverMain(o *childOpts) error {
	limit := raiseNoFile(uint64(o.conns) + 1024)
	s, err := newLibServer(o.lib, o.mode, o.suite == "broadcast")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctlLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s.handler, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = srv.Serve(ln) }()

	runtime.GC()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	baseG := runtime.NumGoroutine()

	hello, _ := json.Marshal(serverHello{Addr: ln.Addr().String(), Ctl: ctlLn.Addr().String(), Limit: limit})
	fmt.Fprintf(os.Stdout, "%s\n", hello)

	ctl, err := ctlLn.Accept()
	if err != nil {
		return err
	}
	ctlLn.Close()
	br := bufio.NewReader(ctl)
	reply := func(v any) error {
		b, _ := json.Marshal(v)
		_, err := ctl.Write(append(b, '\n'))
		return err
	}
	var snap snapshot
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil // client gone: done
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "start":
			snap = begin()
			if _, err := io.WriteString(ctl, "ok\n"); err != nil {
				return err
			}
		case "stop":
			st := snap.end()
			if err := reply(ctlReply{Server: st, Active: s.active.Load()}); err != nil {
				return err
			}
		case "wait":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			deadline := time.Now().Add(60 * time.Second)
			for s.active.Load() < n && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			if _, err := fmt.Fprintf(ctl, "ok %d\n", s.active.Load()); err != nil {
				return err
			}
		case "bcast":
			rounds, _ := strconv.Atoi(f[1])
			size, _ := strconv.Atoi(f[2])
			payload := makePayload(size)
			conns := s.snapshotConns()
			var berr error
			snap = begin()
			for i := 0; i < rounds; i++ {
				if err := s.broadcast(conns, payload); err != nil && berr == nil {
					berr = err
				}
				if _, err := br.ReadString('\n'); err != nil {
					return err
				}
			}
			rep := ctlReply{Server: snap.end(), Active: s.active.Load()}
			if berr != nil {
				rep.BroadcastError = berr.Error()
			}
			if err := reply(rep); err != nil {
				return err
			}
		case "mem":
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			// WSBENCH_MEMPROFILE=prefix writes the idle server's heap
			// profile to prefix-<lib>-<pid>.pprof.
			if prefix := os.Getenv("WSBENCH_MEMPROFILE"); prefix != "" {
				if f, err := os.Create(fmt.Sprintf("%s-%s-%d.pprof", prefix, o.lib, os.Getpid())); err == nil {
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}
			rep := ctlReply{
				HeapBytes:  int64(ms.HeapInuse) - int64(base.HeapInuse),
				StackBytes: int64(ms.StackInuse) - int64(base.StackInuse),
				Goroutines: runtime.NumGoroutine() - baseG,
				Active:     s.active.Load(),
			}
			if err := reply(rep); err != nil {
				return err
			}
		case "quit":
			return nil
		default:
			return fmt.Errorf("unknown control command %q", f[0])
		}
	}
}

// wsforgeBroadcast sends payload to every connection as one prepared
// message.
func wsforgeBroadcast(conns []any, payload []byte) error {
	pm, err := wsforge.NewPreparedMessage(wsforge.BinaryMessage, payload)
	if err != nil {
		return err
	}
	var first error
	for _, c := range conns {
		if err := c.(*wsforge.Conn).WritePreparedMessage(pm); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// engineLib is wsforge's Engine: event loops instead of a goroutine per
// connection, messages echoed from OnMessage.
const engineLib = "wsforge-engine"

// engineEcho is the Engine's EventHandler in the bench: it echoes every
// message from the loop, and registers connections for broadcast.
type engineEcho struct{ s *libServer }

func (h *engineEcho) OnOpen(c *wsforge.Conn) {
	h.s.add(c)
	h.s.active.Add(1)
}

func (h *engineEcho) OnMessage(c *wsforge.Conn, mt int, data []byte) {
	c.WriteMessage(mt, data)
}

func (h *engineEcho) OnClose(c *wsforge.Conn, err error) { h.s.active.Add(-1) }

// floorLib is the idle suite's baseline: net/http and a hijacked
// connection, no WebSocket library.
const floorLib = "net/http floor"

// detachedLib is wsforge with the read loop in its own goroutine and the
// HTTP handler returned: idle suite only.
const detachedLib = "wsforge, handler returned"

func floorAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
