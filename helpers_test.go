package websocket

import "time"

// The test kit: what the package's tests share.

// testWait bounds every wait of the tests for an event (a read, a write,
// a goroutine to end), so that a broken library fails a test instead of
// hanging the suite. It is a failure guard, never a delay: nothing waits
// for it to pass, and it is long enough to hold on a loaded machine under
// the race detector.
const testWait = 20 * time.Second
