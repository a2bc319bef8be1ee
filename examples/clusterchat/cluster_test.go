package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cluster is three independent nodes (each its own http.Server and Redis
// client; they share no Go state) on one Redis, and pages spread over
// them.
type cluster struct {
	t       testing.TB
	redis   *redisServer
	nodes   []*testNode
	clients []*tclient
	rooms   map[string][]*tclient

	acks sync.Map // mid -> stream ID

	mu    sync.Mutex
	acked int64
	// at holds channels to close when acked reaches their count.
	at map[int64]chan struct{}
	// nacked is closed at the first nack.
	nacked chan struct{}
}

func (cl *cluster) nack() {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	select {
	case <-cl.nacked:
	default:
		close(cl.nacked)
	}
}

// when returns a channel closed once n messages in all have been
// acknowledged.
func (cl *cluster) when(n int64) <-chan struct{} {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.whenLocked(n)
}

func (cl *cluster) whenLocked(n int64) <-chan struct{} {
	ch := make(chan struct{})
	if cl.acked >= n {
		close(ch)
	} else {
		cl.at[n] = ch
	}
	return ch
}

func (cl *cluster) ack(mid, id string) {
	cl.acks.Store(mid, id)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.acked++
	if ch, ok := cl.at[cl.acked]; ok {
		close(ch)
		delete(cl.at, cl.acked)
	}
}

func startCluster(t testing.TB, nodes, clients, rooms int) *cluster {
	cl := &cluster{t: t, redis: startRedis(t), rooms: make(map[string][]*tclient), at: make(map[int64]chan struct{}), nacked: make(chan struct{})}
	var urls []string
	for i := range nodes {
		n := startNode(t, testConfig(cl.redis.addr, fmt.Sprintf("node%d", i)))
		cl.nodes = append(cl.nodes, n)
		urls = append(urls, n.url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	// Registered after the nodes' cleanups, so it runs before them: the
	// pages go first, then the nodes shut down.
	t.Cleanup(func() { cancel(); running.Wait() })
	for i := range clients {
		room := fmt.Sprintf("room%d", i%rooms)
		c := newTClient(fmt.Sprintf("page%02d", i), room, urls, i%nodes, cl.ack, cl.nack)
		cl.clients = append(cl.clients, c)
		cl.rooms[room] = append(cl.rooms[room], c)
		running.Add(1)
		go func() { defer running.Done(); c.run(ctx) }()
	}
	for _, c := range cl.clients {
		waitFor(t, c.connected, c.name+" connected")
	}
	return cl
}

func waitFor(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("%s: not within %v", what, guard)
	}
}

// sendAll has the pages of each room send count messages between them,
// round robin, and waits until all are acknowledged. It returns the
// mids sent, by room.
func (cl *cluster) sendAll(prefix string, count int) map[string][]string {
	sent, acked := cl.queue(prefix, count)
	waitFor(cl.t, acked, fmt.Sprintf("%d messages acknowledged", count))
	return sent
}

// queue gives the pages count messages to send and returns the mids, by
// room, and a channel closed once all are acknowledged.
func (cl *cluster) queue(prefix string, count int) (map[string][]string, <-chan struct{}) {
	sent := make(map[string][]string)
	cl.mu.Lock()
	all := cl.whenLocked(cl.acked + int64(count))
	cl.mu.Unlock()
	names := slices.Sorted(maps.Keys(cl.rooms))
	for k := range count {
		room := names[k%len(names)]
		pages := cl.rooms[room]
		mid := fmt.Sprintf("%s%05d", prefix, k)
		pages[(k/len(names))%len(pages)].add <- inMessage{Mid: mid, Text: "message " + mid}
		sent[room] = append(sent[room], mid)
	}
	return sent, all
}

// settle sends one last message in every room and waits for every page
// to get it: by then each has got everything before it. It returns the
// mids it sent, by room.
func (cl *cluster) settle(prefix string) map[string][]string {
	t := cl.t
	sent := cl.sendAll(prefix, len(cl.rooms))
	for room, pages := range cl.rooms {
		id, ok := cl.acks.Load(sent[room][0])
		require.True(t, ok)
		for _, c := range pages {
			waitFor(t, c.reach(id.(string)), c.name+" got "+room+"'s last message")
		}
	}
	return sent
}

// check compares what every page got with its room's stream in Redis:
// the same entries in the same order, each once, and every mid sent in
// it exactly once.
func (cl *cluster) check(sent map[string][]string) {
	t := cl.t
	rdb := newRedisClient(t, cl.redis.addr)
	for room, pages := range cl.rooms {
		ids, mids := streamIDs(t, rdb, room)
		want := slices.Clone(sent[room])
		slices.Sort(want)
		got := slices.Clone(mids)
		slices.Sort(got)
		require.Equal(t, want, got, "room %s: the stream must hold each message sent exactly once", room)
		for _, c := range pages {
			c.mu.Lock()
			assert.Empty(t, c.problems)
			assert.Equal(t, ids, c.ids, "%s: every message of %s once, in the stream's order", c.name, room)
			c.mu.Unlock()
		}
	}
}

func merge(into, from map[string][]string) {
	for k, v := range from {
		into[k] = append(into[k], v...)
	}
}

// TestCluster: 3 nodes, 60 pages in 4 rooms, 2,000 messages. Halfway
// through, a node dies; its pages reconnect to the others and resume.
// Then, with nothing being written, Redis is killed and restarted, and
// traffic resumes. Every page must get every message of its room once,
// in the same order as every other page of the room.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("3 nodes, 60 pages, 2,000 messages: not in -short")
	}
	start := time.Now()
	cl := startCluster(t, 3, 60, 4)
	const total = 2000

	killed := make(chan struct{})
	half := cl.when(total / 2)
	go func() { <-half; cl.nodes[2].kill(); close(killed) }()
	sent := cl.sendAll("a", total)
	waitFor(t, killed, "node2 killed")
	merge(sent, cl.settle("marker-a"))
	cl.check(sent)
	for i, c := range cl.clients {
		c.mu.Lock()
		if i%3 == 2 {
			assert.Positive(t, c.reconnects, "%s was on the node killed", c.name)
		}
		assert.NotEqual(t, cl.nodes[2].url, c.nodes[c.cur], "%s is still on the dead node", c.name)
		c.mu.Unlock()
	}
	t.Logf("2,000 messages through 3 nodes, one killed halfway: %v", time.Since(start).Round(time.Millisecond))

	// Nothing is being written: every message so far is acknowledged.
	// Redis dies; pages try to send and are told their messages are not
	// stored; Redis comes back and they are.
	restart := time.Now()
	cl.redis.kill()
	more, acked := cl.queue("b", 200)
	waitFor(t, cl.nacked, "a nack while Redis is down")
	cl.redis.start()
	waitFor(t, acked, "200 messages acknowledged after the restart")
	merge(sent, more)
	merge(sent, cl.settle("marker-b"))
	cl.check(sent)
	t.Logf("Redis killed, restarted and 200 more messages through: %v", time.Since(restart).Round(time.Millisecond))
}
