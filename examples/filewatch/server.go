package main

import (
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/wsforge/websocket"
)

// Config holds the timeouts of a Server. Tests shrink them; main uses
// DefaultConfig.
type Config struct {
	// WriteWait bounds each write to a page, pings and close included.
	WriteWait time.Duration
	// PongWait is how long a page may stay silent before it is considered
	// gone; PingPeriod, shorter, is how often the server pings it.
	PongWait, PingPeriod time.Duration
}

// DefaultConfig suits pages on the open internet.
var DefaultConfig = Config{
	WriteWait:  10 * time.Second,
	PongWait:   60 * time.Second,
	PingPeriod: 50 * time.Second,
}

// Server is the /ws handler: it sends each page the file's snapshot on
// connecting and again on every change.
type Server struct {
	cfg      Config
	w        *Watcher
	upgrader websocket.Upgrader

	mu       sync.Mutex
	closed   bool
	done     chan struct{} // closed by Close
	sessions sync.WaitGroup
}

// NewServer returns a server for the file w watches.
func NewServer(w *Watcher, cfg Config) *Server {
	return &Server{cfg: cfg, w: w, done: make(chan struct{})}
}

// Close tells every page the server is going away (close code 1001) and
// returns once their handlers have. Later requests get 503.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
	s.sessions.Wait()
}

// enter counts a new session unless the server is closed. Counting under
// the lock keeps Add from racing with the Wait in Close.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions.Add(1)
	return true
}

// ServeHTTP upgrades the request and becomes the page's writer; a second
// goroutine reads, for pongs and the page's close.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.sessions.Done()
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// Upgrade has already replied with an HTTP error.
		log.Printf("upgrade %s: %v", r.RemoteAddr, err)
		return
	}
	defer conn.Close()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		// The page sends nothing but pongs and its close; anything
		// bigger is not from our page.
		conn.SetReadLimit(512)
		conn.SetReadDeadline(time.Now().Add(s.cfg.PongWait))
		conn.SetPongHandler(func(string) error {
			return conn.SetReadDeadline(time.Now().Add(s.cfg.PongWait))
		})
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() {
		conn.Close()
		<-readDone
	}()

	ping := time.NewTicker(s.cfg.PingPeriod)
	defer ping.Stop()
	for {
		snap, changed := s.w.Current()
		conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteWait))
		if err := conn.WriteJSON(snap); err != nil {
			return
		}
		for waiting := true; waiting; {
			select {
			case <-changed:
				waiting = false
			case <-readDone:
				return
			case <-s.done:
				conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
					time.Now().Add(s.cfg.WriteWait))
				// The page's answering close ends the reader.
				select {
				case <-readDone:
				case <-time.After(s.cfg.WriteWait):
				}
				return
			case <-ping.C:
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteWait)); err != nil {
					return
				}
			}
		}
	}
}
