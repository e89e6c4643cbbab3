package storetest

import (
	"context"
	"fmt"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// wait applies ft's delay and gate; it returns the context's error if ctx
// ends first.
func (ft Fault) wait(ctx context.Context) error {
	if ft.Reached != nil {
		ft.Reached <- struct{}{}
	}
	if ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ft.Gate != nil {
		select {
		case <-ft.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (ft Fault) err() error {
	if ft.Err != nil {
		return ft.Err
	}
	return fmt.Errorf("%w (%v)", ErrInjected, ft.Op)
}

// before runs the part of ft that comes before the store is reached: the
// wait, and a failure that does not reach the store. It reports whether the
// call is to go on to the store.
func (ft Fault) before(ctx context.Context) error {
	if err := ft.wait(ctx); err != nil {
		return err
	}
	switch ft.Kind {
	case FaultError:
		return ft.err()
	case FaultPanic:
		panic("storetest: injected panic in " + ft.Op.String())
	}
	return nil
}

// after applies ft to a call that reached the store and returned err.
func (ft Fault) after(err error) error {
	if err != nil {
		return err
	}
	switch ft.Kind {
	case FaultErrorAfter:
		return ft.err()
	case FaultPanicAfter:
		panic("storetest: injected panic after " + ft.Op.String())
	}
	return nil
}

// faultyStore is the plain store of Faults.Wrap, and the calls of every
// capability it passes on.
type faultyStore struct {
	f *Faults
	s refresh.TokenStore
}

func (w *faultyStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	ft := w.f.next(OpLoad, key)
	if err := ft.before(ctx); err != nil {
		return nil, err
	}
	tok, err := w.s.Load(ctx, key)
	if err := ft.after(err); err != nil {
		return nil, err
	}
	return tok, nil
}

func (w *faultyStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	ft := w.f.next(OpSave, key)
	if err := ft.before(ctx); err != nil {
		return err
	}
	return ft.after(w.s.Save(ctx, key, tok))
}

func (w *faultyStore) compareAndSwap(c refresh.CompareAndSwapper, ctx context.Context, key string, old, new *oauth2.Token) error {
	ft := w.f.next(OpCompareAndSwap, key)
	if err := ft.before(ctx); err != nil {
		return err
	}
	return ft.after(c.CompareAndSwap(ctx, key, old, new))
}

func (w *faultyStore) delete(d refresh.Deleter, ctx context.Context, key string) error {
	ft := w.f.next(OpDelete, key)
	if err := ft.before(ctx); err != nil {
		return err
	}
	return ft.after(d.Delete(ctx, key))
}

func (w *faultyStore) lock(l refresh.Locker, ctx context.Context, key string) (func(), error) {
	ft := w.f.next(OpLock, key)
	if err := ft.before(ctx); err != nil {
		return nil, err
	}
	unlock, err := l.Lock(ctx, key)
	if err == nil && (ft.Kind == FaultErrorAfter || ft.Kind == FaultPanicAfter) {
		unlock()
	}
	if err := ft.after(err); err != nil {
		return nil, err
	}
	return w.unlocker(key, unlock), nil
}

func (w *faultyStore) tryLock(l refresh.TryLocker, ctx context.Context, key string) (func(), bool, error) {
	ft := w.f.next(OpTryLock, key)
	if err := ft.before(ctx); err != nil {
		return nil, false, err
	}
	unlock, ok, err := l.TryLock(ctx, key)
	if ok && (ft.Kind == FaultErrorAfter || ft.Kind == FaultPanicAfter) {
		unlock()
	}
	if err := ft.after(err); err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, nil
	}
	return w.unlocker(key, unlock), true, nil
}

// unlocker wraps the unlock func of a lock just taken with the faults of
// OpUnlock.
func (w *faultyStore) unlocker(key string, unlock func()) func() {
	return func() {
		ft := w.f.next(OpUnlock, key)
		ft.wait(context.Background())
		unlock()
		if ft.Kind == FaultPanic || ft.Kind == FaultPanicAfter {
			panic("storetest: injected panic in Unlock")
		}
	}
}
