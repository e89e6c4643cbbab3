package procs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// pauser wraps a worker's store. With pausing on, the first save of a
// refreshed token (its CompareAndSwap, or its Save if the store has no
// CompareAndSwap) says "paused" and waits for the parent's "resume": the
// moment between the token endpoint's answer and the save, in which the
// parent kills or freezes the process. Every other call goes through.
//
// wrap keeps exactly the store's capabilities, so that the engine treats
// the wrapped store as it treats the store itself.
type pauser struct {
	refresh.Locker
	on     bool
	casNow bool // the store has CompareAndSwap: pause there, not in Save
	out    *out

	first   atomic.Bool   // the paused save has begun
	resume  chan struct{} // closed by release
	once    sync.Once     // closes resume
	result  atomic.Value  // string: the paused save's outcome, once it returned
	stopped atomic.Bool   // result is set
}

func newPauser(l refresh.Locker, on bool, o *out) *pauser {
	_, cas := l.(refresh.CompareAndSwapper)
	return &pauser{Locker: l, on: on, casNow: cas, out: o, resume: make(chan struct{})}
}

// release lets the paused save go on (now, or when it comes).
func (p *pauser) release() { p.once.Do(func() { close(p.resume) }) }

// done reports whether the paused save has returned.
func (p *pauser) done() bool { return p.stopped.Load() }

// outcome is the paused save's outcome, or "" before it returned.
func (p *pauser) outcome() string {
	s, _ := p.result.Load().(string)
	return s
}

// save runs do, pausing first if this is the save to pause.
func (p *pauser) save(do func() error) error {
	if !p.on || !p.first.CompareAndSwap(false, true) {
		return do()
	}
	p.out.line("paused")
	<-p.resume
	err := do()
	outcome := "ok"
	switch {
	case errors.Is(err, refresh.ErrConflict):
		outcome = "conflict"
	case err != nil:
		outcome = "error: " + err.Error()
	}
	p.result.Store(outcome)
	p.stopped.Store(true)
	p.out.line("saved %s", outcome)
	return err
}

// Lock says "locking" when it is called and "locked" once it holds the
// lock, so that the parent sees who waits.
func (p *pauser) Lock(ctx context.Context, key string) (func(), error) {
	p.out.line("locking")
	unlock, err := p.Locker.Lock(ctx, key)
	if err == nil {
		p.out.line("locked")
	}
	return unlock, err
}

func (p *pauser) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if p.casNow {
		return p.Locker.Save(ctx, key, tok)
	}
	return p.save(func() error { return p.Locker.Save(ctx, key, tok) })
}

// wrap returns p with the capabilities of the store it wraps: each one
// is a part that the wrapper types combine.
func (p *pauser) wrap() refresh.Locker {
	c, cas := p.Locker.(refresh.CompareAndSwapper)
	tl, try := p.Locker.(refresh.TryLocker)
	switch {
	case cas && try:
		return &struct {
			*pauser
			casPart
			tryPart
		}{p, casPart{p, c}, tryPart{p, tl}}
	case cas:
		return &struct {
			*pauser
			casPart
		}{p, casPart{p, c}}
	case try:
		return &struct {
			*pauser
			tryPart
		}{p, tryPart{p, tl}}
	}
	return p
}

// casPart pauses the store's CompareAndSwap.
type casPart struct {
	p *pauser
	c refresh.CompareAndSwapper
}

func (w casPart) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return w.p.save(func() error { return w.c.CompareAndSwap(ctx, key, old, new) })
}

// tryPart tells the parent about the locks TryLock takes.
type tryPart struct {
	p  *pauser
	tl refresh.TryLocker
}

func (w tryPart) TryLock(ctx context.Context, key string) (func(), bool, error) {
	unlock, ok, err := w.tl.TryLock(ctx, key)
	if ok {
		w.p.out.line("locking")
		w.p.out.line("locked")
	}
	return unlock, ok, err
}
