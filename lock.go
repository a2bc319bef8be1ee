package websocket

import (
	"errors"
	"net"
	"sync"
	"time"
)

// wlock is the lock a writer holds over a Conn's message (msgLock) or
// frame (frameLock). Unlike sync.Mutex, a wait for it can give up: at a
// deadline, or when a channel closes. Unlike the one-slot channel it
// replaced, it costs only its own 16 bytes: a waiter brings a pooled
// channel, through which unlock hands the lock to the longest waiting
// (first in, first out). An idle connection thus holds no channel at
// all; the two it used to hold were 224 bytes, a fifth of what an Engine
// connection costs.
//
// queue says both whether the lock is held and who waits for it: nil when
// free, heldAlone when held with no waiter, else the first of the
// waiters (the lock is held). Without a tail pointer an enqueue walks the
// queue, which is as long as the goroutines writing to one connection at
// once; the 16 bytes saved keep Conn in its size class.
type wlock struct {
	mu    sync.Mutex
	queue *lockWaiter
}

// heldAlone is wlock.queue for a lock held with no waiter.
var heldAlone = new(lockWaiter)

// lockWaiter is a goroutine waiting for a wlock. Waiters are pooled, with
// their channel and timer, so that contended writes do not allocate in
// the steady state.
type lockWaiter struct {
	ready   chan struct{} // one slot: a token when the lock is handed over
	timer   *time.Timer   // made on the first wait with a deadline
	next    *lockWaiter
	granted bool // guarded by the wlock's mu
}

var lockWaiters = sync.Pool{New: func() any { return &lockWaiter{ready: make(chan struct{}, 1)} }}

// errLockCanceled is what lock2 returns when its second channel closes.
var errLockCanceled = errors.New("websocket: lock wait canceled")

// tryLock takes l if it is free, without waiting.
func (l *wlock) tryLock() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.queue != nil {
		return false
	}
	l.queue = heldAlone
	return true
}

// lockWait takes l, waiting as long as it takes.
func (l *wlock) lockWait() { l.lock2(time.Time{}, nil, nil) }

// lock takes l, waiting until deadline at the most (zero: no limit) and
// giving up with errWriteTimeout then, or with net.ErrClosed if done is
// closed first (a nil done never is).
func (l *wlock) lock(deadline time.Time, done <-chan struct{}) error {
	return l.lock2(deadline, done, nil)
}

// lock2 is lock with a second channel, whose closing ends the wait with
// errLockCanceled. A wait that gives up just as the lock is handed over
// keeps it and returns nil: the caller holds the lock either way it
// would with a select between the two.
func (l *wlock) lock2(deadline time.Time, done, canceled <-chan struct{}) error {
	l.mu.Lock()
	if l.queue == nil {
		l.queue = heldAlone
		l.mu.Unlock()
		return nil
	}
	var d time.Duration
	if !deadline.IsZero() {
		if d = time.Until(deadline); d <= 0 {
			l.mu.Unlock()
			return errWriteTimeout
		}
	}
	w := lockWaiters.Get().(*lockWaiter)
	w.next, w.granted = nil, false
	if l.queue == heldAlone {
		l.queue = w
	} else {
		last := l.queue
		for last.next != nil {
			last = last.next
		}
		last.next = w
	}
	l.mu.Unlock()

	var timeout <-chan time.Time
	if d > 0 {
		if w.timer == nil {
			w.timer = time.NewTimer(d)
		} else {
			w.timer.Reset(d)
		}
		timeout = w.timer.C
	}
	var err error
	select {
	case <-w.ready:
	case <-timeout:
		err = errWriteTimeout
	case <-done:
		err = net.ErrClosed
	case <-canceled:
		err = errLockCanceled
	}
	if err != nil {
		l.mu.Lock()
		if w.granted {
			// Handed over as it gave up: take the token, keep the lock.
			<-w.ready
			err = nil
		} else {
			l.remove(w)
		}
		l.mu.Unlock()
	}
	if timeout != nil && !w.timer.Stop() {
		// Fired (or firing): drop a value left in the channel, so that
		// the pooled timer starts clean. Under Go 1.23's timers there is
		// none and this does nothing.
		select {
		case <-w.timer.C:
		default:
		}
	}
	lockWaiters.Put(w)
	return err
}

// remove takes w, which gave up, out of the queue. l.mu is held; the lock
// stays held by whoever holds it.
func (l *wlock) remove(w *lockWaiter) {
	var prev *lockWaiter
	for p := l.queue; p != nil && p != heldAlone; prev, p = p, p.next {
		if p != w {
			continue
		}
		switch {
		case prev != nil:
			prev.next = p.next
		case p.next != nil:
			l.queue = p.next
		default:
			l.queue = heldAlone
		}
		return
	}
}

// unlock releases l, handing it to the longest waiting goroutine if any.
func (l *wlock) unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.queue
	if w == heldAlone {
		l.queue = nil
		return
	}
	if w.next != nil {
		l.queue = w.next
	} else {
		l.queue = heldAlone
	}
	w.granted = true
	w.ready <- struct{}{}
}
