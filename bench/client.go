package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// result is what a client child prints, as one JSON line, at the end of a
// run: its own counters and the server's, for the measured window only.
type result struct {
	Ops        int64     `json:"ops"` // round trips, deliveries or upgrades
	WallNs     int64     `json:"wall_ns"`
	Client     sideStats `json:"client"`
	Server     sideStats `json:"server"`
	Conns      int       `json:"conns"`
	HeapBytes  int64     `json:"heap_bytes,omitempty"`
	StackBytes int64     `json:"stack_bytes,omitempty"`
	Goroutines int       `json:"goroutines,omitempty"`
	Note       string    `json:"note,omitempty"`
	// The deflate suite's counts over the measured window: payload bytes
	// of the server's echoes, the uncompressed size of the messages
	// echoed, echoes with RSV1 set, and data frames of the echoes.
	WireBytes  int64 `json:"wire_bytes,omitempty"`
	PlainBytes int64 `json:"plain_bytes,omitempty"`
	Compressed int64 `json:"compressed,omitempty"`
	Frames     int64 `json:"frames,omitempty"`
	// Extensions is the server's Sec-WebSocket-Extensions response and
	// Takeover whether it keeps its compression context between messages.
	Extensions string `json:"extensions,omitempty"`
	Takeover   bool   `json:"takeover,omitempty"`
	// Background is filled in by the orchestrator: CPUs' worth of work done
	// on the machine by other processes while this run's children lived.
	Background float64 `json:"-"`
	Err        string  `json:"err,omitempty"`
}

// control is the client's end of the server's control connection.
type control struct {
	c  net.Conn
	br *bufio.Reader
}

func dialControl(addr string) (*control, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &control{c: c, br: bufio.NewReader(c)}, nil
}

func (k *control) send(cmd string) error {
	_, err := k.c.Write([]byte(cmd + "\n"))
	return err
}

func (k *control) line() (string, error) {
	_ = k.c.SetReadDeadline(time.Now().Add(120 * time.Second))
	s, err := k.br.ReadString('\n')
	return strings.TrimSpace(s), err
}

// call sends cmd and decodes the one-line answer into v, or just checks
// for "ok" when v is nil.
func (k *control) call(cmd string, v any) error {
	if err := k.send(cmd); err != nil {
		return err
	}
	s, err := k.line()
	if err != nil {
		return fmt.Errorf("control %q: %w", cmd, err)
	}
	if v == nil {
		if !strings.HasPrefix(s, "ok") {
			return fmt.Errorf("control %q: answer %q", cmd, s)
		}
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

func clientMain(o *childOpts) (res result) {
	raiseNoFile(uint64(o.conns) + 1024)
	ctl, err := dialControl(o.ctl)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer func() {
		_ = ctl.send("quit")
		ctl.c.Close()
	}()
	switch o.suite {
	case "echo":
		err = clientEcho(o, ctl, &res)
	case "deflate":
		err = clientDeflate(o, ctl, &res)
	case "deflate-idle":
		err = clientDeflateIdle(o, ctl, &res)
	case "broadcast":
		err = clientBroadcast(o, ctl, &res)
	case "idle":
		err = clientIdle(o, ctl, &res)
	case "handshake":
		err = clientHandshake(o, ctl, &res)
	default:
		err = fmt.Errorf("unknown suite %q", o.suite)
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

// dialAll opens n connections with a few concurrent dialers.
func dialAll[T any](n, workers int, dial func() (T, error)) ([]T, error) {
	out := make([]T, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := dial()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				out[i] = c
			}
		}()
	}
	wg.Wait()
	return out, first
}

func clientEcho(o *childOpts, ctl *control, res *result) error {
	payload := makePayload(o.size)
	conns, err := dialAll(o.conns, 4, func() (echoConn, error) {
		return dialEcho(o.client, o.lib, o.addr, payload)
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
	phase := func(d time.Duration) (int64, error) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		counts := make([]int64, len(conns))
		errs := make([]error, len(conns))
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				counts[i], errs[i] = c.run(&stop)
			}()
		}
		time.Sleep(d)
		stop.Store(true)
		wg.Wait()
		var total int64
		for _, n := range counts {
			total += n
		}
		return total, errors.Join(errs...)
	}
	return measure(o, ctl, res, phase)
}

func clientBroadcast(o *childOpts, ctl *control, res *result) error {
	req := handshakeRequest(o.addr, "")
	conns, err := dialAll(o.conns, 8, func() (*rawConn, error) {
		return rawDial(o.addr, req, 4<<10, nil)
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.closeHard()
			}
		}
	}()
	if err != nil {
		return err
	}
	res.Conns = len(conns)
	if err := ctl.call(fmt.Sprintf("wait %d", len(conns)), nil); err != nil {
		return err
	}
	n := int64(len(conns))
	var delivered atomic.Int64
	roundDone := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	for _, c := range conns {
		go func() {
			for {
				got, err := c.readMessage()
				if err != nil {
					select {
					case readErr <- err:
					default:
					}
					return
				}
				if got != o.size {
					select {
					case readErr <- fmt.Errorf("delivery of %d bytes, want %d", got, o.size):
					default:
					}
					return
				}
				if delivered.Add(1)%n == 0 {
					roundDone <- struct{}{}
				}
			}
		}()
	}
	// rounds runs one bcast command: the server sends a round, the client
	// acknowledges it once every connection has it, and so on.
	rounds := func(r int) (ctlReply, error) {
		var rep ctlReply
		if err := ctl.send(fmt.Sprintf("bcast %d %d", r, o.size)); err != nil {
			return rep, err
		}
		for i := 0; i < r; i++ {
			select {
			case <-roundDone:
			case err := <-readErr:
				return rep, err
			case <-time.After(30 * time.Second):
				return rep, fmt.Errorf("round %d: %d of %d deliveries after 30s", i, delivered.Load()%n, n)
			}
			if err := ctl.send("ack"); err != nil {
				return rep, err
			}
		}
		s, err := ctl.line()
		if err != nil {
			return rep, err
		}
		if err := json.Unmarshal([]byte(s), &rep); err != nil {
			return rep, err
		}
		if rep.BroadcastError != "" {
			return rep, errors.New("server: " + rep.BroadcastError)
		}
		return rep, nil
	}
	warm := o.rounds / 5
	if warm < 1 {
		warm = 1
	}
	if _, err := rounds(warm); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	snap := begin()
	t0 := time.Now()
	rep, err := rounds(o.rounds)
	res.WallNs = int64(time.Since(t0))
	res.Client = snap.end()
	if err != nil {
		return err
	}
	res.Server = rep.Server
	res.Ops = int64(o.rounds) * n
	return nil
}

