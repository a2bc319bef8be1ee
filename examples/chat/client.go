package main

import (
	"bytes"
	"log"
	"net/http"
	"time"

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

// client is one connection in the room. Its read pump feeds the hub; its
// write pump is the only goroutine that writes data messages to conn.
type client struct {
	hub  *Hub
	conn *websocket.Conn
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

// ServeHTTP upgrades the request and adds the connection to the room. The
// handler goroutine becomes the client's read pump.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	c := &client{hub: h, conn: conn, send: make(chan []byte, h.cfg.SendBuffer)}

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
	// Every pong pushes the deadline out again, so a client that answers
	// pings stays connected however quiet it is.
	c.conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(h.cfg.PongWait))
	})

	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				log.Printf("read %s: %v", c.conn.RemoteAddr(), err)
			}
			return
		}
		msg = bytes.TrimSpace(msg)
		if len(msg) == 0 {
			continue
		}
		select {
		case h.broadcast <- msg:
		case <-h.done:
			return
		}
	}
}

// writePump sends queued messages and periodic pings. When the hub closes
// the queue it sends what is left, then a close frame, and closes the
// connection, which also ends the read pump.
func (c *client) writePump() {
	h := c.hub
	defer h.pumps.Done()
	ticker := time.NewTicker(h.cfg.PingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()

	for {
		select {
		case msg, ok := <-c.send:
			deadline := time.Now().Add(h.cfg.WriteWait)
			if !ok {
				// Best effort: the peer may be gone already.
				data := websocket.FormatCloseMessage(c.reason.code, c.reason.text)
				c.conn.WriteControl(websocket.CloseMessage, data, deadline)
				return
			}
			c.conn.SetWriteDeadline(deadline)
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				return
			}

		case <-ticker.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.cfg.WriteWait)); err != nil {
				return
			}
		}
	}
}
