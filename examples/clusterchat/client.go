package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wsforge/websocket"
)

var upgrader = websocket.Upgrader{}

// client is one page's connection. Its read pump (the handler's
// goroutine) stores what the page sends; its write pump is the one
// goroutine that sends the page data messages, so they go out in stream
// order.
type client struct {
	node     *Node
	conn     *websocket.Conn
	roomName string
	name     string
	// after is where the page said it had got to (?after=), if it did.
	after    streamID
	resuming bool
	room     *room

	// live carries the room's new entries from the room reader. When it
	// is full the reader sets lagging instead of waiting, and the write
	// pump fetches what it missed from Redis. The pump checks lagging
	// before each entry it takes from live, so it never sends an entry
	// after one that was dropped; wake covers a drop with nothing after it.
	live    chan entry
	lagging atomic.Bool
	wake    chan struct{}
	// acks carries acks and nacks from the read pump; presence the
	// latest list of names, replaced rather than queued.
	acks     chan []byte
	presence chan []byte

	// joined is closed once the page has its hello: the read pump
	// waits for it, so that everything the page sends comes after the
	// point it starts reading the room from.
	joined    chan struct{}
	readDone  chan struct{}
	writeDone chan struct{}
}

// Limits on what a page may ask for. The close reasons say them, so a
// refused page can tell its user what to fix (a reason fits in 123 bytes).
const (
	maxRoomLen  = 32
	maxNameLen  = 32
	maxMidLen   = 64
	badRoom     = "invalid room: use 1-32 characters a-z, A-Z, 0-9, '-' or '_'"
	badName     = "invalid name: use 1-32 characters, no control characters"
	badAfter    = "invalid after: want a stream ID such as 1700000000000-0"
	badMid      = "invalid mid: use 1-64 characters a-z, A-Z, 0-9, '-' or '_'"
	badJSON     = `invalid message: want JSON {"mid": "...", "text": "..."}`
	badType     = "binary messages are not supported"
	goingAway   = "server shutting down"
	redisFailed = "message not stored, Redis unavailable: send again"
)

func validToken(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxNameLen {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// newClient checks the page's query: room, name and, on a reconnect, the
// last stream ID it saw. A bad one gives the close reason to send.
func (n *Node) newClient(conn *websocket.Conn, q url.Values) (*client, string) {
	c := &client{
		node:      n,
		conn:      conn,
		roomName:  q.Get("room"),
		name:      strings.TrimSpace(q.Get("name")),
		live:      make(chan entry, n.cfg.LiveBuffer),
		wake:      make(chan struct{}, 1),
		acks:      make(chan []byte, 16),
		presence:  make(chan []byte, 1),
		joined:    make(chan struct{}),
		readDone:  make(chan struct{}),
		writeDone: make(chan struct{}),
	}
	if !validToken(c.roomName, maxRoomLen) {
		return nil, badRoom
	}
	if !validName(c.name) {
		return nil, badName
	}
	if a := q.Get("after"); a != "" {
		id, err := parseStreamID(a)
		if err != nil {
			return nil, badAfter
		}
		c.after, c.resuming = id, true
	}
	return c, ""
}

func (n *Node) serveWS(w http.ResponseWriter, r *http.Request) {
	// Counted under the lock that Shutdown sets closing under, so that no
	// handler starts after Shutdown has begun to wait for them.
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		http.Error(w, goingAway, http.StatusServiceUnavailable)
		return
	}
	n.conns.Add(1)
	n.mu.Unlock()
	defer n.conns.Done()

	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has replied with an HTTP error.
	}
	// Refused after the upgrade rather than before: a browser shows a
	// page nothing of a failed handshake, but it does get a close reason.
	c, reason := n.newClient(conn, r.URL.Query())
	if reason != "" {
		conn.CloseGracefully(websocket.ClosePolicyViolation, reason, n.cfg.WriteWait)
		return
	}
	go c.writePump()
	c.readPump()
	close(c.readDone)
	<-c.writeDone
	if c.room != nil {
		n.leave(c)
	}
}

