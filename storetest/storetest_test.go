package storetest

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

func TestMemoryStore(t *testing.T) {
	Run(t, func(t *testing.T) refresh.TokenStore { return new(refresh.MemoryStore) })
}

func TestLockStore(t *testing.T) {
	Run(t, func(t *testing.T) refresh.TokenStore { return newLockStore() })
}

// TestSharedStore runs the suite against one store shared by every
// subtest, as a store backed by a shared database would be: the keys of the
// subtests must not collide.
func TestSharedStore(t *testing.T) {
	shared := newLockStore()
	Run(t, func(t *testing.T) refresh.TokenStore { return shared })
}

// TestCheckNames pins the subtest names Run reports, which users pass to
// go test -run.
func TestCheckNames(t *testing.T) {
	want := []string{
		"NotFound", "RoundTrip", "Overwrite", "KeyIsolation", "NoAliasing", "Concurrent", "ContextCancelled", "Extra",
		"Lock/Exclusion", "Lock/ContextEnd", "Lock/Cancel", "Lock/Reacquire",
		"TryLock/Free", "TryLock/Held", "TryLock/Exclusion", "TryLock/ContextEnded",
		"CAS/Create", "CAS/Swap", "CAS/StaleAfterSave", "CAS/Race", "CAS/ComparesTokensNotExpiry",
		"Delete/Missing", "Delete/Load", "Delete/Other", "Delete/CAS", "Delete/RacesCAS",
	}
	if got := allChecks(); !slices.Equal(got, want) {
		t.Errorf("checks: got %q, want %q", got, want)
	}
}

// TestChecksPassCorrectStore runs every check through the recorder, with
// the short test options, on a correct store: the recorder and the options
// that prove the broken stores fail must not make a correct one fail.
func TestChecksPassCorrectStore(t *testing.T) {
	for _, name := range allChecks() {
		if msgs := runCheck(t, name, newLockStore()); len(msgs) > 0 {
			t.Errorf("check %s failed a correct store:\n%s", name, strings.Join(msgs, "\n"))
		}
	}
}

// noLock is a Lock that does not exclude anyone.
func noLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	return func() {}, nil
}

// deafLock waits for the lock whatever happens to ctx.
func deafLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	ch := s.lockChan(key)
	ch <- struct{}{}
	return func() { <-ch }, nil
}

// opaqueLock gives up when ctx ends, with an error that hides why.
func opaqueLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	ch := s.lockChan(key)
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, errors.New("opaqueLock: gave up")
	}
}

// leakyLock gives up when ctx ends but leaves behind a waiter that takes
// the lock later and never releases it.
func leakyLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	ch := s.lockChan(key)
	got := make(chan struct{})
	go func() {
		ch <- struct{}{}
		close(got)
	}()
	select {
	case <-got:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// globalLock locks every key with the same lock.
func globalLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	return s.Lock(ctx, "the only lock")
}

// stuckLock never releases a lock.
func stuckLock(s *lockStore, ctx context.Context, key string) (func(), error) {
	_, err := s.Lock(ctx, key)
	return func() {}, err
}

func lockVariantOf(lock func(*lockStore, context.Context, string) (func(), error)) func(*testing.T) refresh.TokenStore {
	return func(*testing.T) refresh.TokenStore { return &lockVariant{newLockStore(), lock} }
}

func tryVariantOf(try func(*lockStore, context.Context, string) (func(), bool, error)) func(*testing.T) refresh.TokenStore {
	return func(*testing.T) refresh.TokenStore { return &tryVariant{newLockStore(), try} }
}

// waitingTryLock waits for a holder, as Lock does.
func waitingTryLock(s *lockStore, ctx context.Context, key string) (func(), bool, error) {
	u, err := s.Lock(ctx, key)
	return u, err == nil, err
}

// freeTryLock takes nothing and says it took the lock.
func freeTryLock(s *lockStore, ctx context.Context, key string) (func(), bool, error) {
	return func() {}, true, nil
}

