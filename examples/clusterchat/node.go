package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Config holds a node's settings. main fills it from flags; tests shrink
// the timings.
type Config struct {
	// RedisAddr is the host:port of the Redis server all nodes share.
	RedisAddr string
	// NodeID names this node in presence keys; it must differ between
	// nodes. Empty means a random one.
	NodeID string
	// MaxLen caps each room's stream (XADD MAXLEN ~): a page that has
	// been away for more than about that many messages of its room is
	// told that some are gone.
	MaxLen int64
	// MaxMessageSize is the largest message a page may send; a larger one
	// closes its connection with 1009 (message too big).
	MaxMessageSize int64
	// History is how many past messages a page that has seen nothing of
	// the room gets first.
	History int64
	// WriteWait bounds every write to a page, close frames included.
	WriteWait time.Duration
	// PongWait is how long a page may stay silent before it counts as
	// gone; PingPeriod, shorter, is how often the node pings it.
	PongWait, PingPeriod time.Duration
	// SendTimeout bounds one Redis command on behalf of a page.
	SendTimeout time.Duration
	// DedupWindow is how long a message's mid is remembered, so that a
	// page resending it after a reconnect does not post it twice.
	DedupWindow time.Duration
	// PresenceTTL is the life of this node's presence keys; they are
	// renewed every PresenceInterval, which must be well under it, so a
	// node that dies drops out of every room's list after at most
	// PresenceTTL.
	PresenceTTL, PresenceInterval time.Duration
	// ReadBlock is how long one XREAD blocks when the room is quiet.
	ReadBlock time.Duration
	// LiveBuffer is how many new messages may wait for one page. A page
	// further behind is not dropped: it reads what it missed from Redis.
	LiveBuffer int
}

// DefaultConfig is what main starts from.
var DefaultConfig = Config{
	RedisAddr:        "localhost:6379",
	MaxLen:           10000,
	MaxMessageSize:   4096,
	History:          50,
	WriteWait:        10 * time.Second,
	PongWait:         60 * time.Second,
	PingPeriod:       50 * time.Second,
	SendTimeout:      5 * time.Second,
	DedupWindow:      10 * time.Minute,
	PresenceTTL:      5 * time.Second,
	PresenceInterval: time.Second,
	ReadBlock:        5 * time.Second,
	LiveBuffer:       256,
}

// Node is one chat server. Nodes share nothing but the Redis server: any
// number of them, in any processes, serve the same rooms.
type Node struct {
	cfg Config
	rdb *redis.Client

	// ctx ends the node's background work: room readers and the
	// presence loop.
	ctx    context.Context
	cancel context.CancelFunc
	// quit tells every connection to close with 1001.
	quit chan struct{}

	mu      sync.Mutex
	closing bool
	rooms   map[string]*room
	// gone are rooms this node has left whose presence keys are still
	// to be deleted.
	gone []string
	srv  *http.Server

	// presenceKick asks the presence loop for a round now: someone
	// joined or left.
	presenceKick chan struct{}

	// conns counts connection handlers, from before the upgrade, since
	// an http.Server stops tracking a handler once it hijacks the
	// connection; readers counts room readers.
	conns    sync.WaitGroup
	readers  sync.WaitGroup
	presence sync.WaitGroup

	// lagged counts the times a page's queue overflowed and it caught
	// up from Redis; the tests check that the path was taken.
	lagged atomic.Int64
}

// NewNode connects to Redis and starts the node's background work. It
// fails if Redis does not answer: a node that cannot store messages has
// nothing to offer.
func NewNode(cfg Config) (*Node, error) {
	if cfg.NodeID == "" {
		cfg.NodeID = randomID()
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: cfg.RedisAddr,
		// Every room reader holds a connection in a blocking XREAD, and
		// every page's sends wait on one: the default pool (10 per CPU)
		// would make a busy node queue for connections.
		PoolSize: 128,
		// Plain open-source Redis has no maintenance notifications;
		// asking for them only costs a round trip per connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	if err := ping(context.Background(), rdb, cfg.RedisAddr, cfg.SendTimeout); err != nil {
		rdb.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:          cfg,
		rdb:          rdb,
		ctx:          ctx,
		cancel:       cancel,
		quit:         make(chan struct{}),
		rooms:        make(map[string]*room),
		presenceKick: make(chan struct{}, 1),
	}
	n.presence.Add(1)
	go n.presenceLoop()
	return n, nil
}

