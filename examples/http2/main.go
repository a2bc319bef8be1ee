// Command http2 serves an echo page over HTTPS with HTTP/2, so that a
// browser opens the page's WebSocket as one more stream of the HTTP/2
// connection it loaded the page on (RFC 8441), instead of a TCP and TLS
// connection of its own.
//
//	GODEBUG=http2xconnect=1 go run ./examples/http2
//
// then open https://localhost:8443 (the certificate is self-signed, made
// at start-up: accept it, or start Chromium with
// --ignore-certificate-errors). The server logs each WebSocket's request:
// "HTTP/2.0 CONNECT" when it came over HTTP/2, "HTTP/1.1 GET" otherwise.
//
// Go's HTTP/2 server announces extended CONNECT only in a process started
// with GODEBUG=http2xconnect=1; without it browsers fall back to HTTP/1.1
// for the WebSocket, which works as well. -http1 turns HTTP/2 off
// altogether, for comparison. Ctrl-C tells every open page the server is
// going away (close code 1001).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"errors"
	"flag"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsforge/websocket"
)

//go:embed index.html
var indexHTML []byte

// Compression on: browsers offer permessage-deflate, over HTTP/2 as over
// HTTP/1.1. The default origin check accepts this server's own page.
var upgrader = websocket.Upgrader{EnableCompression: true}

// live holds the open connections, so that Ctrl-C can tell each one the
// server is going away.
var live = connSet{conns: make(map[*websocket.Conn]struct{})}

// newMux returns the server's routes, split out from main for the tests.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.HandleFunc("/echo", serveEcho)
	return mux
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	log.Printf("page %s from %s", r.Proto, r.RemoteAddr)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(indexHTML)
}

// serveEcho upgrades the request, over HTTP/2 or HTTP/1.1 alike, and sends
// each message back until the connection ends. Over HTTP/2 the WebSocket is
// a stream that lives as long as this handler: it must not return while
// the connection is in use, and its return (after the Conn is closed)
// ends the stream.
func serveEcho(w http.ResponseWriter, r *http.Request) {
	log.Printf("websocket %s %s from %s (:protocol %q)", r.Proto, r.Method, r.RemoteAddr, r.Header.Get(":protocol"))
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Printf("upgrade %s: %v", r.RemoteAddr, err)
		return
	}
	defer conn.Close()
	live.add(conn)
	defer live.remove(conn)
	for {
		mt, msg, err := conn.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				log.Printf("read %s: %v", r.RemoteAddr, err)
			}
			return
		}
		if err := conn.WriteMessage(mt, msg); err != nil {
			log.Printf("write %s: %v", r.RemoteAddr, err)
			return
		}
	}
}

// connSet is a set of connections and a count of the handlers serving
// them.
type connSet struct {
	mu       sync.Mutex
	conns    map[*websocket.Conn]struct{}
	handlers sync.WaitGroup
}

func (s *connSet) add(c *websocket.Conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	s.mu.Unlock()
}

func (s *connSet) remove(c *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// goingAway sends every connection close 1001 and waits a bounded time for
// their handlers, which return when the peer answers.
func (s *connSet) goingAway(wait time.Duration) {
	msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
	deadline := time.Now().Add(wait)
	s.mu.Lock()
	for c := range s.conns {
		c.WriteControl(websocket.CloseMessage, msg, deadline)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// selfSigned makes a certificate for localhost and the loopback addresses,
// valid for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "wsforge http2 example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	addr := flag.String("addr", "localhost:8443", "address to listen on")
	http1 := flag.Bool("http1", false, "serve HTTP/1.1 only (no HTTP/2)")
	flag.Parse()

	if !*http1 && !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		log.Print("GODEBUG lacks http2xconnect=1: Go's HTTP/2 server will not announce extended CONNECT, so browsers open their WebSockets over HTTP/1.1")
	}
	cert, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		Handler:           newMux(),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	if *http1 {
		// A non-nil empty map: no ALPN "h2", so no HTTP/2.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-ctx.Done()
		// Over HTTP/2 the WebSockets are handlers that Shutdown waits
		// for: tell them first.
		live.goingAway(5 * time.Second)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdownCtx)
	}()
	// The address as bound, so that -addr 127.0.0.1:0 says which port it got.
	log.Printf("http2 example listening on https://%s", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	<-shutDown
	// HTTP/1.1 WebSockets are hijacked, and Shutdown does not wait for
	// them; those opened since the first call are told now.
	live.goingAway(5 * time.Second)
	log.Print("bye")
}
