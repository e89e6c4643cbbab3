package refresh

import (
	"context"
	"sync"
)

// group runs one flight per key at a time, and lets the callers that need
// the same key meanwhile join it: the engine's single-flight. Each purpose
// (refresh, adoption) has a group of its own, so that no name derived from a
// key can meet another key. Unlike golang.org/x/sync/singleflight it knows
// the callers that wait for a flight, for its event.
type group struct {
	mu sync.Mutex
	m  map[string]*flightCall // the flight running for each key
}

type flightCall struct {
	done    chan struct{} // closed when s and err are set
	s       *snapshot
	err     error
	callers []context.Context // of the callers that waited; first the one that started it
	ended   bool              // no caller joins any more
}

// do runs fn as the flight of key, or joins the one running, and waits for
// its result or for the end of ctx. fn runs on a goroutine of its own,
// detached from ctx. It calls callers once, as it ends: from then on a new
// caller starts a new flight, and callers returns those that joined this
// one.
//
// fn must not panic (user code is called through the guards of guard.go);
// if it does anyway, the panic becomes an error of the flight.
func (g *group) do(ctx context.Context, key string, fn func(callers func() []context.Context) (*snapshot, error)) (*snapshot, error) {
	c := g.join(key, ctx, fn)
	select {
	case <-c.done:
		return c.s, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start runs fn as the flight of key, as do does, unless one is running,
// and does not wait for it. Nobody counts as its caller unless they join.
func (g *group) start(key string, fn func(callers func() []context.Context) (*snapshot, error)) {
	g.join(key, nil, fn)
}

// join returns the flight of key, starting fn as it if none is running; a
// non-nil ctx is recorded as a caller's.
func (g *group) join(key string, ctx context.Context, fn func(callers func() []context.Context) (*snapshot, error)) *flightCall {
	g.mu.Lock()
	c, running := g.m[key]
	if !running {
		if g.m == nil {
			g.m = make(map[string]*flightCall)
		}
		c = &flightCall{done: make(chan struct{})}
		g.m[key] = c
	}
	if ctx != nil {
		c.callers = append(c.callers, ctx)
	}
	g.mu.Unlock()
	if !running {
		go g.run(key, c, fn)
	}
	return c
}

func (g *group) run(key string, c *flightCall, fn func(callers func() []context.Context) (*snapshot, error)) {
	defer func() {
		if recover() != nil {
			c.s, c.err = nil, &Error{Key: key, Err: panicError{"refresh"}}
		}
		g.end(key, c)
		close(c.done)
	}()
	c.s, c.err = fn(func() []context.Context { return g.end(key, c) })
}

// end takes c out of the group, once, and returns its callers.
func (g *group) end(key string, c *flightCall) []context.Context {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !c.ended {
		c.ended = true
		delete(g.m, key)
	}
	return c.callers
}