// heldTryLock always finds the key held.
func heldTryLock(s *lockStore, ctx context.Context, key string) (func(), bool, error) {
	return nil, false, nil
}

// separateTryLock takes a lock of its own, which Lock does not see.
func separateTryLock(s *lockStore, ctx context.Context, key string) (func(), bool, error) {
	return s.TryLock(ctx, "try\x00"+key)
}

// erringTryLock fails when the key is held instead of saying so.
func erringTryLock(s *lockStore, ctx context.Context, key string) (func(), bool, error) {
	u, ok, err := s.TryLock(ctx, key)
	if !ok && err == nil {
		err = errors.New("erringTryLock: held")
	}
	return u, ok, err
}

func casStoreOf(same func(stored, old *oauth2.Token) bool, conflict error, gap time.Duration) func(*testing.T) refresh.TokenStore {
	return func(*testing.T) refresh.TokenStore { return &casStore{same: same, conflict: conflict, gap: gap} }
}

func keyMapStoreOf(mapKey func(string) string) func(*testing.T) refresh.TokenStore {
	return func(*testing.T) refresh.TokenStore { return &keyMapStore{mapKey: mapKey} }
}

func transformStoreOf(transform func(*oauth2.Token)) func(*testing.T) refresh.TokenStore {
	return func(*testing.T) refresh.TokenStore { return &transformStore{transform: transform} }
}

