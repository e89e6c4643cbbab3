package redisstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// freeSuffix ends the name of the pub/sub channel of a lock: the lock's
	// key and this. A channel name is not a key, but it is derived from
	// one that no other key or store shares (a prefix has no braces, so
	// where the hash tag starts tells where the prefix ends), and it keeps
	// the key's hash tag, so that on a Cluster the sharded channel is in
	// the lock's slot, as SPUBLISH from the release script requires.
	freeSuffix = ":free"

	// wakeFallback is the longest pause between two tries of a Lock that
	// waits with its subscription confirmed: wake-ups are at most once (a
	// connection that drops loses them), so a waiter still tries now and
	// then. It tries sooner when the lease is due to expire, as the lease
	// of a holder that died does without a wake-up.
	wakeFallback = 500 * time.Millisecond

	// wakeLinger is how long a pub/sub connection stays open after its
	// last waiter left, so that locks contended now and then do not dial
	// it anew each time.
	wakeLinger = 10 * time.Second

	// wakeOpTimeout bounds each SUBSCRIBE or UNSUBSCRIBE, and the dial
	// that the first one makes.
	wakeOpTimeout = 5 * time.Second
)

// closedChan is a wake-up that has already come.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// wakeHub is the table of a Store's waiting Locks, per channel, and of the
// pub/sub connections they share: one for a single Redis, one per master
// node for a Cluster (sharded channels can be subscribed to only on the
// node that serves their slot). A connection is opened by the first
// waiter and closed wakeLinger after its last waiter left.
type wakeHub struct {
	client redis.UniversalClient

	mu     sync.Mutex
	linger time.Duration        // wakeLinger; tests shorten it
	conns  map[string]*wakeConn // by route: "" or a Cluster node's address
	subs   map[string]*wakeSub  // by channel

	opened, woken atomic.Int64 // connections opened, messages heard: for tests
}

// wakeConn is one pub/sub connection and the goroutine that reads it.
type wakeConn struct {
	route   string
	sharded bool // SSUBSCRIBE rather than SUBSCRIBE
	ps      *redis.PubSub
	linger  time.Duration // hub.linger when c was opened
	n       int           // entries of subs on this connection; guarded by hub.mu
	ops     []wakeOp      // to send, in order; guarded by hub.mu
	kick    chan struct{} // ops to send, or n fell to 0
}

// wakeOp is a SUBSCRIBE (sub) or UNSUBSCRIBE of ch.
type wakeOp struct {
	ch  string
	sub bool
}

// wakeSub is a channel that Locks of this Store wait on. It stays in the
// table while it has waiters or subscriptions unconfirmed, so that a
// confirmation is never taken for a later one's.
type wakeSub struct {
	ch      string
	conn    *wakeConn
	refs    int           // waiters
	pending int           // SUBSCRIBEs sent and not yet confirmed
	live    bool          // subscribed: a release will be heard
	wake    chan struct{} // closed at the next wake-up, then replaced
}

// broadcast wakes every waiter of sub.
func (sub *wakeSub) broadcast() {
	close(sub.wake)
	sub.wake = make(chan struct{})
}

// route tells which connection serves ch, and whether it is sharded; ok
// is false if the client has no pub/sub that the store can use (a Ring,
// whose shards it cannot tell apart, or a client of another type): then
// waiters only poll.
func (h *wakeHub) route(ctx context.Context, ch string) (route string, sharded, ok bool) {
	switch c := h.client.(type) {
	case *redis.Client:
		return "", false, true
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, ch)
		if err != nil {
			return "", false, false
		}
		return node.Options().Addr, true, true
	}
	return "", false, false
}

// publish is the command with which the release script announces a lock
// released: SPUBLISH on a Cluster, PUBLISH otherwise.
func publish(client redis.UniversalClient) string {
	if _, ok := client.(*redis.ClusterClient); ok {
		return "spublish"
	}
	return "publish"
}

