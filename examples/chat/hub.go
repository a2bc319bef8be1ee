package main

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"
)

// Config holds the tunables of a chat server. Tests shrink them; main uses
// DefaultConfig.
type Config struct {
	// WriteWait bounds each write to a client, including the final close
	// frame.
	WriteWait time.Duration
	// PongWait is how long a client may stay silent (no message, no pong)
	// before it is considered gone: the connection's keepalive closes it
	// (close 1011) after PongWait of silence, and before
	// PingPeriod+PongWait.
	PongWait time.Duration
	// PingPeriod is how often the server pings; it must be shorter than
	// PongWait so that a live client's pong arrives in time.
	PingPeriod time.Duration
	// MaxMessageSize is the largest message accepted from a client.
	MaxMessageSize int64
	// SendBuffer is how many outgoing messages may queue for one client.
	// A client that falls further behind is dropped.
	SendBuffer int
	// Token, if not empty, must be the token query parameter of every
	// WebSocket request; one without it gets 401 and is not upgraded.
	Token string
}

// DefaultConfig suits a chat server on the open internet.
var DefaultConfig = Config{
	WriteWait:      10 * time.Second,
	PongWait:       60 * time.Second,
	PingPeriod:     50 * time.Second,
	MaxMessageSize: 4096,
	SendBuffer:     64,
}

// event is what clients receive, as JSON: a message in their room
// (Type "message", From and Text), or who is in the room (Type
// "presence", Users sorted), sent to everyone in it whenever someone
// joins or leaves.
type event struct {
	Type  string   `json:"type"`
	Room  string   `json:"room"`
	From  string   `json:"from,omitempty"`
	Text  string   `json:"text,omitempty"`
	Users []string `json:"users,omitempty"`
}

// post is a message on its way to a room.
type post struct {
	from *client
	text string
}

// Hub is the chat server's rooms. Its Run goroutine alone owns them;
// everyone else talks to it through channels, so they need no lock.
type Hub struct {
	cfg Config

	register   chan *client
	unregister chan *client
	broadcast  chan post
	count      chan chan int

	// done is closed when Run returns, so that pumps and handlers never
	// block on a hub that is no longer listening.
	done chan struct{}

	// pumps counts the client goroutines, for Wait.
	pumps sync.WaitGroup
}

// NewHub returns a hub that does nothing until Run is called.
func NewHub(cfg Config) *Hub {
	return &Hub{
		cfg:        cfg,
		register:   make(chan *client),
		unregister: make(chan *client),
		broadcast:  make(chan post),
		count:      make(chan chan int),
		done:       make(chan struct{}),
	}
}

type room map[*client]struct{}

// Run serves the rooms until ctx is cancelled, then tells every client
// that the server is going away and returns. Call it once.
func (h *Hub) Run(ctx context.Context) {
	rooms := make(map[string]room)
	defer func() {
		close(h.done)
		for _, r := range rooms {
			for c := range r {
				c.leave(closeGoingAway)
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return

		case c := <-h.register:
			r := rooms[c.room]
			if r == nil {
				r = make(room)
				rooms[c.room] = r
			}
			r[c] = struct{}{}
			h.presence(rooms, c.room)

		case c := <-h.unregister:
			// The client may already be gone: dropped for being slow,
			// with its read pump noticing only later.
			if _, ok := rooms[c.room][c]; ok {
				h.remove(rooms, c, closeNormal)
				h.presence(rooms, c.room)
			}

		case p := <-h.broadcast:
			// A sender dropped meanwhile for being slow is no longer in
			// the room and does not speak in it.
			if _, ok := rooms[p.from.room][p.from]; !ok {
				continue
			}
			msg := event{Type: "message", Room: p.from.room, From: p.from.name, Text: p.text}
			if h.deliver(rooms, p.from.room, msg) {
				h.presence(rooms, p.from.room)
			}

		case reply := <-h.count:
			n := 0
			for _, r := range rooms {
				n += len(r)
			}
			reply <- n
		}
	}
}

func (h *Hub) remove(rooms map[string]room, c *client, why leaveReason) {
	delete(rooms[c.room], c)
	if len(rooms[c.room]) == 0 {
		delete(rooms, c.room)
	}
	c.leave(why)
}

// deliver queues ev for everyone in the room and reports whether it
// dropped anyone: a client whose queue is full goes, since waiting for it
// would stall every room on one slow reader.
func (h *Hub) deliver(rooms map[string]room, name string, ev event) (dropped bool) {
	data, _ := json.Marshal(ev)
	for c := range rooms[name] {
		select {
		case c.send <- data:
		default:
			h.remove(rooms, c, closeTooSlow)
			dropped = true
		}
	}
	return dropped
}

// presence tells everyone in the room who is in it, again if telling
// them dropped someone (each round shrinks the room, so it ends).
func (h *Hub) presence(rooms map[string]room, name string) {
	for {
		users := make([]string, 0, len(rooms[name]))
		for c := range rooms[name] {
			users = append(users, c.name)
		}
		if len(users) == 0 {
			return
		}
		sort.Strings(users)
		if !h.deliver(rooms, name, event{Type: "presence", Room: name, Users: users}) {
			return
		}
	}
}

// ClientCount reports how many clients the hub holds right now, in all
// rooms, or 0 once Run has returned. It is answered by the hub goroutine,
// so it reflects every registration and removal that hub has processed.
func (h *Hub) ClientCount() int {
	reply := make(chan int, 1)
	select {
	case h.count <- reply:
		return <-reply
	case <-h.done:
		return 0
	}
}

// Wait blocks until the handlers and goroutines of every client the hub
// ever served have returned. Call it only after Run has returned and the
// HTTP server passing requests to the hub has been closed (or shut down),
// so that no new client can start meanwhile.
func (h *Hub) Wait() {
	h.pumps.Wait()
}