// TestChecksFailBrokenStores proves that the suite can fail: each broken
// store breaks one rule, and the checks of that rule must report it.
func TestChecksFailBrokenStores(t *testing.T) {
	always := func(stored, old *oauth2.Token) bool { return true }
	errConflict := fmt.Errorf("casStore: %w", refresh.ErrConflict)

	cases := []struct {
		name  string
		store func(t *testing.T) refresh.TokenStore
		fails []string // the checks that must report a failure
	}{{
		name: "missing key loads as nil, nil",
		store: func(*testing.T) refresh.TokenStore {
			return &notFoundStore{missing: func() (*oauth2.Token, error) { return nil, nil }}
		},
		fails: []string{"NotFound", "ContextCancelled"},
	}, {
		name: "missing key loads as another error",
		store: func(*testing.T) refresh.TokenStore {
			return &notFoundStore{missing: func() (*oauth2.Token, error) { return nil, errors.New("not found") }}
		},
		fails: []string{"NotFound"},
	}, {
		name: "missing key loads as an empty token",
		store: func(*testing.T) refresh.TokenStore {
			return &notFoundStore{missing: func() (*oauth2.Token, error) { return &oauth2.Token{}, refresh.ErrNotFound }}
		},
		fails: []string{"NotFound"},
	}, {
		name:  "Expiry kept to the second",
		store: transformStoreOf(func(t *oauth2.Token) { t.Expiry = t.Expiry.Truncate(time.Second) }),
		fails: []string{"RoundTrip"},
	}, {
		name: "Expiry kept as UnixNano",
		store: transformStoreOf(func(t *oauth2.Token) {
			t.Expiry = time.Unix(0, t.Expiry.UnixNano())
		}),
		fails: []string{"RoundTrip", "Overwrite"},
	}, {
		name:  "ExpiresIn lost",
		store: transformStoreOf(func(t *oauth2.Token) { t.ExpiresIn = 0 }),
		fails: []string{"RoundTrip", "Overwrite", "Concurrent"},
	}, {
		name: "empty TokenType saved as Bearer",
		store: transformStoreOf(func(t *oauth2.Token) {
			if t.TokenType == "" {
				t.TokenType = "Bearer"
			}
		}),
		fails: []string{"RoundTrip", "Overwrite"},
	}, {
		name:  "tokens cut to 1 KiB",
		store: transformStoreOf(func(t *oauth2.Token) { t.AccessToken = t.AccessToken[:min(len(t.AccessToken), 1024)] }),
		fails: []string{"RoundTrip"},
	}, {
		name:  "expired tokens dropped",
		store: func(*testing.T) refresh.TokenStore { return new(expiringStore) },
		fails: []string{"RoundTrip"},
	}, {
		name:  "Save merges with the stored token",
		store: func(*testing.T) refresh.TokenStore { return new(mergingStore) },
		fails: []string{"Overwrite"},
	}, {
		name:  "keys folded to lower case",
		store: keyMapStoreOf(strings.ToLower),
		fails: []string{"KeyIsolation"},
	}, {
		name:  "keys trimmed",
		store: keyMapStoreOf(strings.TrimSpace),
		fails: []string{"KeyIsolation"},
	}, {
		name:  "keys cleaned as paths",
		store: keyMapStoreOf(path.Clean),
		fails: []string{"KeyIsolation"},
	}, {
		name:  "keys cut to 255 bytes",
		store: keyMapStoreOf(func(k string) string { return k[:min(len(k), 255)] }),
		fails: []string{"KeyIsolation"},
	}, {
		name:  "keys ignored",
		store: keyMapStoreOf(func(string) string { return "" }),
		fails: []string{"NotFound", "KeyIsolation", "Concurrent"},
	}, {
		name:  "Save and Load share pointers",
		store: func(*testing.T) refresh.TokenStore { return new(aliasingStore) },
		fails: []string{"NoAliasing"},
	}, {
		name:  "Save writes in two steps",
		store: func(*testing.T) refresh.TokenStore { return new(tornStore) },
		fails: []string{"Concurrent"},
	}, {
		name: "hangs on a cancelled context",
		store: func(t *testing.T) refresh.TokenStore {
			stuck := make(chan struct{})
			t.Cleanup(func() { close(stuck) })
			return &ctxStore{onDone: func() { <-stuck }}
		},
		fails: []string{"ContextCancelled"},
	}, {
		name:  "panics on a cancelled context",
		store: func(*testing.T) refresh.TokenStore { return &ctxStore{onDone: func() { panic("cancelled") }} },
		fails: []string{"ContextCancelled"},
	}, {
		name:  "CompareAndSwap does not compare",
		store: casStoreOf(always, errConflict, 0),
		fails: []string{"CAS/Create", "CAS/Swap", "CAS/StaleAfterSave", "CAS/Race", "CAS/ComparesTokensNotExpiry"},
	}, {
		name:  "CompareAndSwap compares pointers",
		store: casStoreOf(func(stored, old *oauth2.Token) bool { return stored == old }, errConflict, 0),
		fails: []string{"CAS/Swap", "CAS/ComparesTokensNotExpiry"},
	}, {
		name: "CompareAndSwap compares Expiry too",
		store: casStoreOf(func(stored, old *oauth2.Token) bool {
			return refresh.SameToken(stored, old) && (stored == nil || stored.Expiry.Equal(old.Expiry))
		}, errConflict, 0),
		fails: []string{"CAS/ComparesTokensNotExpiry"},
	}, {
		name: "CompareAndSwap compares AccessToken only",
		store: casStoreOf(func(stored, old *oauth2.Token) bool {
			if stored == nil || old == nil {
				return stored == old
			}
			return stored.AccessToken == old.AccessToken
		}, errConflict, 0),
		fails: []string{"CAS/ComparesTokensNotExpiry"},
	}, {
		name: "CompareAndSwap treats nil old as a wildcard",
		store: casStoreOf(func(stored, old *oauth2.Token) bool {
			return old == nil || refresh.SameToken(stored, old)
		}, errConflict, 0),
		fails: []string{"CAS/Create"},
	}, {
		name:  "CompareAndSwap checks, then writes later",
		store: casStoreOf(refresh.SameToken, errConflict, 50*time.Millisecond), // a wide window, so even a loaded machine interleaves the racers
		fails: []string{"CAS/Race"},
	}, {
		name:  "CompareAndSwap conflicts with an opaque error",
		store: casStoreOf(refresh.SameToken, errors.New("conflict"), 0),
		fails: []string{"CAS/Create", "CAS/Swap", "CAS/StaleAfterSave", "CAS/Race", "CAS/ComparesTokensNotExpiry"},
	}, {
		name:  "Delete does nothing",
		store: delStoreOf(delNothing),
		fails: []string{"ContextCancelled", "Delete/Missing", "Delete/Load", "Delete/Other", "Delete/CAS", "Delete/RacesCAS"},
	}, {
		name:  "Delete fails on a key without a token",
		store: delStoreOf(delErrsMissing),
		fails: []string{"Delete/Missing"},
	}, {
		name:  "Delete leaves the extras for the next token of the key",
		store: delStoreOf(delKeepsExtra),
		fails: []string{"Delete/Load"},
	}, {
		name:  "Delete marks the token deleted and CompareAndSwap still compares with it",
		store: delStoreOf(delSoft),
		fails: []string{"Delete/Load", "Delete/CAS", "Delete/RacesCAS"},
	}, {
		name:  "Delete does not wait for a CompareAndSwap between its check and its write",
		store: delStoreOf(delUnlocked),
		fails: []string{"Delete/RacesCAS"},
	}, {
		name:  "Delete removes every key that starts with the key",
		store: delStoreOf(delPrefix),
		fails: []string{"Delete/Other"},
	}, {
		name:  "Delete hangs on a cancelled context",
		store: delStoreOf(delHangs),
		fails: []string{"ContextCancelled"},
	}, {
		name:  "Lock does not exclude",
		store: lockVariantOf(noLock),
		fails: []string{"Lock/Exclusion", "Lock/ContextEnd", "Lock/Cancel"},
	}, {
		name:  "Lock ignores its context",
		store: lockVariantOf(deafLock),
		fails: []string{"Lock/ContextEnd", "Lock/Cancel"},
	}, {
		name:  "Lock hides the context's error",
		store: lockVariantOf(opaqueLock),
		fails: []string{"Lock/ContextEnd", "Lock/Cancel"},
	}, {
		name:  "Lock leaves a waiter behind when it gives up",
		store: lockVariantOf(leakyLock),
		fails: []string{"Lock/ContextEnd", "Lock/Cancel"},
	}, {
		name:  "Lock locks every key at once",
		store: lockVariantOf(globalLock),
		fails: []string{"Lock/Exclusion"},
	}, {
		name:  "unlock does not release",
		store: lockVariantOf(stuckLock),
		fails: []string{"Lock/Reacquire", "Lock/ContextEnd", "Lock/Cancel"},
	}, {
		name:  "TryLock waits for the holder",
		store: tryVariantOf(waitingTryLock),
		fails: []string{"TryLock/Free", "TryLock/Held"},
	}, {
		name:  "TryLock takes nothing",
		store: tryVariantOf(freeTryLock),
		fails: []string{"TryLock/Free", "TryLock/Held", "TryLock/Exclusion"},
	}, {
		name:  "TryLock always finds the key held",
		store: tryVariantOf(heldTryLock),
		fails: []string{"TryLock/Free", "TryLock/Held", "TryLock/ContextEnded"},
	}, {
		name:  "TryLock takes a lock Lock does not see",
		store: tryVariantOf(separateTryLock),
		fails: []string{"TryLock/Free", "TryLock/Held", "TryLock/Exclusion"},
	}, {
		name:  "TryLock fails on a held key",
		store: tryVariantOf(erringTryLock),
		fails: []string{"TryLock/Free", "TryLock/Held", "TryLock/Exclusion"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, name := range c.fails {
				msgs := runCheck(t, name, c.store(t))
				if len(msgs) == 0 {
					t.Errorf("check %s passed a store whose %s, want a failure", name, c.name)
					continue
				}
				t.Logf("%s: %s", name, msgs[0])
			}
		})
	}
}
