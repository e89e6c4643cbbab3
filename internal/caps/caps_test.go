package caps_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/caps"
)

// plain has Load and Save only: MemoryStore in a named field, whose
// CompareAndSwap and Delete are not promoted.
type plain struct{ m refresh.MemoryStore }

func (p *plain) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return p.m.Load(ctx, key)
}

func (p *plain) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return p.m.Save(ctx, key, tok)
}

// TestWithExactCapabilities: each of the 12 combinations has exactly the
// capabilities asked for, and each method calls its func.
func TestWithExactCapabilities(t *testing.T) {
	ctx := context.Background()
	for lock := range 3 { // none, Lock, Lock and TryLock
		for _, cas := range []bool{false, true} {
			for _, del := range []bool{false, true} {
				name := fmt.Sprintf("lock%d/cas=%v/del=%v", lock, cas, del)
				var called []string
				var m caps.Methods
				if lock >= 1 {
					m.Lock = func(context.Context, string) (func(), error) { called = append(called, "Lock"); return func() {}, nil }
				}
				if lock == 2 {
					m.TryLock = func(context.Context, string) (func(), bool, error) {
						called = append(called, "TryLock")
						return func() {}, true, nil
					}
				}
				if cas {
					m.CompareAndSwap = func(context.Context, string, *oauth2.Token, *oauth2.Token) error {
						called = append(called, "CompareAndSwap")
						return nil
					}
				}
				if del {
					m.Delete = func(context.Context, string) error { called = append(called, "Delete"); return nil }
				}
				s := caps.With(new(plain), m)
				l, isLock := s.(refresh.Locker)
				tl, isTry := s.(refresh.TryLocker)
				c, isCAS := s.(refresh.CompareAndSwapper)
				d, isDel := s.(refresh.Deleter)
				if isLock != (lock >= 1) || isTry != (lock == 2) || isCAS != cas || isDel != del {
					t.Errorf("%s: %T is Locker %v, TryLocker %v, CompareAndSwapper %v, Deleter %v",
						name, s, isLock, isTry, isCAS, isDel)
					continue
				}
				var want []string
				if isLock {
					l.Lock(ctx, "k")
					want = append(want, "Lock")
				}
				if isTry {
					tl.TryLock(ctx, "k")
					want = append(want, "TryLock")
				}
				if isCAS {
					c.CompareAndSwap(ctx, "k", nil, &oauth2.Token{AccessToken: "a"})
					want = append(want, "CompareAndSwap")
				}
				if isDel {
					d.Delete(ctx, "k")
					want = append(want, "Delete")
				}
				if fmt.Sprint(called) != fmt.Sprint(want) {
					t.Errorf("%s: called %v, want %v", name, called, want)
				}
				if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "a"}); err != nil {
					t.Errorf("%s: Save: %v", name, err)
				}
				if _, err := s.Load(ctx, "k"); err != nil {
					t.Errorf("%s: Load of base's token: %v", name, err)
				}
			}
		}
	}
}

// TestWithTryLockNeedsLock: TryLock alone gives no lock at all, since a
// TryLocker must be a Locker.
func TestWithTryLockNeedsLock(t *testing.T) {
	s := caps.With(new(plain), caps.Methods{TryLock: func(context.Context, string) (func(), bool, error) { return nil, false, nil }})
	if _, ok := s.(refresh.Locker); ok {
		t.Errorf("%T is a Locker", s)
	}
	if _, ok := s.(refresh.TryLocker); ok {
		t.Errorf("%T is a TryLocker", s)
	}
}
