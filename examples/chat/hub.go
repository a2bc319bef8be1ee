package main

import (
	"context"
	"sync"
	"time"
)

// Config holds the tunables of a chat room. Tests shrink them; main uses
// DefaultConfig.
type Config struct {
	// WriteWait bounds each write to a client, including pings and the
	// final close frame.
	WriteWait time.Duration
	// PongWait is how long a client may stay silent (no message, no pong)
	// before it is considered gone.
	PongWait time.Duration
	// PingPeriod is how often the server pings; it must be shorter than
	// PongWait so that a live client's pong arrives in time.
	PingPeriod time.Duration
	// MaxMessageSize is the largest message accepted from a client.
	MaxMessageSize int64
	// SendBuffer is how many outgoing messages may queue for one client.
	// A client that falls further behind is dropped.
	SendBuffer int
}

// DefaultConfig suits a chat room on the open internet.
var DefaultConfig = Config{
	WriteWait:      10 * time.Second,
	PongWait:       60 * time.Second,
	PingPeriod:     50 * time.Second,
	MaxMessageSize: 4096,
	SendBuffer:     64,
}

// Hub is a chat room. Its Run goroutine alone owns the set of clients;
// everyone else talks to it through channels, so the set needs no lock.
type Hub struct {
	cfg Config

	register   chan *client
	unregister chan *client
	broadcast  chan []byte
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
		broadcast:  make(chan []byte),
		count:      make(chan chan int),
		done:       make(chan struct{}),
	}
}

// Run serves the room until ctx is cancelled, then tells every client
// that the server is going away and returns. Call it once.
func (h *Hub) Run(ctx context.Context) {
	clients := make(map[*client]struct{})
	defer func() {
		close(h.done)
		for c := range clients {
			c.leave(closeGoingAway)
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return

		case c := <-h.register:
			clients[c] = struct{}{}

		case c := <-h.unregister:
			// The client may already be gone: dropped for being slow,
			// with its read pump noticing only later.
			if _, ok := clients[c]; ok {
				delete(clients, c)
				c.leave(closeNormal)
			}

		case msg := <-h.broadcast:
			for c := range clients {
				select {
				case c.send <- msg:
				default:
					// Its queue is full: waiting would stall the whole
					// room on one slow reader, so it goes instead.
					delete(clients, c)
					c.leave(closeTooSlow)
				}
			}

		case reply := <-h.count:
			reply <- len(clients)
		}
	}
}

// ClientCount reports how many clients the hub holds right now, or 0 once
// Run has returned. It is answered by the hub goroutine, so it reflects
// every registration and removal that hub has processed.
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
