package websocket

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitersOf returns how many goroutines wait for l.
func waitersOf(l *wlock) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for w := l.queue; w != nil && w != heldAlone; w = w.next {
		n++
	}
	return n
}

// untilWaiters waits until n goroutines wait for l: the waits under test
// have queued. Polling is the only way to see it; testWait bounds it.
func untilWaiters(t *testing.T, l *wlock, n int) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for waitersOf(l) != n {
		require.True(t, time.Now().Before(deadline), "%d waiters, want %d", waitersOf(l), n)
		<-time.After(time.Millisecond)
	}
}

func TestWlockGivesUp(t *testing.T) {
	tests := []struct {
		name string
		wait func(l *wlock, done, canceled chan struct{}) error
		end  func(done, canceled chan struct{})
		want error
	}{
		{"deadline", func(l *wlock, _, _ chan struct{}) error {
			return l.lock(time.Now().Add(20*time.Millisecond), nil)
		}, func(_, _ chan struct{}) {}, errWriteTimeout},
		{"past deadline", func(l *wlock, _, _ chan struct{}) error {
			return l.lock(time.Now().Add(-time.Second), nil)
		}, func(_, _ chan struct{}) {}, errWriteTimeout},
		{"done", func(l *wlock, done, _ chan struct{}) error {
			return l.lock(time.Time{}, done)
		}, func(done, _ chan struct{}) { close(done) }, net.ErrClosed},
		{"canceled", func(l *wlock, done, canceled chan struct{}) error {
			return l.lock2(time.Time{}, done, canceled)
		}, func(_, canceled chan struct{}) { close(canceled) }, errLockCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l wlock
			require.True(t, l.tryLock())
			assert.False(t, l.tryLock(), "held")
			done, canceled := make(chan struct{}), make(chan struct{})
			errc := make(chan error, 1)
			go func() { errc <- tt.wait(&l, done, canceled) }()
			if tt.name != "past deadline" {
				untilWaiters(t, &l, 1)
			}
			tt.end(done, canceled)
			assert.ErrorIs(t, wait(t, errc, "the wait to give up"), tt.want)
			assert.Zero(t, waitersOf(&l), "the waiter left the queue")
			l.unlock()
			assert.True(t, l.tryLock(), "free again once released")
		})
	}
}

// TestWlockHandsOverInOrder: waiters get the lock first in, first out,
// one at a time, and those that gave up (the first, and one in the
// middle) are skipped.
func TestWlockHandsOverInOrder(t *testing.T) {
	var l wlock
	l.lockWait()
	got := make(chan int, 4)
	giveUp := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var done chan struct{}
			if i == 0 || i == 2 {
				done = giveUp
			}
			if l.lock(time.Time{}, done) != nil {
				return
			}
			got <- i
		}()
		untilWaiters(t, &l, i+1)
	}
	close(giveUp)
	untilWaiters(t, &l, 2)
	for _, want := range []int{1, 3} {
		l.unlock()
		assert.Equal(t, want, wait(t, got, "the next waiter"))
	}
	l.unlock()
	wg.Wait()
	assert.True(t, l.tryLock())
}

// TestWlockExclusive hammers the lock from many goroutines, some giving
// up at short deadlines: at no time do two hold it.
func TestWlockExclusive(t *testing.T) {
	var l wlock
	var holders, peak int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				var deadline time.Time
				if i%3 == 0 {
					deadline = time.Now().Add(10 * time.Microsecond)
				}
				if l.lock(deadline, nil) != nil {
					continue
				}
				mu.Lock()
				holders++
				peak = max(peak, holders)
				mu.Unlock()
				mu.Lock()
				holders--
				mu.Unlock()
				l.unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, peak)
	assert.True(t, l.tryLock(), "free at the end")
	assert.Zero(t, waitersOf(&l))
}

func TestWlockZeroAllocsUncontended(t *testing.T) {
	var l wlock
	allocs := testing.AllocsPerRun(100, func() {
		l.lock(time.Now().Add(time.Second), nil)
		l.unlock()
		l.tryLock()
		l.unlock()
	})
	assert.Zero(t, allocs)
}
