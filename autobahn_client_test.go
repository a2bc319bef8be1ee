package websocket

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAutobahnClient replays the Autobahn|Testsuite cases (fuzzingserver
// mode) against our client: the scripted peer is the server, and the
// client under test, from Dialer, runs the echo loop of autobahn/client.
func TestAutobahnClient(t *testing.T) {
	runConformanceCases(t, runClientCase)
}

func runClientCase(t *testing.T, c conformanceCase) {
	nc, errc := acceptOurClient(t, Dialer{HandshakeTimeout: testWait})
	br := answerHandshake(t, nc)
	newScriptedPeer(t, nc, br, false).run(c)
	if c.note != "" {
		t.Log(c.note)
	}
	checkCaseEnd(t, c.end, nc, errc)
}

// acceptOurClient dials a loopback listener with d from a goroutine that
// then runs the streaming echo loop of autobahn/client, and returns the
// accepted end; errc receives the dial's error or the one that ended the
// loop.
func acceptOurClient(t *testing.T, d Dialer) (net.Conn, <-chan error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	errc := make(chan error, 1)
	go func() {
		conn, _, err := d.Dial("ws://"+ln.Addr().String()+"/runCase", nil)
		if err != nil {
			errc <- err
			return
		}
		// As in autobahn/client: the connection is closed once the
		// echo loop is done.
		defer conn.Close()
		errc <- echoStreamed(conn)
	}()

	ln.(*net.TCPListener).SetDeadline(time.Now().Add(testWait))
	nc, err := ln.Accept()
	require.NoError(t, err)
	return nc, errc
}

// answerHandshake answers the client's opening handshake by hand, as the
// suite's server does, and returns the reader to go on with.
func answerHandshake(t *testing.T, nc net.Conn) *bufio.Reader {
	t.Helper()
	return answerHandshakeWith(t, nc, func(req *http.Request) string {
		require.Empty(t, req.Header.Values("Sec-WebSocket-Extensions"), "the client under test does not enable compression")
		return ""
	})
}

// answerHandshakeWith is answerHandshake with respond choosing, from the
// request, the Sec-WebSocket-Extensions response ("" for none).
func answerHandshakeWith(t *testing.T, nc net.Conn, respond func(*http.Request) string) *bufio.Reader {
	t.Helper()
	nc.SetDeadline(time.Now().Add(testWait))
	br := bufio.NewReaderSize(nc, 64<<10)
	req, err := http.ReadRequest(br)
	require.NoError(t, err)
	require.Equal(t, http.MethodGet, req.Method)
	require.True(t, strings.EqualFold(req.Header.Get("Upgrade"), "websocket"), "Upgrade: %q", req.Header.Get("Upgrade"))
	require.Contains(t, strings.ToLower(req.Header.Get("Connection")), "upgrade")
	require.Equal(t, "13", req.Header.Get("Sec-WebSocket-Version"))
	key := req.Header.Get("Sec-WebSocket-Key")
	require.NotEmpty(t, key)
	ext := ""
	if r := respond(req); r != "" {
		ext = "Sec-WebSocket-Extensions: " + r + "\r\n"
	}
	_, err = fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n", acceptKeyFor(key), ext)
	require.NoError(t, err)
	nc.SetDeadline(time.Time{})
	return br
}
