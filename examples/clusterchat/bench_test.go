package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkCluster measures the cluster of TestCluster (3 nodes, 60 pages
// in 4 rooms, one Redis) on this machine.
//
// throughput: every page sends its share of b.N messages, one at a time,
// each once the previous is acknowledged; msgs/s counts messages stored,
// deliveries/s messages delivered to pages (15 per message), up to the
// moment the last page has the last message.
//
// latency: one page on node0 sends b.N messages one after another, each
// once the previous has reached every page of the room; p50 and p99 are
// the times from the send to the arrival at the 10 pages of the room on
// node1 and node2, that is, through Redis and another node.
func BenchmarkCluster(b *testing.B) {
	// Pages cut off at the end would interleave log lines with the
	// results.
	log.SetOutput(io.Discard)
	defer log.SetOutput(os.Stderr)
	b.Run("throughput", func(b *testing.B) {
		cl := startCluster(b, 3, 60, 4)
		cl.settle("warm")
		b.ResetTimer()
		start := time.Now()
		cl.sendAll("x", b.N)
		cl.settle("end")
		elapsed := time.Since(start)
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(b.N*15)/elapsed.Seconds(), "deliveries/s")
	})

	b.Run("latency", func(b *testing.B) {
		cl := startCluster(b, 3, 60, 4)
		pages := cl.rooms["room0"]
		sender := pages[0]
		var (
			mu  sync.Mutex
			lat []time.Duration
		)
		var others []*tclient
		for _, c := range pages {
			c.mu.Lock()
			if c.cur != sender.cur {
				others = append(others, c)
				c.onMsg = func(_ *tclient, m serverMessage, at time.Time) {
					sent, err := strconv.ParseInt(m.Text, 10, 64)
					if err != nil {
						return
					}
					mu.Lock()
					lat = append(lat, at.Sub(time.Unix(0, sent)))
					mu.Unlock()
				}
			}
			c.mu.Unlock()
		}
		b.ResetTimer()
		for i := range b.N {
			acked := cl.when(int64(i + 1))
			mid := fmt.Sprintf("lat%06d", i)
			sender.add <- inMessage{Mid: mid, Text: strconv.FormatInt(time.Now().UnixNano(), 10)}
			waitFor(b, acked, "ack")
			id, _ := cl.acks.Load(mid)
			for _, c := range others {
				waitFor(b, c.reach(id.(string)), "delivery")
			}
		}
		b.StopTimer()
		mu.Lock()
		defer mu.Unlock()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat)), "samples")
	})
}
