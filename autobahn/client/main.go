// Command client is the client that the Autobahn|Testsuite drives in its
// fuzzingserver mode:
//
//	go run ./autobahn/client -url ws://127.0.0.1:9001 -agent wsforge
//
// It asks the suite how many cases there are, connects once per case and
// echoes whatever the suite sends until the connection ends, then asks the
// suite to write its reports for the agent.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wsforge/websocket"
	"github.com/wsforge/websocket/autobahn/internal/echo"
)

// closeTimeout bounds each closing handshake the client starts itself.
// Report generation happens before the suite answers /updateReports, and
// can take a while for the full case set.
const closeTimeout = 2 * time.Minute

// suiteClient talks to one fuzzingserver.
type suiteClient struct {
	baseURL string // ws://host:port, without a trailing slash
	agent   string
	dialer  *websocket.Dialer
	out     io.Writer // progress lines
}

func newSuiteClient(baseURL, agent string, out io.Writer) *suiteClient {
	return &suiteClient{
		baseURL: strings.TrimRight(baseURL, "/"),
		agent:   agent,
		dialer: &websocket.Dialer{
			HandshakeTimeout: 30 * time.Second,
			// Compression with the default options, so that the suite's
			// permessage-deflate cases (12.* and 13.*) negotiate it.
			EnableCompression: true,
		},
		out: out,
	}
}

// run executes every case and updates the reports. A case that cannot even
// be connected to does not stop the run, but makes run return an error.
func (c *suiteClient) run() error {
	n, err := c.caseCount()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d cases\n", n)
	failed := 0
	for i := 1; i <= n; i++ {
		end, err := c.runCase(i)
		if err != nil {
			failed++
			fmt.Fprintf(c.out, "case %d/%d: %v\n", i, n, err)
			continue
		}
		fmt.Fprintf(c.out, "case %d/%d: done (%v)\n", i, n, end)
	}
	if err := c.updateReports(); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "reports updated")
	if failed > 0 {
		return fmt.Errorf("%d of %d cases could not be run", failed, n)
	}
	return nil
}

// caseCount asks the suite how many cases it will run.
func (c *suiteClient) caseCount() (int, error) {
	conn, _, err := c.dialer.Dial(c.baseURL+"/getCaseCount", nil)
	if err != nil {
		return 0, fmt.Errorf("get case count: %w", err)
	}
	mt, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("get case count: %w", err)
	}
	// The count was all we came for; the handshake's outcome does not
	// matter to the run.
	conn.CloseGracefully(websocket.CloseNormalClosure, "", closeTimeout)
	if mt != websocket.TextMessage {
		return 0, fmt.Errorf("get case count: got message type %d, want text", mt)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(msg)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("get case count: bad count %q", msg)
	}
	return n, nil
}

// runCase runs case n and returns the error that ended the echo loop,
// normally the suite's close. The returned error is for failures to
// connect at all.
func (c *suiteClient) runCase(n int) (end error, err error) {
	q := url.Values{"case": {strconv.Itoa(n)}, "agent": {c.agent}}
	conn, _, err := c.dialer.Dial(c.baseURL+"/runCase?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("run case %d: %w", n, err)
	}
	defer conn.Close()
	return echo.Stream(conn), nil
}

// updateReports asks the suite to write its reports for the agent and then
// closes the connection with a closing handshake.
func (c *suiteClient) updateReports() error {
	q := url.Values{"agent": {c.agent}}
	conn, _, err := c.dialer.Dial(c.baseURL+"/updateReports?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("update reports: %w", err)
	}
	if err := conn.CloseGracefully(websocket.CloseNormalClosure, "", closeTimeout); err != nil {
		return fmt.Errorf("update reports: %w", err)
	}
	return nil
}

func main() {
	baseURL := flag.String("url", "ws://127.0.0.1:9001", "URL of the fuzzingserver")
	agent := flag.String("agent", "wsforge", "agent name under which the suite reports results")
	flag.Parse()
	if err := newSuiteClient(*baseURL, *agent, os.Stdout).run(); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}