func clientIdle(o *childOpts, ctl *control, res *result) error {
	req := handshakeRequest(o.addr, "")
	conns, err := dialAll(o.conns, 8, func() (*rawConn, error) {
		rc, err := rawDial(o.addr, req, 512, nil)
		if err == nil {
			rc.br = nil // nothing will be read; do not hold the buffer
		}
		return rc, err
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.closeHard()
			}
		}
	}()
	if err != nil {
		return err
	}
	res.Conns = len(conns)
	return idleMemory(ctl, res, len(conns))
}

// idleMemory waits until n server handlers are in their read loop and
// records the server's memory.
func idleMemory(ctl *control, res *result, n int) error {
	if err := ctl.call(fmt.Sprintf("wait %d", n), nil); err != nil {
		return err
	}
	var rep ctlReply
	if err := ctl.call("mem", &rep); err != nil {
		return err
	}
	if rep.Active < int64(n) {
		return fmt.Errorf("only %d of %d handlers reached their read loop", rep.Active, n)
	}
	res.HeapBytes, res.StackBytes, res.Goroutines = rep.HeapBytes, rep.StackBytes, rep.Goroutines
	return nil
}

func clientHandshake(o *childOpts, ctl *control, res *result) error {
	req := handshakeRequest(o.addr, "")
	phase := func(d time.Duration) (int64, error) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		counts := make([]int64, o.workers)
		errs := make([]error, o.workers)
		for w := 0; w < o.workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				br := bufio.NewReaderSize(nil, 1024)
				for !stop.Load() {
					rc, err := rawDial(o.addr, req, 0, br)
					if err != nil {
						errs[w] = err
						return
					}
					rc.closeClean()
					counts[w]++
				}
			}()
		}
		time.Sleep(d)
		stop.Store(true)
		wg.Wait()
		var total int64
		for _, n := range counts {
			total += n
		}
		return total, errors.Join(errs...)
	}
	res.Conns = o.workers
	return measure(o, ctl, res, phase)
}

// measure runs phase for the warm-up, then again for the measured window
// between the server's "start" and "stop", recording both sides' figures
// in res. phase runs the load for a duration and returns the operations
// done.
func measure(o *childOpts, ctl *control, res *result, phase func(time.Duration) (int64, error)) error {
	if _, err := phase(o.warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := ctl.call("start", nil); err != nil {
		return err
	}
	snap := begin()
	t0 := time.Now()
	n, err := phase(o.duration)
	res.WallNs = int64(time.Since(t0))
	res.Client = snap.end()
	res.Ops = n
	var rep ctlReply
	if cerr := ctl.call("stop", &rep); cerr != nil {
		return cerr
	}
	res.Server = rep.Server
	return err
}
