package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// The HTTP/2 path needs an extended CONNECT client, which Go's net/http
// lacks: browser/ tests it in Chromium, and the library's own tests over
// Node's http2. Here: the certificate, the page, and the same handler over
// HTTP/1.1 and TLS.
func TestSelfSigned(t *testing.T) {
	cert, err := selfSigned()
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	require.NoError(t, leaf.VerifyHostname("127.0.0.1"))
	require.NoError(t, leaf.VerifyHostname("localhost"))
	require.True(t, time.Now().Before(leaf.NotAfter))
}

func TestEchoOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(newMux())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/")
	require.NoError(t, err)
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 2, resp.ProtoMajor, "the page over HTTP/2")
	require.Contains(t, string(page), `"wss://" + location.host + "/echo"`)

	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, EnableCompression: true, HandshakeTimeout: 10 * time.Second}
	conn, hr, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+"/echo", http.Header{"Origin": {srv.URL}})
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, http.StatusSwitchingProtocols, hr.StatusCode)
	require.Contains(t, conn.Extensions(), "permessage-deflate")
	for _, msg := range []string{"hello", strings.Repeat("é", 10000)} {
		require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte(msg)))
		mt, got, err := conn.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, websocket.TextMessage, mt)
		require.Equal(t, msg, string(got))
	}
	require.NoError(t, conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")))
	_, _, err = conn.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseNormalClosure), "%v", err)
}
