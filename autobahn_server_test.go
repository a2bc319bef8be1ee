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
	abRun(t, abRunServerCase)
}

func abRunServerCase(t *testing.T, c abCase) {
	errc := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		errc <- echoStreamed(conn)
	}))
	defer srv.Close()

	nc, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), testWait)
	require.NoError(t, err)
	br := abClientHandshake(t, nc, srv.Listener.Addr().String())
	newABPeer(t, nc, br, true).run(c)
	if c.note != "" {
		t.Log(c.note)
	}
	abCheckEnd(t, c.end, nc, errc)
}

// abClientHandshake performs the opening handshake by hand, as the suite's
// client does, and returns the reader to go on with.
func abClientHandshake(t *testing.T, nc net.Conn, host string) *bufio.Reader {
	t.Helper()
	br, resp := abClientHandshakeOffer(t, nc, host, "")
	require.Empty(t, resp.Header.Values("Sec-WebSocket-Extensions"), "no extension was offered")
	return br
}

// abClientHandshakeOffer is abClientHandshake with offer, when not empty,
// as the Sec-WebSocket-Extensions header. It checks the parts of the
// response that do not depend on the offer and returns the response for
// the caller to check the rest.
func abClientHandshakeOffer(t *testing.T, nc net.Conn, host, offer string) (*bufio.Reader, *http.Response) {
	t.Helper()
	key := abNewKey(t)
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
	require.Equal(t, abAcceptKey(key), resp.Header.Get("Sec-WebSocket-Accept"))
	nc.SetDeadline(time.Time{})
	return br, resp
}
