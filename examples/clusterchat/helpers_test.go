package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// guard bounds every wait in these tests; reaching it is a failure, not a
// way of letting time pass. It is generous because CI is a loaded 2-core
// machine running the race detector.
const guard = 60 * time.Second

func TestMain(m *testing.M) {
	// The exit-status test runs this binary as the program itself.
	if os.Getenv("CLUSTERCHAT_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testConfig returns a node configuration with presence shortened so that
// a dead node drops out within a test's patience, and everything else
// long enough never to fire by accident.
func testConfig(redisAddr, id string) Config {
	cfg := DefaultConfig
	cfg.RedisAddr = redisAddr
	cfg.NodeID = id
	cfg.History = 0
	cfg.PongWait = time.Minute
	cfg.PingPeriod = 50 * time.Second
	cfg.PresenceTTL = 2 * time.Second
	cfg.PresenceInterval = 200 * time.Millisecond
	return cfg
}

// testNode is a node serving on loopback, shut down when the test ends
// unless the test has aborted it.
type testNode struct {
	*Node
	url     string
	served  chan error
	aborted bool
}

func startNode(t testing.TB, cfg Config) *testNode {
	t.Helper()
	n, err := NewNode(cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tn := &testNode{Node: n, url: "ws://" + ln.Addr().String() + "/ws", served: make(chan error, 1)}
	go func() { tn.served <- n.Serve(ln) }()
	t.Cleanup(func() {
		if !tn.aborted {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				t.Errorf("node %s shutdown: %v", n.ID(), err)
			}
		}
		<-tn.served
	})
	return tn
}

// kill stops the node as a crash would.
func (tn *testNode) kill() {
	tn.aborted = true
	tn.abort()
}

// wsURL is the node's socket URL with the given query.
func wsURL(base string, q map[string]string) string {
	v := url.Values{}
	for k, s := range q {
		v.Set(k, s)
	}
	return base + "?" + v.Encode()
}

// serverMessage is any message a node sends, decoded.
type serverMessage struct {
	Type  string   `json:"type"`
	ID    string   `json:"id"`
	Name  string   `json:"name"`
	Text  string   `json:"text"`
	Mid   string   `json:"mid"`
	Node  string   `json:"node"`
	Users []string `json:"users"`
	Error string   `json:"error"`
}

// dial connects to a node and returns the connection, having read its
// hello.
func dial(t testing.TB, base string, q map[string]string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(base, q), nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	m := readMsg(t, conn)
	require.Equal(t, "hello", m.Type)
	return conn
}

// readMsg reads one message, failing the test after guard.
func readMsg(t testing.TB, conn *websocket.Conn) serverMessage {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(guard))
	_, data, err := conn.ReadMessage()
	require.NoError(t, err)
	var m serverMessage
	require.NoError(t, json.Unmarshal(data, &m))
	return m
}

// readUntil reads messages until one satisfies ok, and returns it.
func readUntil(t testing.TB, conn *websocket.Conn, ok func(serverMessage) bool) serverMessage {
	t.Helper()
	for {
		if m := readMsg(t, conn); ok(m) {
			return m
		}
	}
}

func send(t testing.TB, conn *websocket.Conn, mid, text string) {
	t.Helper()
	data, err := json.Marshal(inMessage{Mid: mid, Text: text})
	require.NoError(t, err)
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, data))
}

// streamIDs returns the IDs and mids of the whole stream of room, read
// straight from Redis: the order every page of the room must have seen.
func streamIDs(t testing.TB, rdb *redis.Client, room string) (ids, mids []string) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), streamKey(room), "-", "+").Result()
	require.NoError(t, err)
	for _, m := range msgs {
		ids = append(ids, m.ID)
		mids = append(mids, fmt.Sprint(m.Values["mid"]))
	}
	return ids, mids
}

func newRedisClient(t testing.TB, addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