// offer hands e to the write pump without ever waiting: the room reader
// serves every page of the room and must not stall on one.
func (c *client) offer(e entry) {
	select {
	case c.live <- e:
	default:
		c.lagging.Store(true)
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// setPresence replaces the list of names waiting to be sent. Only the
// presence loop calls it, so the drain and the send do not race.
func (c *client) setPresence(data []byte) {
	select {
	case <-c.presence:
	default:
	}
	c.presence <- data
}

// inMessage is what a page sends. Mid, chosen by the page, identifies the
// message across resends; Text is the message.
type inMessage struct {
	Mid  string `json:"mid"`
	Text string `json:"text"`
}

// ackMessage tells a page whether its message is stored: "ack" with the
// message's ID once Redis has it, "nack" with an error when it may not
// have, so the page sends it again (the mid makes that safe).
type ackMessage struct {
	Type  string `json:"type"`
	Mid   string `json:"mid"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

// readPump stores each message the page sends and queues its ack, until
// the page goes or breaks the rules.
func (c *client) readPump() {
	n := c.node
	c.conn.SetReadLimit(n.cfg.MaxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(n.cfg.PongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(n.cfg.PongWait))
	})
	select {
	case <-c.joined:
	case <-c.writeDone:
		return
	}
	for {
		// A message over MaxMessageSize ends here: the library closes
		// the connection with 1009 itself.
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				n.logf("read %s: %v", c.conn.RemoteAddr(), err)
			}
			return
		}
		if typ != websocket.TextMessage {
			c.conn.CloseGracefully(websocket.CloseUnsupportedData, badType, n.cfg.WriteWait)
			return
		}
		var in inMessage
		if err := json.Unmarshal(data, &in); err != nil {
			c.conn.CloseGracefully(websocket.CloseInvalidFramePayloadData, badJSON, n.cfg.WriteWait)
			return
		}
		if in.Mid == "" {
			in.Mid = randomMid()
		} else if !validToken(in.Mid, maxMidLen) {
			c.conn.CloseGracefully(websocket.ClosePolicyViolation, badMid, n.cfg.WriteWait)
			return
		}
		text := strings.TrimSpace(in.Text)
		if text == "" {
			continue
		}
		ack := ackMessage{Type: "ack", Mid: in.Mid}
		ack.ID, err = n.appendMessage(context.Background(), c.roomName, c.name, text, in.Mid)
		if err != nil {
			n.logf("room %s: storing a message: %v", c.roomName, err)
			ack = ackMessage{Type: "nack", Mid: in.Mid, Error: redisFailed}
		}
		data, _ = json.Marshal(ack)
		select {
		case c.acks <- data:
		case <-c.writeDone:
			return
		}
	}
}

func randomMid() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// helloMessage is the first message a page gets.
type helloMessage struct {
	Type string `json:"type"` // "hello"
	Node string `json:"node"`
	Room string `json:"room"`
	Name string `json:"name"`
}

// gapMessage tells a resuming page that messages it missed were trimmed
// from the stream (MaxLen) and cannot be sent.
type gapMessage struct {
	Type string `json:"type"` // "gap"
}

// writePump sends the page, in order: a hello, what it missed (or the
// recent history), then each new entry of the room, with acks, presence
// and pings in between, until the connection ends or the node shuts
// down. It keeps c's position in the stream, last, to itself.
func (c *client) writePump() {
	n := c.node
	defer close(c.writeDone)
	defer c.conn.Close()

	// Where the page starts is settled before it joins the room, and the
	// reader's start after: so whatever is added once the page has joined
	// is after the page's start and reaches the page one way or the
	// other, from the backlog or from the reader.
	last, gap, ok := c.start()
	if !ok {
		return
	}
	if c.room, ok = n.join(c); !ok {
		c.conn.CloseGracefully(websocket.CloseGoingAway, goingAway, n.cfg.WriteWait)
		return
	}
	hello, _ := json.Marshal(helloMessage{Type: "hello", Node: n.cfg.NodeID, Room: c.roomName, Name: c.name})
	if c.write(hello) != nil {
		return
	}
	close(c.joined)
	if gap {
		data, _ := json.Marshal(gapMessage{Type: "gap"})
		if c.write(data) != nil {
			return
		}
	}
	select {
	case <-c.room.ready:
	case <-c.readDone:
		return
	case <-n.quit:
		c.conn.CloseGracefully(websocket.CloseGoingAway, goingAway, n.cfg.WriteWait)
		return
	}
	if last, ok = c.catchUp(last); !ok {
		return
	}

	ticker := time.NewTicker(n.cfg.PingPeriod)
	defer ticker.Stop()
	for {
		select {
		case e := <-c.live:
			if c.lagging.Swap(false) {
				n.lagged.Add(1)
				if last, ok = c.catchUp(last); !ok {
					return
				}
			}
			if !last.less(e.id) {
				continue // already sent, from Redis
			}
			if c.write(e.data) != nil {
				return
			}
			last = e.id
		case <-c.wake:
			if c.lagging.Swap(false) {
				n.lagged.Add(1)
				if last, ok = c.catchUp(last); !ok {
					return
				}
			}
		case data := <-c.acks:
			if c.write(data) != nil {
				return
			}
		case data := <-c.presence:
			if c.write(data) != nil {
				return
			}
		case <-ticker.C:
			if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(n.cfg.WriteWait)) != nil {
				return
			}
		case <-c.readDone:
			return
		case <-n.quit:
			c.conn.CloseGracefully(websocket.CloseGoingAway, goingAway, n.cfg.WriteWait)
			return
		}
	}
}

// start works out the position the page starts from: the ID it gave, or
// just before the history it is to get; and, for a resuming page, whether
// messages it missed have been trimmed.
func (c *client) start() (last streamID, gap, ok bool) {
	n := c.node
	err := c.retry("finding where to start", func() (err error) {
		if c.resuming {
			last = c.after
			gap, err = n.trimmedAfter(n.ctx, c.roomName, c.after)
			return err
		}
		from, err := n.startOf(n.ctx, c.roomName, n.cfg.History)
		last = from.prev()
		return err
	})
	return last, gap, err == nil
}

// catchUp sends the page every entry of the room after last that is in
// Redis now, and returns the last one sent.
func (c *client) catchUp(last streamID) (streamID, bool) {
	const page = 256
	for {
		var entries []entry
		err := c.retry("reading the backlog", func() (err error) {
			entries, err = c.node.readRange(c.node.ctx, c.roomName, last.next(), page)
			return err
		})
		if err != nil {
			return last, false
		}
		for _, e := range entries {
			if c.write(e.data) != nil {
				return last, false
			}
			last = e.id
		}
		if len(entries) < page {
			return last, true
		}
	}
}

// errStopped ends a retry because the connection or the node is closing.
var errStopped = fmt.Errorf("connection closing")

// retry runs f until it succeeds, backing off while it fails (Redis away),
// and gives up when the connection ends or the node shuts down.
func (c *client) retry(what string, f func() error) error {
	b := newBackoff()
	for {
		err := f()
		if err == nil {
			b.ok(c.node, "room "+c.roomName)
			return nil
		}
		b.fail(c.node, "room "+c.roomName+": "+what, err)
		t := time.NewTimer(b.delay)
		select {
		case <-t.C:
		case <-c.readDone:
			t.Stop()
			return errStopped
		case <-c.node.quit:
			t.Stop()
			c.conn.CloseGracefully(websocket.CloseGoingAway, goingAway, c.node.cfg.WriteWait)
			return errStopped
		}
	}
}

func (c *client) write(data []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.node.cfg.WriteWait))
	return c.conn.WriteMessage(websocket.TextMessage, data)
}
