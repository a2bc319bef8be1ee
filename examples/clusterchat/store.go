package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every key of a room carries the room in braces, a Redis Cluster hash
// tag, so that the send script, which touches two keys, would also run
// on a cluster.
func streamKey(room string) string { return "clusterchat:{" + room + "}:stream" }
func midKey(room, mid string) string {
	return "clusterchat:{" + room + "}:mid:" + mid
}
func presenceKey(room, node string) string {
	return "clusterchat:{" + room + "}:presence:" + node
}
func nodesKey(room string) string { return "clusterchat:{" + room + "}:nodes" }

// sendScript appends a message to the room's stream unless a message with
// the same client-chosen mid was appended within the dedup window, in
// which case it returns that message's ID. A page that lost its
// connection before the ack can then send again without the room seeing
// the message twice. One script, so the check and the XADD are atomic.
//
// KEYS: stream, mid key. ARGV: maxlen, name, text, mid, dedup seconds.
var sendScript = redis.NewScript(`
local id = redis.call('GET', KEYS[2])
if id then return id end
id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'name', ARGV[2], 'text', ARGV[3], 'mid', ARGV[4])
redis.call('SET', KEYS[2], id, 'EX', ARGV[5])
return id
`)

// appendMessage stores a message and returns its stream ID. A nil error
// means Redis has the message: only then is the sender told so.
func (n *Node) appendMessage(ctx context.Context, room, name, text, mid string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	defer cancel()
	keys := []string{streamKey(room), midKey(room, mid)}
	return sendScript.Run(ctx, n.rdb, keys, n.cfg.MaxLen, name, text, mid, int64(n.cfg.DedupWindow/time.Second)).Text()
}

// chatMessage is a message of a room as pages receive it.
type chatMessage struct {
	Type string `json:"type"` // "msg"
	// ID is the stream entry ID; the page passes the last one it saw as
	// ?after= when it reconnects. Its first part is the Redis server's
	// clock in milliseconds when the message was stored.
	ID   string `json:"id"`
	Name string `json:"name"`
	Text string `json:"text"`
	Mid  string `json:"mid,omitempty"`
}

// entry is a stream entry ready to send: its ID, for ordering, and the
// page's JSON, encoded once however many connections it goes to.
type entry struct {
	id   streamID
	data []byte
}

func toEntry(m redis.XMessage) (entry, error) {
	id, err := parseStreamID(m.ID)
	if err != nil {
		return entry{}, err
	}
	field := func(k string) string { s, _ := m.Values[k].(string); return s }
	data, err := json.Marshal(chatMessage{Type: "msg", ID: m.ID, Name: field("name"), Text: field("text"), Mid: field("mid")})
	return entry{id, data}, err
}

// readRange returns up to count entries of the room from start
// (inclusive) on, in stream order.
func (n *Node) readRange(ctx context.Context, room string, start streamID, count int64) ([]entry, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	defer cancel()
	msgs, err := n.rdb.XRangeN(ctx, streamKey(room), start.String(), "+", count).Result()
	if err != nil {
		return nil, err
	}
	return toEntries(msgs)
}

func toEntries(msgs []redis.XMessage) ([]entry, error) {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		e, err := toEntry(m)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// startOf returns where a connection that has seen nothing of the room
// starts: at the oldest of the last history messages, or, with no history
// wanted, right after the newest one.
func (n *Node) startOf(ctx context.Context, room string, history int64) (streamID, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	defer cancel()
	msgs, err := n.rdb.XRevRangeN(ctx, streamKey(room), "+", "-", max(history, 1)).Result()
	if err != nil || len(msgs) == 0 {
		return streamID{}, err
	}
	id, err := parseStreamID(msgs[len(msgs)-1].ID)
	if history == 0 {
		id = id.next()
	}
	return id, err
}

// newest returns the ID of the room's newest entry, or the zero ID (which
// XREAD takes as "from the beginning") if the stream is empty.
func (n *Node) newest(ctx context.Context, room string) (streamID, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	defer cancel()
	msgs, err := n.rdb.XRevRangeN(ctx, streamKey(room), "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return streamID{}, err
	}
	return parseStreamID(msgs[0].ID)
}

// trimmedAfter reports whether the stream has dropped (by MAXLEN) entries
// after id, so that a page resuming from id cannot get everything it
// missed. Trimming removes the oldest entries, so that is when id is
// older than the first entry left and entries have been removed (Redis 7's
// entries-added exceeds the length; older servers do not say, and only the
// first test applies). The one case it gets wrong is a page that saw
// exactly the last entry trimmed: it is told of a gap that holds nothing.
func (n *Node) trimmedAfter(ctx context.Context, room string, id streamID) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SendTimeout)
	defer cancel()
	info, err := n.rdb.XInfoStream(ctx, streamKey(room)).Result()
	if err != nil {
		if isNoSuchKey(err) {
			return false, nil
		}
		return false, err
	}
	first, err := parseStreamID(info.FirstEntry.ID)
	if err != nil {
		return false, nil // empty stream
	}
	removed := info.EntriesAdded == 0 || info.EntriesAdded > info.Length
	return removed && id.less(first), nil
}

func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && rerr.Error() == "ERR no such key"
}

// ping checks that Redis answers, for a clear error at start.
func ping(ctx context.Context, rdb *redis.Client, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis at %s is not reachable: %w", addr, err)
	}
	return nil
}