func randomID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// ID returns the node's name in presence keys.
func (n *Node) ID() string { return n.cfg.NodeID }

// Handler returns the node's routes: the page at / and the socket at /ws.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	mux.HandleFunc("/ws", n.serveWS)
	return mux
}

// Serve serves HTTP on ln until Shutdown; it returns nil after a
// shutdown and the listener's error otherwise.
func (n *Node) Serve(ln net.Listener) error {
	srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 10 * time.Second}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		ln.Close()
		return nil
	}
	n.srv = srv
	n.mu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting pages, closes every connection with 1001
// (going away) so that pages reconnect elsewhere, waits for them within
// ctx, removes this node from every room's presence and disconnects from
// Redis.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	n.closing = true
	srv := n.srv
	n.mu.Unlock()
	// The pages hear 1001 first: srv.Shutdown may wait seconds for idle
	// HTTP connections a browser opened early, and the WebSocket ones are
	// hijacked, so it would not end them anyway.
	close(n.quit)
	var err error
	if srv != nil {
		err = srv.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { n.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("connections still open: %w", ctx.Err()))
	}
	n.cancel()
	n.presence.Wait()
	err = errors.Join(err, n.clearPresence())
	// Closing the client ends the readers' blocking XREADs, which a
	// cancelled context does not.
	err = errors.Join(err, n.rdb.Close())
	n.readers.Wait()
	return err
}

// abort stops the node the way a crash would, for tests: connections cut
// without a close frame, presence left to expire, nothing cleaned up.
func (n *Node) abort() {
	n.mu.Lock()
	n.closing = true
	srv := n.srv
	var clients []*client
	for _, r := range n.rooms {
		r.mu.Lock()
		for c := range r.clients {
			clients = append(clients, c)
		}
		r.mu.Unlock()
	}
	n.mu.Unlock()
	n.cancel()
	if srv != nil {
		srv.Close()
	}
	for _, c := range clients {
		c.conn.NetConn().Close()
	}
	n.conns.Wait()
	n.presence.Wait()
	n.rdb.Close()
	n.readers.Wait()
}

// join adds c to its room on this node, starting the room's reader if c
// is the room's first connection here. It fails once the node is closing.
func (n *Node) join(c *client) (*room, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return nil, false
	}
	r := n.rooms[c.roomName]
	if r == nil {
		r = newRoom(n, c.roomName)
		n.rooms[c.roomName] = r
		n.readers.Add(1)
		go r.read()
	}
	r.mu.Lock()
	r.clients[c] = struct{}{}
	r.changed = true
	r.mu.Unlock()
	n.kickPresence()
	return r, true
}

// leave takes c out of its room, and the room off this node when it was
// the last one there.
func (n *Node) leave(c *client) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := c.room
	r.mu.Lock()
	delete(r.clients, c)
	r.changed = true
	empty := len(r.clients) == 0
	r.mu.Unlock()
	if empty && n.rooms[r.name] == r {
		delete(n.rooms, r.name)
		r.stop()
		n.gone = append(n.gone, r.name)
	}
	n.kickPresence()
}

func (n *Node) kickPresence() {
	select {
	case n.presenceKick <- struct{}{}:
	default:
	}
}

// logf logs with the node's ID, which tells apart the nodes of a test or
// of a shared terminal.
func (n *Node) logf(format string, args ...any) {
	log.Printf("node %s: "+format, append([]any{n.cfg.NodeID}, args...)...)
}
