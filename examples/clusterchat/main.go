// Command clusterchat is a chat server that runs as several processes
// sharing nothing but a Redis server.
//
// Each room is a Redis stream. The node a message arrives at appends it
// (XADD); every node follows the streams of the rooms its pages are in
// (blocking XREAD) and passes each entry on to them, so every page of a
// room sees the room's messages in one order, the stream's, whichever
// node it is connected to. A page remembers the ID of the last message it
// got and hands it to whichever node it reconnects to, which sends what it
// missed from the stream before the live messages. Who is in a room is
// kept in per-node keys that expire, so a node that dies drops out.
//
//	redis-server &
//	go run . -addr :8081 -redis localhost:6379
//	go run . -addr :8082 -redis localhost:6379
//
// from examples/clusterchat, then open http://localhost:8081 and
// http://localhost:8082.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
)

//go:embed index.html
var indexHTML []byte

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "clusterchat:", err)
		os.Exit(1)
	}
}

// run is main with its arguments and error explicit, for the tests.
func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("clusterchat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := DefaultConfig
	addr := fs.String("addr", "localhost:8081", "address to listen on")
	fs.StringVar(&cfg.RedisAddr, "redis", cfg.RedisAddr, "Redis server `host:port` shared by all nodes")
	fs.StringVar(&cfg.NodeID, "node", "", "this node's `name` in presence keys (default: host-pid-random)")
	fs.Int64Var(&cfg.MaxLen, "maxlen", cfg.MaxLen, "cap on each room's stream (XADD MAXLEN ~)")
	fs.Int64Var(&cfg.MaxMessageSize, "max-message", cfg.MaxMessageSize, "largest message a page may send, in bytes (larger: close 1009)")
	fs.Int64Var(&cfg.History, "history", cfg.History, "past messages a new page gets")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.MaxLen < 1 || cfg.MaxMessageSize < 64 || cfg.History < 0 {
		return errors.New("-maxlen must be at least 1, -max-message at least 64, -history at least 0")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	node, err := NewNode(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		node.Shutdown(context.Background())
		return err
	}
	log.Printf("clusterchat node %s on http://%s, Redis %s", node.ID(), ln.Addr(), cfg.RedisAddr)

	served := make(chan error, 1)
	go func() { served <- node.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		log.Print("shutting down")
	}
	// Pages get a 1001 close and reconnect to another node; a second
	// Ctrl-C kills the process without waiting.
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.WriteWait)
	defer cancel()
	return errors.Join(err, node.Shutdown(shutdownCtx))
}

// go-redis logs every failed dial of its pool; while Redis restarts that is
// a line per connection attempt. The node logs an outage once, and its end.
func init() { redis.SetLogger(quietLogger{}) }

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
