package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// snapshot is what a page is shown: the file's content, or why it cannot
// be read.
type snapshot struct {
	Path      string    `json:"path"`
	Err       string    `json:"error,omitempty"`
	Content   string    `json:"content"`
	Size      int64     `json:"size"`
	ModTime   time.Time `json:"modTime"`
	Truncated bool      `json:"truncated,omitempty"`
}

// same reports whether a poll found nothing new: the same size and
// modification time, or the same error.
func (s snapshot) same(o snapshot) bool {
	return s.Err == o.Err && s.Size == o.Size && s.ModTime.Equal(o.ModTime)
}

// Watcher polls one file and keeps its latest snapshot. Every page reads
// the same snapshot, so the file is stat'ed once per period however many
// pages are open, and a page that falls behind skips straight to the
// newest version.
type Watcher struct {
	path    string
	maxSize int64

	mu      sync.Mutex
	cur     snapshot
	changed chan struct{} // closed and replaced on every change
}

// NewWatcher reads path once; Run keeps it up to date. Files larger than
// maxSize are shown cut to maxSize.
func NewWatcher(path string, maxSize int64) *Watcher {
	w := &Watcher{path: path, maxSize: maxSize, changed: make(chan struct{})}
	w.cur = w.load()
	return w
}

// Current returns the latest snapshot and a channel that is closed when a
// newer one is available.
func (w *Watcher) Current() (snapshot, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur, w.changed
}

// Run polls the file every period until ctx is cancelled.
func (w *Watcher) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll()
		}
	}
}

func (w *Watcher) poll() {
	w.mu.Lock()
	prev := w.cur
	w.mu.Unlock()
	// Stat first: reading the whole file on every tick would cost as much
	// as the file is large.
	if st, err := os.Stat(w.path); err == nil && prev.Err == "" &&
		st.Size() == prev.Size && st.ModTime().Equal(prev.ModTime) {
		return
	}
	next := w.load()
	if next.same(prev) {
		return
	}
	w.mu.Lock()
	w.cur = next
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// load reads the file. Its size and time come from the open file, so they
// describe what was read even if the file is replaced meanwhile.
func (w *Watcher) load() snapshot {
	s := snapshot{Path: w.path}
	f, err := os.Open(w.path)
	if err != nil {
		s.Err = errText(err)
		return s
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.Err = errText(err)
		return s
	}
	if !st.Mode().IsRegular() {
		s.Err = fmt.Sprintf("%s is not a regular file", w.path)
		return s
	}
	buf, err := io.ReadAll(io.LimitReader(f, w.maxSize+1))
	if err != nil {
		s.Err = errText(err)
		return s
	}
	if int64(len(buf)) > w.maxSize {
		buf, s.Truncated = buf[:w.maxSize], true
	}
	s.Content, s.Size, s.ModTime = string(buf), st.Size(), st.ModTime()
	return s
}

// errText describes err for the page: what went wrong, without repeating
// the path the page already shows.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "file not found"
		case errors.Is(err, os.ErrPermission):
			return "permission denied"
		}
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}
