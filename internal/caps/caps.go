// Package caps builds store wrappers that have exactly the optional
// capabilities of the store they wrap: [refresh.Locker],
// [refresh.TryLocker], [refresh.CompareAndSwapper] and [refresh.Deleter].
//
// The engine discovers a capability by a type assertion, and a method set
// is static: a wrapper that always had Delete would claim what its backend
// cannot do, one that never had it would hide what the backend can. So
// there is one type per combination (three lock levels × CompareAndSwap ×
// Delete), written once here for every wrapper of the module (sealed,
// storetest.Faults) instead of once in each.
package caps

import (
	"context"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// Methods are the optional methods of a wrapper. A nil one is absent.
// TryLock counts only with Lock: a TryLocker is a Locker.
type Methods struct {
	Lock           func(ctx context.Context, key string) (unlock func(), err error)
	TryLock        func(ctx context.Context, key string) (unlock func(), ok bool, err error)
	CompareAndSwap func(ctx context.Context, key string, old, new *oauth2.Token) error
	Delete         func(ctx context.Context, key string) error
}

// With returns base with the methods of m that are not nil, and no other
// optional ones. Only base's Load and Save are promoted, except when m has
// no method at all: then With returns base itself, which must therefore
// have no optional method of its own.
//
// The result is a pointer, so that two stores compare without a panic
// (a struct of funcs is not comparable).
func With(base refresh.TokenStore, m Methods) refresh.TokenStore {
	lk, tl, cs, dl := locker{m.Lock}, tryLocker{m.TryLock}, casser{m.CompareAndSwap}, deleter{m.Delete}
	lock := noLock
	switch {
	case m.Lock != nil && m.TryLock != nil:
		lock = withTryLock
	case m.Lock != nil:
		lock = withLock
	}
	switch (set{lock, m.CompareAndSwap != nil, m.Delete != nil}) {
	case set{noLock, false, false}:
		return base
	case set{noLock, true, false}:
		return &casStore{base, cs}
	case set{noLock, false, true}:
		return &delStore{base, dl}
	case set{noLock, true, true}:
		return &casDelStore{base, cs, dl}
	case set{withLock, false, false}:
		return &lockStore{base, lk}
	case set{withLock, true, false}:
		return &lockCASStore{base, lk, cs}
	case set{withLock, false, true}:
		return &lockDelStore{base, lk, dl}
	case set{withLock, true, true}:
		return &lockCASDelStore{base, lk, cs, dl}
	case set{withTryLock, false, false}:
		return &tryLockStore{base, lk, tl}
	case set{withTryLock, true, false}:
		return &tryLockCASStore{base, lk, tl, cs}
	case set{withTryLock, false, true}:
		return &tryLockDelStore{base, lk, tl, dl}
	default: // set{withTryLock, true, true}
		return &tryLockCASDelStore{base, lk, tl, cs, dl}
	}
}

// set is a combination of capabilities.
type set struct {
	lock     lockLevel
	cas, del bool
}

type lockLevel int

const (
	noLock lockLevel = iota
	withLock
	withTryLock // Lock and TryLock
)

// One method each, so that a combination is a struct that embeds them.
type (
	locker struct {
		f func(context.Context, string) (func(), error)
	}
	tryLocker struct {
		f func(context.Context, string) (func(), bool, error)
	}
	casser struct {
		f func(context.Context, string, *oauth2.Token, *oauth2.Token) error
	}
	deleter struct {
		f func(context.Context, string) error
	}
)

func (x locker) Lock(ctx context.Context, key string) (func(), error) { return x.f(ctx, key) }

func (x tryLocker) TryLock(ctx context.Context, key string) (func(), bool, error) {
	return x.f(ctx, key)
}

func (x casser) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return x.f(ctx, key, old, new)
}

func (x deleter) Delete(ctx context.Context, key string) error { return x.f(ctx, key) }

// The combinations beyond a plain store.
type (
	casStore struct {
		refresh.TokenStore
		casser
	}
	delStore struct {
		refresh.TokenStore
		deleter
	}
	casDelStore struct {
		refresh.TokenStore
		casser
		deleter
	}
	lockStore struct {
		refresh.TokenStore
		locker
	}
	lockCASStore struct {
		refresh.TokenStore
		locker
		casser
	}
	lockDelStore struct {
		refresh.TokenStore
		locker
		deleter
	}
	lockCASDelStore struct {
		refresh.TokenStore
		locker
		casser
		deleter
	}
	tryLockStore struct {
		refresh.TokenStore
		locker
		tryLocker
	}
	tryLockCASStore struct {
		refresh.TokenStore
		locker
		tryLocker
		casser
	}
	tryLockDelStore struct {
		refresh.TokenStore
		locker
		tryLocker
		deleter
	}
	tryLockCASDelStore struct {
		refresh.TokenStore
		locker
		tryLocker
		casser
		deleter
	}
)
