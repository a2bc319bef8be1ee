package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// closeOf reads until the connection ends and returns the close frame the
// node sent.
func closeOf(t *testing.T, conn *websocket.Conn) *websocket.CloseError {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(guard))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		return ce
	}
}

func TestRefusedRequests(t *testing.T) {
	rs := startRedis(t)
	node := startNode(t, testConfig(rs.addr, "n1"))

	tests := []struct {
		name  string
		query map[string]string
		// send, if not nil, is sent once the page is in.
		send   func(*websocket.Conn) error
		code   int
		reason string
	}{
		{"no room", map[string]string{"name": "ann"}, nil, websocket.ClosePolicyViolation, badRoom},
		{"room with a space", map[string]string{"room": "a b", "name": "ann"}, nil, websocket.ClosePolicyViolation, badRoom},
		{"room with a slash", map[string]string{"room": "a/b", "name": "ann"}, nil, websocket.ClosePolicyViolation, badRoom},
		{"room not ASCII", map[string]string{"room": "café", "name": "ann"}, nil, websocket.ClosePolicyViolation, badRoom},
		{"room too long", map[string]string{"room": strings.Repeat("r", maxRoomLen+1), "name": "ann"}, nil, websocket.ClosePolicyViolation, badRoom},
		{"no name", map[string]string{"room": "lobby"}, nil, websocket.ClosePolicyViolation, badName},
		{"blank name", map[string]string{"room": "lobby", "name": "  "}, nil, websocket.ClosePolicyViolation, badName},
		{"name with a control character", map[string]string{"room": "lobby", "name": "a\x1bb"}, nil, websocket.ClosePolicyViolation, badName},
		{"name too long", map[string]string{"room": "lobby", "name": strings.Repeat("é", maxNameLen+1)}, nil, websocket.ClosePolicyViolation, badName},
		{"after not an ID", map[string]string{"room": "lobby", "name": "ann", "after": "$"}, nil, websocket.ClosePolicyViolation, badAfter},
		{
			"message over the size limit",
			map[string]string{"room": "lobby", "name": "ann"},
			func(c *websocket.Conn) error {
				return c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), int(DefaultConfig.MaxMessageSize)+1))
			},
			websocket.CloseMessageTooBig, "",
		},
		{
			"binary message",
			map[string]string{"room": "lobby", "name": "ann"},
			func(c *websocket.Conn) error { return c.WriteMessage(websocket.BinaryMessage, []byte("{}")) },
			websocket.CloseUnsupportedData, badType,
		},
		{
			"message not JSON",
			map[string]string{"room": "lobby", "name": "ann"},
			func(c *websocket.Conn) error { return c.WriteMessage(websocket.TextMessage, []byte("hello")) },
			websocket.CloseInvalidFramePayloadData, badJSON,
		},
		{
			"bad mid",
			map[string]string{"room": "lobby", "name": "ann"},
			func(c *websocket.Conn) error {
				return c.WriteMessage(websocket.TextMessage, []byte(`{"mid":"a b","text":"hi"}`))
			},
			websocket.ClosePolicyViolation, badMid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, _, err := websocket.DefaultDialer.Dial(wsURL(node.url, tt.query), nil)
			require.NoError(t, err)
			defer conn.Close()
			if tt.send != nil {
				require.Equal(t, "hello", readMsg(t, conn).Type)
				require.NoError(t, tt.send(conn))
			}
			ce := closeOf(t, conn)
			assert.Equal(t, tt.code, ce.Code)
			assert.Equal(t, tt.reason, ce.Text)
			assert.LessOrEqual(t, len(ce.Text), 123, "a close reason must fit in a control frame")
		})
	}

	// What is allowed gets in and is stored: the size limit is on the
	// whole frame, so a message just under it passes.
	conn := dial(t, node.url, map[string]string{"room": "Lobby-2_x", "name": "Zoë the 2nd"})
	text := strings.Repeat("y", int(DefaultConfig.MaxMessageSize)-len(`{"mid":"m1","text":""}`))
	send(t, conn, "m1", text)
	// The ack and the message itself come in either order.
	var ack, msg serverMessage
	for ack.Type == "" || msg.Type == "" {
		switch m := readMsg(t, conn); m.Type {
		case "ack":
			ack = m
		case "msg":
			msg = m
		}
	}
	assert.Equal(t, "m1", ack.Mid)
	assert.Equal(t, serverMessage{Type: "msg", ID: ack.ID, Name: "Zoë the 2nd", Text: text, Mid: "m1"}, msg)
}

