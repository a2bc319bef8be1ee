package main

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence: for each room it serves, a node keeps a key listing the names
// of its pages there, with a TTL it renews every PresenceInterval, and
// adds itself to the room's set of nodes. Everyone reads the keys of the
// nodes in that set; a node that dies stops renewing its keys, they
// expire, and it drops out of every list (and is taken out of the set by
// whoever sees its key gone). Polling, rather than announcing changes,
// is what notices the dead: they announce nothing.

// presenceMessage is the list of names in the room, across all nodes.
type presenceMessage struct {
	Type  string   `json:"type"` // "presence"
	Users []string `json:"users"`
}

// presenceLoop runs a presence round every PresenceInterval, and at once
// when a page joins or leaves, until the node stops.
func (n *Node) presenceLoop() {
	defer n.presence.Done()
	t := time.NewTicker(n.cfg.PresenceInterval)
	defer t.Stop()
	sent := make(map[string][]byte)
	b := newBackoff()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.presenceKick:
		}
		if err := n.presenceRound(sent); err != nil && n.ctx.Err() == nil {
			b.fail(n, "presence", err)
		} else {
			b.ok(n, "presence")
		}
	}
}

// localRoom is what a presence round needs of one room, copied out under
// the locks.
type localRoom struct {
	name    string
	names   []string
	changed bool
	clients []*client
}

func (n *Node) snapshot() (rooms []localRoom, gone []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	gone, n.gone = n.gone, nil
	for _, r := range n.rooms {
		lr := localRoom{name: r.name}
		r.mu.Lock()
		for c := range r.clients {
			lr.names = append(lr.names, c.name)
			lr.clients = append(lr.clients, c)
		}
		lr.changed, r.changed = r.changed, false
		r.mu.Unlock()
		rooms = append(rooms, lr)
	}
	// A room left and joined again since the last round is in both
	// lists; its key must stay.
	gone = slices.DeleteFunc(gone, func(g string) bool {
		return slices.ContainsFunc(rooms, func(lr localRoom) bool { return lr.name == g })
	})
	return rooms, gone
}

func (n *Node) presenceRound(sent map[string][]byte) error {
	rooms, gone := n.snapshot()
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.SendTimeout)
	defer cancel()

	id := n.cfg.NodeID
	pipe := n.rdb.Pipeline()
	for _, g := range gone {
		pipe.Del(ctx, presenceKey(g, id))
		pipe.SRem(ctx, nodesKey(g), id)
		delete(sent, g)
	}
	members := make([]*redis.StringSliceCmd, len(rooms))
	for i, lr := range rooms {
		names, _ := json.Marshal(lr.names)
		pipe.Set(ctx, presenceKey(lr.name, id), names, n.cfg.PresenceTTL)
		pipe.SAdd(ctx, nodesKey(lr.name), id)
		members[i] = pipe.SMembers(ctx, nodesKey(lr.name))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		n.requeueGone(gone)
		return err
	}
	if len(rooms) == 0 {
		return nil
	}

	lists := make([]*redis.SliceCmd, len(rooms))
	for i, lr := range rooms {
		keys := make([]string, 0, len(members[i].Val()))
		for _, node := range members[i].Val() {
			keys = append(keys, presenceKey(lr.name, node))
		}
		lists[i] = pipe.MGet(ctx, keys...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	for i, lr := range rooms {
		var users []string
		for j, v := range lists[i].Val() {
			s, ok := v.(string)
			if !ok {
				// Its key expired: a node that died.
				pipe.SRem(ctx, nodesKey(lr.name), members[i].Val()[j])
				continue
			}
			var names []string
			if json.Unmarshal([]byte(s), &names) == nil {
				users = append(users, names...)
			}
		}
		slices.Sort(users)
		data, _ := json.Marshal(presenceMessage{Type: "presence", Users: slices.Compact(users)})
		if !lr.changed && string(data) == string(sent[lr.name]) {
			continue
		}
		sent[lr.name] = data
		for _, c := range lr.clients {
			c.setPresence(data)
		}
	}
	if pipe.Len() > 0 {
		_, err := pipe.Exec(ctx)
		return err
	}
	return nil
}

func (n *Node) requeueGone(gone []string) {
	n.mu.Lock()
	n.gone = append(n.gone, gone...)
	n.mu.Unlock()
}

// clearPresence deletes this node's presence keys, so that its pages
// leave every list at once rather than when the keys expire.
func (n *Node) clearPresence() error {
	rooms, gone := n.snapshot()
	for _, lr := range rooms {
		gone = append(gone, lr.name)
	}
	if len(gone) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.SendTimeout)
	defer cancel()
	pipe := n.rdb.Pipeline()
	for _, g := range gone {
		pipe.Del(ctx, presenceKey(g, n.cfg.NodeID))
		pipe.SRem(ctx, nodesKey(g), n.cfg.NodeID)
	}
	_, err := pipe.Exec(ctx)
	return err
}
