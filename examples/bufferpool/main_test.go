package main

import (
	"context"
	"log"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/wsforge/websocket"
)

// TestMain lets the test binary be measure's child, as the program is.
func TestMain(m *testing.M) {
	if spec := os.Getenv(clientEnv); spec != "" {
		if err := clientMain(spec); err != nil {
			log.Fatal(err)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// guard bounds every measurement; reaching it is a failure.
const guard = time.Minute

func TestMeasure(t *testing.T) {
	tests := []struct {
		name string
		pool websocket.BufferPool
	}{
		{"no pool", nil},
		{"sync.Pool", &sync.Pool{}},
	}
	const n = 50
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			r, err := measure(ctx, "127.0.0.1:0", n, tt.pool, os.Args[0])
			require.NoError(t, err)
			assert.Equal(t, n, r.Conns, "connections open when measured")
			assert.Equal(t, n, r.GoingAway, "connections closed with 1001")
			// Each connection holds at least its Conn. (Not checked:
			// its handler's stack, which in a test binary that has
			// measured before may come out of stack memory the earlier
			// run left counted as in use; main measures in a fresh
			// process for that reason.)
			assert.Positive(t, r.Heap)
		})
	}
}

// TestMeasureInterrupted checks that Ctrl-C (a cancelled context) ends a
// measurement, its server and its child.
func TestMeasureInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := measure(ctx, "127.0.0.1:0", 10000, nil, os.Args[0])
		done <- err
	}()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(guard):
		require.FailNow(t, "measure did not return")
	}
}
