package websocket

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAutobahnServer replays the Autobahn|Testsuite cases (fuzzingclient
// mode) against our server: the scripted peer is the client, and the
// server under test runs the echo handler of autobahn/server.
func TestAutobahnServer(t *testing.T) {
	runConformanceCases(t, runServerCase)
}

func runServerCase(t *testing.T, c conformanceCase) {
	srv, errc := startOurServer(t, Upgrader{CheckOrigin: func(*http.Request) bool { return true }})

	nc, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), testWait)
	require.NoError(t, err)
	br := sendClientHandshake(t, nc, srv.Listener.Addr().String())
	newScriptedPeer(t, nc, br, true).run(c)
	if c.note != "" {
		t.Log(c.note)
	}
	checkCaseEnd(t, c.end, nc, errc)
}

// startOurServer starts a loopback server that upgrades with up and runs
// the streaming echo loop of autobahn/server; errc receives the upgrade's
// error or the one that ended the loop. The server closes when the test
// ends.
func startOurServer(t *testing.T, up Upgrader) (*httptest.Server, <-chan error) {
	errc := make(chan error, 1)
	srv := httptest.NewServer(echoStreamedHandler(up, errc))
	t.Cleanup(srv.Close)
	return srv, errc
}

// echoStreamedHandler upgrades with up and runs echoStreamed until the
// connection ends, over HTTP/1.1 or HTTP/2; errc receives the upgrade's
// error or the one that ended the loop.
func echoStreamedHandler(up Upgrader, errc chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		errc <- echoStreamed(conn)
	}
}

// sendClientHandshake performs the opening handshake by hand, as the suite's
// client does, and returns the reader to go on with.
func sendClientHandshake(t *testing.T, nc net.Conn, host string) *bufio.Reader {
	t.Helper()
	br, resp := sendClientHandshakeOffer(t, nc, host, "")
	require.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"), "no extension was offered")
	return br
}

// sendClientHandshakeOffer is sendClientHandshake with offer, when not empty,
// as the Sec-WebSocket-Extensions header. It checks the parts of the
// response that do not depend on the offer and returns the response for
// the caller to check the rest.
func sendClientHandshakeOffer(t *testing.T, nc net.Conn, host, offer string) (*bufio.Reader, *http.Response) {
	t.Helper()
	key := newChallengeKey(t)
	ext := ""
	if offer != "" {
		ext = "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	nc.SetDeadline(time.Now().Add(testWait))
	_, err := fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: http://%s\r\n%s\r\n", host, key, host, ext)
	require.NoError(t, err)
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.True(t, strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"), "Upgrade: %q", resp.Header.Get("Upgrade"))
	require.Contains(t, strings.ToLower(resp.Header.Get("Connection")), "upgrade")
	require.Equal(t, acceptKeyFor(key), resp.Header.Get("Sec-WebSocket-Accept"))
	nc.SetDeadline(time.Time{})
	return br, resp
}

// TestAutobahnServerEngine replays the same cases against an Engine that
// echoes from OnMessage: the push-style core must grade as the blocking
// reader does.
func TestAutobahnServerEngine(t *testing.T) {
	runConformanceCases(t, func(t *testing.T, c conformanceCase) {
		srv, errc := startOurEngine(t, Upgrader{CheckOrigin: func(*http.Request) bool { return true }})
		nc, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), testWait)
		require.NoError(t, err)
		br := sendClientHandshake(t, nc, srv.Listener.Addr().String())
		newScriptedPeer(t, nc, br, true).run(c)
		checkCaseEnd(t, c.end, nc, errc)
	})
}

// startOurEngine is startOurServer with an Engine whose handler echoes
// each message from OnMessage; errc receives the upgrade's error or the
// one OnClose is given.
func startOurEngine(t *testing.T, up Upgrader) (*httptest.Server, <-chan error) {
	errc := make(chan error, 1)
	e, err := NewEngine(EngineOptions{Loops: 1})
	require.NoError(t, err)
	h := &engineRecorder{echo: true, opened: make(chan *Conn, 1), closed: errc}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.Upgrade(&up, w, r, nil, h); err != nil {
			errc <- err
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		e.Close()
	})
	return srv, errc
}