// A page sending the same mid again (after a lost ack) gets the first
// message's ID back, and the room sees the message once.
func TestResendIsStoredOnce(t *testing.T) {
	rs := startRedis(t)
	node := startNode(t, testConfig(rs.addr, "n1"))
	conn := dial(t, node.url, map[string]string{"room": "r", "name": "ann"})
	send(t, conn, "same", "once")
	first := readUntil(t, conn, func(m serverMessage) bool { return m.Type == "ack" })
	send(t, conn, "same", "once")
	second := readUntil(t, conn, func(m serverMessage) bool { return m.Type == "ack" })
	assert.Equal(t, first.ID, second.ID)
	ids, _ := streamIDs(t, newRedisClient(t, rs.addr), "r")
	assert.Equal(t, []string{first.ID}, ids)
}

func TestPresenceAcrossNodes(t *testing.T) {
	rs := startRedis(t)
	a := startNode(t, testConfig(rs.addr, "a"))
	b := startNode(t, testConfig(rs.addr, "b"))

	users := func(want ...string) func(serverMessage) bool {
		return func(m serverMessage) bool {
			return m.Type == "presence" && strings.Join(m.Users, ",") == strings.Join(want, ",")
		}
	}
	ann := dial(t, a.url, map[string]string{"room": "r", "name": "ann"})
	dial(t, a.url, map[string]string{"room": "other", "name": "cat"})
	bob := dial(t, b.url, map[string]string{"room": "r", "name": "bob"})
	readUntil(t, ann, users("ann", "bob"))
	readUntil(t, bob, users("ann", "bob"))

	// A page that leaves is gone from the list at once (its node deletes
	// its key); one on a node that dies, once the node's key expires.
	dan := dial(t, b.url, map[string]string{"room": "r", "name": "dan"})
	readUntil(t, ann, users("ann", "bob", "dan"))
	dan.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(guard))
	readUntil(t, ann, users("ann", "bob"))

	b.kill()
	start := time.Now()
	readUntil(t, ann, users("ann"))
	t.Logf("dead node dropped from presence after %v (TTL %v)", time.Since(start).Round(time.Millisecond), b.cfg.PresenceTTL)
}

func TestShutdownSendsGoingAway(t *testing.T) {
	rs := startRedis(t)
	node := startNode(t, testConfig(rs.addr, "n1"))
	conns := []*websocket.Conn{
		dial(t, node.url, map[string]string{"room": "r1", "name": "ann"}),
		dial(t, node.url, map[string]string{"room": "r2", "name": "bob"}),
	}
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		shutdown <- node.Shutdown(ctx)
	}()
	for _, c := range conns {
		ce := closeOf(t, c)
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		assert.Equal(t, goingAway, ce.Text)
	}
	require.NoError(t, <-shutdown)
	node.aborted = true // already shut down

	// Its presence went with it, not left to expire.
	keys, err := newRedisClient(t, rs.addr).Keys(context.Background(), "*presence*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys)
}

