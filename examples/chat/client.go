package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wsforge/websocket"
)

// Why a client's send queue was closed; the write pump turns it into the
// close frame it sends.
type leaveReason struct {
	code int
	text string
}

var (
	closeNormal    = leaveReason{websocket.CloseNormalClosure, ""}
	closeGoingAway = leaveReason{websocket.CloseGoingAway, "server shutting down"}
	closeTooSlow   = leaveReason{websocket.CloseTryAgainLater, "too slow"}
)

// client is one connection in a room. Its read pump feeds the hub; its
// write pump is the only goroutine that writes data messages to conn.
type client struct {
	hub  *Hub
	conn *websocket.Conn
	room string
	name string
	send chan []byte

	// reason is set by the hub goroutine just before it closes send and
	// read by the write pump only after seeing send closed, so the
	// channel close orders the two.
	reason leaveReason
}

// leave is called only by the hub goroutine, once per client.
func (c *client) leave(r leaveReason) {
	c.reason = r
	close(c.send)
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
}

// ServeHTTP checks the token, upgrades the request and adds the
// connection to its room (query parameters token, room and name). The
// handler goroutine becomes the client's read pump.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Before the upgrade, so that a stranger costs one HTTP response and
	// no hijacked connection, and the answer is a status code any HTTP
	// client understands. Comparing in constant time keeps the check
	// from telling how much of a guess was right.
	q := r.URL.Query()
	if h.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(q.Get("token")), []byte(h.cfg.Token)) != 1 {
		http.Error(w, "wrong or missing token", http.StatusUnauthorized)
		return
	}

	// Counted from before the upgrade: an http.Server stops waiting for a
	// handler once its connection is hijacked, so this is what lets Wait,
	// called after the server has closed, see every client.
	h.pumps.Add(1)
	defer h.pumps.Done()

	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		log.Printf("upgrade %s: %v", r.RemoteAddr, err)
		return
	}
	// A bad room or name is refused after the upgrade, because a close
	// reason is the one way to tell a browser page why: it never sees
	// the HTTP status of a failed upgrade.
	room, name, err := roomAndName(q.Get("room"), q.Get("name"))
	if err != nil {
		msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, err.Error())
		conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(h.cfg.WriteWait))
		conn.Close()
		return
	}
	c := &client{hub: h, conn: conn, room: room, name: name, send: make(chan []byte, h.cfg.SendBuffer)}

	select {
	case h.register <- c:
	case <-h.done:
		msg := websocket.FormatCloseMessage(closeGoingAway.code, closeGoingAway.text)
		conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(h.cfg.WriteWait))
		conn.Close()
		return
	}
	h.pumps.Add(1)
	go c.writePump()
	c.readPump()
}

// Room names are short and plain, so that they can appear in URLs, logs
// and page titles as they are.
const (
	defaultRoom   = "lobby"
	maxRoomLength = 32
	maxNameLength = 32
)

// roomAndName validates the room and user names a page asked for, with
// an error short enough for a close reason (123 bytes).
func roomAndName(room, name string) (string, string, error) {
	if room == "" {
		room = defaultRoom
	}
	if len(room) > maxRoomLength {
		return "", "", fmt.Errorf("room name longer than %d characters", maxRoomLength)
	}
	for _, r := range room {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
			return "", "", errors.New("room name may use only a-z, 0-9, - and _")
		}
	}
	name = strings.TrimSpace(name)
	if name == "" {
		name = "anonymous"
	}
	if !utf8.ValidString(name) {
		return "", "", errors.New("user name is not UTF-8")
	}
	if utf8.RuneCountInString(name) > maxNameLength {
		return "", "", fmt.Errorf("user name longer than %d characters", maxNameLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", "", errors.New("user name has a control character")
		}
	}
	return room, name, nil
}

// readPump forwards the client's messages to the hub until the connection
// fails or the client closes it, then takes the client out of the room.
func (c *client) readPump() {
	h := c.hub
	defer func() {
		select {
		case h.unregister <- c:
		case <-h.done:
		}
		c.conn.Close()
	}()

	c.conn.SetReadLimit(h.cfg.MaxMessageSize)
	// The connection pings every PingPeriod from its own timer, and
	// anything the client sends (a pong, a message) shows it is there: a
	// client that answers pings stays connected however quiet it is, and
	// one silent for PongWait is closed and its read below fails.
	c.conn.SetKeepAlive(h.cfg.PingPeriod, h.cfg.PongWait-h.cfg.PingPeriod)

	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrKeepAliveTimeout) ||
				websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				log.Printf("read %s: %v", c.conn.RemoteAddr(), err)
			}
			return
		}
		text := strings.TrimSpace(string(msg))
		if text == "" {
			continue
		}
		select {
		case h.broadcast <- post{from: c, text: text}:
		case <-h.done:
			return
		}
	}
}

// writePump sends queued messages. When the hub closes the queue it
// sends what is left, then a close frame, and closes the connection,
// which also ends the read pump. Pings are the connection's own
// (SetKeepAlive in readPump).
func (c *client) writePump() {
	h := c.hub
	defer h.pumps.Done()
	defer c.conn.Close()

	for msg := range c.send {
		c.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteWait))
		if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
	}
	// Best effort: the peer may be gone already.
	data := websocket.FormatCloseMessage(c.reason.code, c.reason.text)
	c.conn.WriteControl(websocket.CloseMessage, data, time.Now().Add(h.cfg.WriteWait))
}