// join registers a waiter on ch, subscribing if it is the first. It
// returns the waiter's entry (nil if waiters only poll), a channel closed
// at its first wake-up, and whether the subscription is already confirmed
// (then the channel is closed already: a release may have gone unheard
// between the waiter's last try and now).
func (h *wakeHub) join(ctx context.Context, ch string) (*wakeSub, <-chan struct{}, bool) {
	route, sharded, ok := h.route(ctx, ch)
	if !ok {
		return nil, nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	sub := h.subs[ch]
	if sub != nil && sub.refs > 0 {
		sub.refs++
		if sub.live {
			return sub, closedChan, true
		}
		return sub, sub.wake, false
	}
	if sub == nil {
		c := h.conn(route, sharded)
		c.n++
		sub = &wakeSub{ch: ch, conn: c, wake: make(chan struct{})}
		h.subs[ch] = sub
	}
	sub.refs, sub.live = 1, false
	sub.pending++
	sub.conn.send(wakeOp{ch: ch, sub: true})
	return sub, sub.wake, false
}

// next returns the channel of sub's next wake-up and whether sub is
// subscribed now. A waiter takes it before each try, so that a wake-up
// during the try is not missed.
func (h *wakeHub) next(sub *wakeSub) (<-chan struct{}, bool) {
	if sub == nil {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return sub.wake, sub.live
}

// leave unregisters a waiter of sub, unsubscribing if it was the last.
func (h *wakeHub) leave(sub *wakeSub) {
	if sub == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	sub.refs--
	if sub.refs > 0 || h.subs[sub.ch] != sub {
		return
	}
	sub.live = false
	sub.conn.send(wakeOp{ch: sub.ch})
	if sub.pending == 0 {
		h.drop(sub)
	}
}

// drop removes sub from the table. h.mu is held.
func (h *wakeHub) drop(sub *wakeSub) {
	delete(h.subs, sub.ch)
	if sub.conn.n--; sub.conn.n == 0 {
		sub.conn.poke()
	}
}

// conn returns the connection of route, opening it if there is none.
// h.mu is held.
func (h *wakeHub) conn(route string, sharded bool) *wakeConn {
	if c := h.conns[route]; c != nil {
		return c
	}
	if h.conns == nil {
		h.conns, h.subs = map[string]*wakeConn{}, map[string]*wakeSub{}
	}
	c := &wakeConn{route: route, sharded: sharded, linger: h.linger, kick: make(chan struct{}, 1)}
	if cc, ok := h.client.(*redis.ClusterClient); ok {
		c.ps = cc.SSubscribe(context.Background()) // dials at the first SSUBSCRIBE, the node of its channel
	} else {
		c.ps = h.client.Subscribe(context.Background())
	}
	h.conns[route] = c
	h.opened.Add(1)
	go h.run(c)
	return c
}

// send queues op for c's goroutine, which sends the ops in order. h.mu is
// held: a join and a leave of one channel queue their ops in the order
// they change the table.
func (c *wakeConn) send(op wakeOp) {
	c.ops = append(c.ops, op)
	c.poke()
}

func (c *wakeConn) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run sends c's ops and reads its messages until c has had no channel for
// the linger time, or its client is closed.
func (h *wakeHub) run(c *wakeConn) {
	// The first SUBSCRIBE goes out before anything reads: on a Cluster, the
	// connection is dialled to the node of the first channel it is used for.
	idle := h.flush(c)
	msgs := c.ps.ChannelWithSubscriptions()
	t := time.NewTimer(c.linger)
	defer t.Stop()
	for {
		if idle {
			t.Reset(c.linger)
		} else {
			t.Stop()
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				h.ended(c)
				return
			}
			idle = h.dispatch(c, m)
		case <-c.kick:
			idle = h.flush(c)
		case <-t.C:
			if h.closeIdle(c) {
				c.ps.Close()
				for range msgs { // until go-redis's reader is done
				}
				return
			}
		}
	}
}

// flush sends the ops queued for c, and reports whether c has no channel.
// A failed write is not retried: go-redis keeps the set of channels and
// subscribes to them again when it reconnects, and a waiter not yet
// confirmed polls meanwhile.
func (h *wakeHub) flush(c *wakeConn) (idle bool) {
	h.mu.Lock()
	ops := c.ops
	c.ops = nil
	h.mu.Unlock()
	for _, op := range ops {
		ctx, cancel := context.WithTimeout(context.Background(), wakeOpTimeout)
		switch {
		case op.sub && c.sharded:
			c.ps.SSubscribe(ctx, op.ch)
		case op.sub:
			c.ps.Subscribe(ctx, op.ch)
		case c.sharded:
			c.ps.SUnsubscribe(ctx, op.ch)
		default:
			c.ps.Unsubscribe(ctx, op.ch)
		}
		cancel()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.n == 0
}

// dispatch handles a message of c: a release wakes the channel's waiters;
// a subscription confirmed wakes them too (the first time, for the try
// that follows subscribing; after a reconnect, because releases may have
// been lost meanwhile). It reports whether c has no channel.
func (h *wakeHub) dispatch(c *wakeConn, m any) (idle bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch m := m.(type) {
	case *redis.Message:
		if sub := h.subs[m.Channel]; sub != nil && sub.conn == c {
			h.woken.Add(1)
			sub.broadcast()
		}
	case *redis.Subscription:
		if sub := h.subs[m.Channel]; sub != nil && sub.conn == c {
			h.confirm(sub, m.Kind)
		}
	}
	return c.n == 0
}

// confirm handles the reply of kind to a SUBSCRIBE or UNSUBSCRIBE of sub's
// channel. h.mu is held.
func (h *wakeHub) confirm(sub *wakeSub, kind string) {
	switch kind {
	case "subscribe", "ssubscribe":
		sub.pending = max(0, sub.pending-1)
		switch {
		case sub.refs == 0 && sub.pending == 0:
			h.drop(sub)
		case sub.refs > 0:
			sub.live = sub.pending == 0
			sub.broadcast()
		}
	case "unsubscribe", "sunsubscribe":
		// Not the reply to an UNSUBSCRIBE of ours, which goes out only
		// when a channel has no waiter: the server dropped the channel
		// (its Cluster slot moved). Its waiters poll from now on.
		if sub.refs > 0 && sub.pending == 0 && sub.live {
			sub.live = false
			sub.broadcast()
		}
	}
}

// closeIdle removes c from the table if it still has no channel.
func (h *wakeHub) closeIdle(c *wakeConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.n > 0 {
		return false
	}
	delete(h.conns, c.route)
	return true
}

// ended handles the end of c's messages while c was in use (its client
// was closed): c's channels leave the table, and their waiters, woken,
// poll from now on; a later waiter opens a new connection.
func (h *wakeHub) ended(c *wakeConn) {
	h.mu.Lock()
	if h.conns[c.route] == c {
		delete(h.conns, c.route)
	}
	for ch, sub := range h.subs {
		if sub.conn == c {
			delete(h.subs, ch)
			sub.live = false
			sub.broadcast()
		}
	}
	h.mu.Unlock()
	c.ps.Close()
}
