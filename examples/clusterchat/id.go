package main

import (
	"fmt"
	"strconv"
	"strings"
)

// streamID is a Redis stream entry ID, "<ms>-<seq>". The stream hands
// them out in increasing order, which is the room's order: comparing IDs
// is how a connection tells a message it has already sent from a new one.
type streamID struct {
	ms, seq uint64
}

// parseStreamID parses a full "<ms>-<seq>" ID; the shorthand forms Redis
// accepts in commands ("$", "+", a bare "<ms>") are not IDs of entries.
func parseStreamID(s string) (streamID, error) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, fmt.Errorf("stream ID %q: want <ms>-<seq>", s)
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("stream ID %q: want <ms>-<seq>", s)
	}
	return streamID{a, b}, nil
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || id.ms == o.ms && id.seq < o.seq
}

// next is the smallest ID after id. XRANGE's start is inclusive; starting
// at next(last) is the exclusive "(last" of Redis 6.2 that works on
// older servers too.
func (id streamID) next() streamID {
	if id.seq == ^uint64(0) {
		return streamID{id.ms + 1, 0}
	}
	return streamID{id.ms, id.seq + 1}
}

// prev is the largest ID before id, or the zero ID.
func (id streamID) prev() streamID {
	switch {
	case id.seq > 0:
		return streamID{id.ms, id.seq - 1}
	case id.ms > 0:
		return streamID{id.ms - 1, ^uint64(0)}
	}
	return streamID{}
}
