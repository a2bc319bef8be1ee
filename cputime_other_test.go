//go:build !unix

package websocket

import "time"

// processCPUTime reports -1: the process's CPU time is not read here, and
// the tests skip their CPU bounds.
func processCPUTime() time.Duration { return -1 }
