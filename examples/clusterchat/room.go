package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// room is a room as one node sees it: the node's connections in it and
// the one reader that follows the room's stream for all of them.
type room struct {
	node *Node
	name string

	ctx  context.Context
	stop context.CancelFunc

	// ready is closed once the reader knows where it starts. A
	// connection reads its backlog only after that, so that every message
	// is either in the backlog or after the reader's start: none falls
	// between the two.
	ready chan struct{}

	mu      sync.Mutex
	clients map[*client]struct{}
	// changed says the list of names here changed since the presence
	// loop last looked.
	changed bool
}

func newRoom(n *Node, name string) *room {
	ctx, stop := context.WithCancel(n.ctx)
	return &room{
		node:    n,
		name:    name,
		ctx:     ctx,
		stop:    stop,
		ready:   make(chan struct{}),
		clients: make(map[*client]struct{}),
	}
}

// read follows the room's stream with a blocking XREAD and hands each new
// entry to every connection of the room on this node, until the room is
// stopped. Redis errors (a restart, say) are retried from the last entry
// handed out, so a reconnect loses nothing.
func (r *room) read() {
	n := r.node
	defer n.readers.Done()

	var last streamID
	for b := newBackoff(); ; b.wait(r.ctx) {
		if r.ctx.Err() != nil {
			return
		}
		id, err := n.newest(r.ctx, r.name)
		if err == nil {
			b.ok(n, "room "+r.name)
			last = id
			break
		}
		b.fail(n, "room "+r.name+": finding the stream's end", err)
	}
	close(r.ready)

	b := newBackoff()
	for r.ctx.Err() == nil {
		streams, err := n.rdb.XRead(r.ctx, &redis.XReadArgs{
			Streams: []string{streamKey(r.name), last.String()},
			Count:   256,
			Block:   n.cfg.ReadBlock,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			b.fail(n, "room "+r.name+": XREAD", err)
			b.wait(r.ctx)
			continue
		}
		b.ok(n, "room "+r.name)
		for _, s := range streams {
			entries, err := toEntries(s.Messages)
			if err != nil {
				n.logf("room %s: %v", r.name, err)
				continue
			}
			for _, e := range entries {
				r.fanOut(e)
				last = e.id
			}
		}
	}
}

func (r *room) fanOut(e entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.clients {
		c.offer(e)
	}
}

// backoff paces retries against a Redis that is away, and logs the
// outage once rather than on every attempt.
type backoff struct {
	delay  time.Duration
	failed bool
}

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) fail(n *Node, what string, err error) {
	if !b.failed {
		n.logf("%s: %v (retrying)", what, err)
	}
	b.failed = true
	b.delay = min(max(2*b.delay, 50*time.Millisecond), 2*time.Second)
}

func (b *backoff) ok(n *Node, what string) {
	if b.failed {
		n.logf("%s: Redis is back", what)
	}
	b.failed = false
	b.delay = 0
}

// wait waits for the current delay, or until ctx ends.
func (b *backoff) wait(ctx context.Context) {
	if b.delay == 0 {
		return
	}
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
