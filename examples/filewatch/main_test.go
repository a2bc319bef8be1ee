package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// guard bounds every wait in these tests; reaching it is a failure, not a
// way of letting time pass.
const guard = 10 * time.Second

var testConfig = Config{WriteWait: guard, PongWait: 30 * time.Second, PingPeriod: 20 * time.Second}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatcherPoll drives one watcher through a file's life, one poll per
// step, and checks what each poll makes of it.
func TestWatcherPoll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.txt")
	require.NoError(t, os.WriteFile(path, []byte("one"), 0o644))
	w := NewWatcher(path, 8)
	first, _ := w.Current()
	require.Equal(t, "one", first.Content)

	later := time.Now().Add(time.Hour)
	steps := []struct {
		name    string
		change  func(t *testing.T)
		changed bool
		content string
		err     string
	}{
		{"nothing happened", func(*testing.T) {}, false, "one", ""},
		{"new size", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("two!"), 0o644))
		}, true, "two!", ""},
		{"same size, new time", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("four"), 0o644))
			require.NoError(t, os.Chtimes(path, later, later))
		}, true, "four", ""},
		{"same size and time", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("five"), 0o644))
			require.NoError(t, os.Chtimes(path, later, later))
		}, false, "four", ""},
		{"too large", func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("0123456789"), 0o644))
		}, true, "01234567", ""},
		{"deleted", func(t *testing.T) { require.NoError(t, os.Remove(path)) }, true, "", "file not found"},
		{"still deleted", func(*testing.T) {}, false, "", "file not found"},
		{"not a file", func(t *testing.T) { require.NoError(t, os.Mkdir(path, 0o755)) }, true, "", path + " is not a regular file"},
		{"back", func(t *testing.T) {
			require.NoError(t, os.Remove(path))
			require.NoError(t, os.WriteFile(path, []byte("six"), 0o644))
		}, true, "six", ""},
	}
	for _, st := range steps {
		// Steps depend on the ones before, so a failure stops the walk.
		ok := t.Run(st.name, func(t *testing.T) {
			_, changed := w.Current()
			st.change(t)
			w.poll()
			assert.Equal(t, st.changed, isClosed(changed))
			got, _ := w.Current()
			assert.Equal(t, st.content, got.Content)
			assert.Equal(t, st.err, got.Err)
			assert.Equal(t, path, got.Path)
		})
		if !ok {
			return
		}
	}
}

type testServer struct {
	s    *Server
	srv  *httptest.Server
	url  string
	path string
}

// start watches a new file holding content, polled every few
// milliseconds, and serves it over loopback.
func start(t *testing.T, content string) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "watched.txt")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	w := NewWatcher(path, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { w.Run(ctx, 5*time.Millisecond); close(runDone) }()
	s := NewServer(w, testConfig)
	srv := httptest.NewServer(newMux(s))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-runDone
		s.Close()
	})
	return &testServer{s: s, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws", path: path}
}

func (ts *testServer) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(ts.url, nil)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func read(t *testing.T, conn *websocket.Conn) snapshot {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	var s snapshot
	require.NoError(t, conn.ReadJSON(&s))
	return s
}

func TestIndexPage(t *testing.T) {
	ts := start(t, "x")
	resp, err := http.Get(ts.srv.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), `location.host + "/ws"`)
}

// TestPagesFollowTheFile checks that every page gets the file on
// connecting and each change after, including its disappearance.
func TestPagesFollowTheFile(t *testing.T) {
	ts := start(t, "hello\n")
	pages := []*websocket.Conn{ts.dial(t), ts.dial(t)}
	for _, p := range pages {
		s := read(t, p)
		assert.Equal(t, "hello\n", s.Content)
		assert.Equal(t, ts.path, s.Path)
		assert.Equal(t, int64(6), s.Size)
	}

	steps := []struct {
		name    string
		change  func() error
		content string
		err     string
	}{
		{"edited", func() error { return replaceFile(ts.path, "hello, world\n") }, "hello, world\n", ""},
		{"deleted", func() error { return os.Remove(ts.path) }, "", "file not found"},
		{"recreated", func() error { return replaceFile(ts.path, "back\n") }, "back\n", ""},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			require.NoError(t, st.change())
			for _, p := range pages {
				s := read(t, p)
				assert.Equal(t, st.content, s.Content)
				assert.Equal(t, st.err, s.Err)
			}
		})
		if !ok {
			return
		}
	}
}

// replaceFile writes content to path in one step, as editors save: the
// poller, running meanwhile, must never see a half-written file.
func replaceFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func TestShutdownTellsPages(t *testing.T) {
	ts := start(t, "x")
	conn := ts.dial(t)
	read(t, conn)

	closed := make(chan struct{})
	go func() { ts.s.Close(); close(closed) }()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(guard)))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	assert.Equal(t, "server shutting down", ce.Text)
	select {
	case <-closed:
	case <-time.After(guard):
		require.FailNow(t, "Close did not return")
	}

	resp, err := http.Get(ts.srv.URL + "/ws")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}
