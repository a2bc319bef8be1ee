package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wsforge/websocket"
)

// fakeSuite mimics the parts of a fuzzingserver the client relies on.
type fakeSuite struct {
	count string // sent verbatim by /getCaseCount

	// handlers counts running handlers. httptest.Server.Close does not wait
	// for hijacked connections, so the test waits on this instead.
	handlers sync.WaitGroup

	mu            sync.Mutex
	casesRun      []int
	caseAgents    []string
	reportsAgents []string
	errs          []error
}

func (s *fakeSuite) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *fakeSuite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()

	var handle func(*websocket.Conn, *http.Request) error
	switch r.URL.Path {
	case "/getCaseCount":
		handle = s.getCaseCount
	case "/runCase":
		handle = s.runCase
	case "/updateReports":
		handle = s.updateReports
	default:
		s.fail(fmt.Errorf("unexpected request for %s", r.URL))
		http.NotFound(w, r)
		return
	}
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.fail(fmt.Errorf("%s: upgrade: %w", r.URL.Path, err))
		return
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		s.fail(err)
		return
	}
	if err := handle(conn, r); err != nil {
		s.fail(fmt.Errorf("%s: %w", r.URL, err))
	}
}

func (s *fakeSuite) getCaseCount(conn *websocket.Conn, _ *http.Request) error {
	if err := conn.WriteMessage(websocket.TextMessage, []byte(s.count)); err != nil {
		return err
	}
	return closeAndAwaitReply(conn)
}

func (s *fakeSuite) runCase(conn *websocket.Conn, r *http.Request) error {
	n, err := strconv.Atoi(r.URL.Query().Get("case"))
	if err != nil {
		return err
	}
	sent := []struct {
		msgType int
		payload []byte
	}{
		{websocket.TextMessage, []byte("case " + strconv.Itoa(n))},
		{websocket.BinaryMessage, []byte{byte(n), 0, 0xff}},
	}
	for _, m := range sent {
		if err := conn.WriteMessage(m.msgType, m.payload); err != nil {
			return err
		}
	}
	for i, m := range sent {
		mt, got, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("reading echo %d: %w", i, err)
		}
		if mt != m.msgType || !bytes.Equal(got, m.payload) {
			return fmt.Errorf("echo %d: got type %d %q, want type %d %q", i, mt, got, m.msgType, m.payload)
		}
	}
	if err := closeAndAwaitReply(conn); err != nil {
		return err
	}
	s.mu.Lock()
	s.casesRun = append(s.casesRun, n)
	s.caseAgents = append(s.caseAgents, r.URL.Query().Get("agent"))
	s.mu.Unlock()
	return nil
}

func (s *fakeSuite) updateReports(conn *websocket.Conn, r *http.Request) error {
	s.mu.Lock()
	s.reportsAgents = append(s.reportsAgents, r.URL.Query().Get("agent"))
	s.mu.Unlock()
	return closeAndAwaitReply(conn)
}

// closeAndAwaitReply starts a closing handshake with 1000, as the real suite
// does at the end of every exchange, and checks that the client takes part.
func closeAndAwaitReply(conn *websocket.Conn) error {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := conn.WriteMessage(websocket.CloseMessage, msg); err != nil {
		return err
	}
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return nil
			}
			return fmt.Errorf("awaiting close reply: %w", err)
		}
	}
}

func TestClientAgainstFakeSuite(t *testing.T) {
	tests := []struct {
		name      string
		count     string
		agent     string
		wantCases []int
		wantErr   string // empty: run succeeds and reports are updated
	}{
		{name: "three cases", count: "3", agent: "wsforge", wantCases: []int{1, 2, 3}},
		{name: "agent needing escaping", count: "1", agent: "ws forge/1.0&x", wantCases: []int{1}},
		{name: "no cases", count: "0", agent: "wsforge"},
		{name: "bad count", count: "three", agent: "wsforge", wantErr: `bad count "three"`},
		{name: "negative count", count: "-1", agent: "wsforge", wantErr: `bad count "-1"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			suite := &fakeSuite{count: tc.count}
			srv := httptest.NewServer(suite)
			defer srv.Close()

			var out bytes.Buffer
			err := newSuiteClient("ws"+strings.TrimPrefix(srv.URL, "http")+"/", tc.agent, &out).run()
			// Every handler started before run returned, since each
			// handshake completes inside one.
			suite.handlers.Wait()

			require.Empty(t, suite.errs, "fake suite saw errors; client output:\n%s", out.String())
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Empty(t, suite.casesRun)
				assert.Empty(t, suite.reportsAgents, "reports must not be updated after a failed count")
				return
			}
			require.NoError(t, err, "client output:\n%s", out.String())
			assert.ElementsMatch(t, tc.wantCases, suite.casesRun)
			for _, a := range suite.caseAgents {
				assert.Equal(t, tc.agent, a)
			}
			assert.Equal(t, []string{tc.agent}, suite.reportsAgents)

			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			require.Len(t, lines, len(tc.wantCases)+2, out.String())
			assert.Equal(t, fmt.Sprintf("%d cases", len(tc.wantCases)), lines[0])
			for i := range tc.wantCases {
				assert.True(t, strings.HasPrefix(lines[i+1], fmt.Sprintf("case %d/%d: done", i+1, len(tc.wantCases))), lines[i+1])
			}
			assert.Equal(t, "reports updated", lines[len(lines)-1])
		})
	}
}

func TestClientCaseDialFailureIsReported(t *testing.T) {
	// A suite whose /runCase refuses the upgrade: the run goes on to the
	// reports but fails overall.
	suite := &fakeSuite{count: "2"}
	mux := http.NewServeMux()
	mux.Handle("/", suite)
	mux.HandleFunc("/runCase", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var out bytes.Buffer
	err := newSuiteClient("ws"+strings.TrimPrefix(srv.URL, "http"), "wsforge", &out).run()
	suite.handlers.Wait()

	require.Empty(t, suite.errs)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 of 2 cases could not be run")
	assert.Contains(t, out.String(), "case 1/2: run case 1: ")
	assert.Equal(t, []string{"wsforge"}, suite.reportsAgents)
}
