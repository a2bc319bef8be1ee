package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/wsforge/websocket"
)

// tclient is a page as the cluster tests see it: it stays in one room,
// reconnects to the next node whenever its connection ends, passing the
// last ID it got, and sends the messages it is given one at a time, each
// until it is acknowledged, resending after a reconnect or a nack with
// the same mid. It records every message it gets, and what went wrong.
type tclient struct {
	name, room string
	nodes      []string // node URLs; it starts on nodes[cur]
	add        chan inMessage
	onAck      func(mid, id string)
	onNack     func()
	// onMsg, if set, sees every message as it arrives.
	onMsg func(c *tclient, m serverMessage, at time.Time)

	connected chan struct{} // closed at its first hello

	mu         sync.Mutex
	cur        int
	ids, mids  []string
	last       streamID
	problems   []string
	reconnects int
	wantID     streamID
	reached    chan struct{}
}

func newTClient(name, room string, nodes []string, cur int, onAck func(mid, id string), onNack func()) *tclient {
	return &tclient{
		name: name, room: room, nodes: nodes, cur: cur, onAck: onAck, onNack: onNack,
		add:       make(chan inMessage, 4096),
		connected: make(chan struct{}),
	}
}

// run connects and reconnects until ctx ends.
func (c *tclient) run(ctx context.Context) {
	var queue []inMessage
	failures := 0
	for ctx.Err() == nil {
		c.mu.Lock()
		q := map[string]string{"room": c.room, "name": c.name}
		if c.last != (streamID{}) {
			q["after"] = c.last.String()
		}
		url := c.nodes[c.cur]
		c.mu.Unlock()
		d := websocket.Dialer{HandshakeTimeout: guard}
		conn, _, err := d.DialContext(ctx, wsURL(url, q), nil)
		if err == nil {
			failures = 0
			queue = c.session(ctx, conn, queue)
		} else if failures++; failures >= len(c.nodes) {
			// Every node refused: back off rather than spin.
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		c.mu.Lock()
		if ctx.Err() == nil {
			c.reconnects++
			c.cur = (c.cur + 1) % len(c.nodes)
		}
		c.mu.Unlock()
	}
}

// session serves one connection until it ends, and returns the messages
// still to be sent (the first one perhaps sent but not acknowledged).
func (c *tclient) session(ctx context.Context, conn *websocket.Conn, queue []inMessage) []inMessage {
	defer conn.Close()
	in := make(chan serverMessage, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m serverMessage
			if err := json.Unmarshal(data, &m); err != nil {
				c.problem("%v", err)
				return
			}
			in <- m
		}
	}()
	defer func() {
		conn.Close()
		// Drain, so the reader can end.
		for {
			select {
			case <-in:
			case <-readDone:
				return
			}
		}
	}()

	joined, outstanding := false, false
	var retry <-chan time.Time
	sendNext := func() bool {
		if !joined || outstanding || retry != nil || len(queue) == 0 {
			return true
		}
		data, _ := json.Marshal(queue[0])
		conn.SetWriteDeadline(time.Now().Add(guard))
		outstanding = conn.WriteMessage(websocket.TextMessage, data) == nil
		return outstanding
	}
	for {
		if !sendNext() {
			return queue
		}
		select {
		case <-ctx.Done():
			return queue
		case <-readDone:
			return queue
		case m := <-c.add:
			queue = append(queue, m)
		case <-retry:
			retry = nil
		case m := <-in:
			switch m.Type {
			case "hello":
				if !joined {
					joined = true
					select {
					case <-c.connected:
					default:
						close(c.connected)
					}
				}
			case "msg":
				c.record(m)
			case "ack", "nack":
				if !outstanding || m.Mid != queue[0].Mid {
					c.problem("%s for %s, not the message outstanding", m.Type, m.Mid)
					continue
				}
				outstanding = false
				if m.Type == "nack" {
					c.onNack()
					// Redis is away: try again shortly.
					retry = time.After(50 * time.Millisecond)
					continue
				}
				queue = queue[1:]
				c.onAck(m.Mid, m.ID)
			}
		}
	}
}

func (c *tclient) record(m serverMessage) {
	at := time.Now()
	id, err := parseStreamID(m.ID)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.problemLocked("message with a bad ID %q", m.ID)
		return
	case !c.last.less(id):
		c.problemLocked("message %s after %s: a duplicate or out of order", m.ID, c.last)
		return
	}
	c.ids = append(c.ids, m.ID)
	c.mids = append(c.mids, m.Mid)
	c.last = id
	if c.reached != nil && !id.less(c.wantID) {
		close(c.reached)
		c.reached = nil
	}
	if c.onMsg != nil {
		c.onMsg(c, m, at)
	}
}

// reach returns a channel closed once the client has got the message id
// or a later one.
func (c *tclient) reach(id string) <-chan struct{} {
	want, _ := parseStreamID(id)
	ch := make(chan struct{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.less(want) {
		close(ch)
		return ch
	}
	c.wantID, c.reached = want, ch
	return ch
}

func (c *tclient) problem(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problemLocked(format, args...)
}

func (c *tclient) problemLocked(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(c.name+": "+format, args...))
}