// The program, run with no Redis to talk to, says so and exits non-zero
// rather than serving pages it cannot keep a message for.
func TestNoRedisAtStart(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dead := freeAddr(t) // nothing listens there any more
	cmd := exec.Command(exe, "-addr", "127.0.0.1:0", "-redis", dead)
	cmd.Env = append(os.Environ(), "CLUSTERCHAT_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "output: %s", out)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "clusterchat: redis at "+dead+" is not reachable")
}

// A page resuming from a position the stream has trimmed away is told so
// before it gets what is left.
func TestResumeAfterTrimReportsGap(t *testing.T) {
	rs := startRedis(t)
	cfg := testConfig(rs.addr, "n1")
	cfg.MaxLen = 10
	node := startNode(t, cfg)
	rdb := newRedisClient(t, rs.addr)
	ctx := context.Background()

	// MAXLEN ~ trims whole macro-nodes (100 entries), so it takes a few
	// hundred entries before the oldest go.
	var first string
	for i := range 300 {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: streamKey("r"), MaxLen: 10, Approx: true, Values: []string{"name", "x", "text", strconv.Itoa(i)}}).Result()
		require.NoError(t, err)
		if i == 0 {
			first = id
		}
	}
	ids, _ := streamIDs(t, rdb, "r")
	require.Less(t, len(ids), 300, "nothing was trimmed")

	conn := dial(t, node.url, map[string]string{"room": "r", "name": "ann", "after": first})
	notPresence := func(m serverMessage) bool { return m.Type != "presence" }
	assert.Equal(t, "gap", readUntil(t, conn, notPresence).Type)
	for _, id := range ids {
		require.Equal(t, id, readUntil(t, conn, notPresence).ID)
	}

	// Resuming from the newest entry is no gap.
	conn = dial(t, node.url, map[string]string{"room": "r", "name": "ann", "after": ids[len(ids)-1]})
	send(t, conn, "m", "hi")
	assert.Contains(t, []string{"ack", "msg"}, readUntil(t, conn, notPresence).Type)
}

// A page whose queue of new messages overflows is not dropped: it reads
// the rest from Redis, and still gets everything once, in order.
func TestPageThatFallsBehindCatchesUp(t *testing.T) {
	rs := startRedis(t)
	cfg := testConfig(rs.addr, "n1")
	cfg.LiveBuffer = 1
	node := startNode(t, cfg)
	rdb := newRedisClient(t, rs.addr)

	conn := dial(t, node.url, map[string]string{"room": "r", "name": "ann"})
	// A first message through the room shows the reader is following the
	// stream; then a burst in one round trip, which the reader gets in
	// one XREAD and hands on faster than any write pump can send.
	send(t, conn, "first", "first")
	readUntil(t, conn, func(m serverMessage) bool { return m.Type == "msg" })
	pipe := rdb.Pipeline()
	for i := range 1000 {
		pipe.XAdd(context.Background(), &redis.XAddArgs{Stream: streamKey("r"), Values: []string{"name", "x", "text", strconv.Itoa(i)}})
	}
	_, err := pipe.Exec(context.Background())
	require.NoError(t, err)

	ids, _ := streamIDs(t, rdb, "r")
	for _, id := range ids[1:] {
		m := readUntil(t, conn, func(m serverMessage) bool { return m.Type == "msg" })
		require.Equal(t, id, m.ID)
	}
	assert.Positive(t, node.lagged.Load(), "the queue never overflowed: the test did not test catching up")
}

func TestStreamID(t *testing.T) {
	tests := []struct {
		in         string
		ok         bool
		next, prev string
	}{
		{"0-0", true, "0-1", "0-0"},
		{"5-0", true, "5-1", "4-18446744073709551615"},
		{"5-18446744073709551615", true, "6-0", "5-18446744073709551614"},
		{"1700000000000-3", true, "1700000000000-4", "1700000000000-2"},
		{"5", false, "", ""},
		{"$", false, "", ""},
		{"-1-0", false, "", ""},
		{"5-x", false, "", ""},
		{"", false, "", ""},
	}
	for _, tt := range tests {
		id, err := parseStreamID(tt.in)
		if !tt.ok {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.in, id.String())
		assert.Equal(t, tt.next, id.next().String())
		assert.Equal(t, tt.prev, id.prev().String())
		assert.True(t, id.less(id.next()) && !id.next().less(id) && !id.less(id))
	}
}
