// Package storetest is a conformance suite for implementations of
// [refresh.TokenStore], and of the optional [refresh.Locker],
// [refresh.TryLocker], [refresh.CompareAndSwapper] and [refresh.Deleter]
// capabilities.
//
// A store's own tests call [Run] with a function that makes a new, empty
// store:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
//			return mystore.New(...)
//		})
//	}
//
// Run runs these subtests (go test -run 'TestMyStore/CAS/Race' runs one):
//
//   - NotFound: a key never saved loads as [refresh.ErrNotFound] and a nil
//     token, also when it is a prefix or an extension of a saved key.
//   - RoundTrip: Load returns what Save was given: AccessToken, TokenType,
//     RefreshToken, ExpiresIn, and Expiry as the same instant to the
//     millisecond, whatever its location; a zero Expiry stays zero, empty
//     fields stay empty, an expired token is kept (its refresh token outlives
//     it), 4 KiB tokens of base64 and JWT characters come back unchanged.
//     Extra is checked by its own subtest.
//   - Overwrite: a Save replaces the whole token; nothing of the previous
//     one is kept.
//   - KeyIsolation: keys that differ by case, spaces, "/", "..", "\",
//     unicode normalization, or only in the last byte of 1000, and the empty
//     key "", hold separate tokens, and a Save to one never changes another.
//   - NoAliasing: changes to a token passed to Save or returned by Load do
//     not reach the store, and the store does not change what it returned.
//   - Concurrent: under concurrent Saves and Loads, Load returns a whole
//     token saved to that key, never a mix of two saves.
//   - ContextCancelled: calls with a context that has already ended return
//     promptly, with or without an error, and do not panic.
//   - Extra: a token's extras (oauth2.Token.Extra, such as id_token and
//     scope) come back from Load as saved, JSON scalars as encoding/json
//     reads them (string, float64, bool); a token saved without extras loads
//     without any, even over a token that had some; a CompareAndSwap stores
//     the new token's extras. Every store of this module keeps them.
//   - Lock/Exclusion, Lock/ContextEnd, Lock/Cancel, Lock/Reacquire, if the
//     store is a [refresh.Locker]: one holder at a time per key, keys
//     independent; a Lock that waits returns when its context ends, with an
//     error wrapping the context's, and holds nothing; a key can be locked
//     again after unlock.
//   - TryLock/Free, TryLock/Held, TryLock/Exclusion, TryLock/ContextEnded,
//     if the store is a [refresh.TryLocker]: TryLock of a free key takes the
//     lock that Lock takes (both are kept out until unlock); of a held key
//     it returns not ok and a nil error without waiting for the holder, and
//     leaves nothing behind; Lock and TryLock callers hold a key one at a
//     time; with an ended context it gets the lock or an error wrapping
//     the context's, never "held" for a free key.
//   - CAS/Create, CAS/Swap, CAS/StaleAfterSave, CAS/Race,
//     CAS/ComparesTokensNotExpiry, if the store is a
//     [refresh.CompareAndSwapper]: old nil creates, and only on an empty key;
//     a stale old fails with [refresh.ErrConflict] and changes nothing, also
//     after a plain Save; of racing swaps exactly one wins; tokens are
//     compared as [refresh.SameToken] does, not by Expiry or by pointer.
//   - Delete/Missing, Delete/Load, Delete/Other, if the store is a
//     [refresh.Deleter]: deleting a key without a token is not an error;
//     after Delete, Load finds nothing, and the same token saved again
//     without extras (by Save, or by CompareAndSwap from nil) has none of
//     the deleted one's; other keys, also those that extend the key or that
//     it extends, are left as they were.
//   - Delete/CAS, Delete/RacesCAS, if it is also a
//     [refresh.CompareAndSwapper]: after Delete, a CompareAndSwap from the
//     deleted token fails with [refresh.ErrConflict] and stores nothing,
//     and one from nil stores; a Delete and a CompareAndSwap from the
//     stored token at the same moment leave the key deleted, whichever
//     goes first, in each of many rounds.
//
// The subtests of a capability the store lacks are skipped.
//
// newStore is called once per subtest, with that subtest's *testing.T, so a
// store can register its own t.Cleanup. Subtests run one after another, but
// each uses its store from several goroutines; run the tests with -race. A
// call that could hang is bounded by a 5 s watchdog, so a broken store fails
// rather than blocks. Every key a subtest uses starts with a prefix made of
// the subtest's name and a random suffix, so a backend shared by subtests
// (or by concurrent test runs) need not be emptied between them; the one
// exception is KeyIsolation's empty key "", which cannot carry a prefix: a
// backend shared by concurrent test runs should be given a private
// namespace by newStore.
//
// # Stores that embed another
//
// A store that embeds a [refresh.CompareAndSwapper] (such as
// [refresh.MemoryStore], or a store of another package) gets its
// CompareAndSwap by promotion, and the engine saves refreshed tokens with
// CompareAndSwap, not Save. Overriding only Save to add to the writes (a
// copy, a notification, a metric) is then bypassed by the engine, and Run
// cannot tell: the promoted CompareAndSwap still conforms. Override both, or
// hold the inner store in a named field and implement only Load and Save.
// The example "wrapping" of [refresh.MemoryStore] shows the first way and
// the trap.
//
// # Real processes
//
// [RunProcesses] proves a store with real OS processes (the test binary
// re-executed as workers, each with its own engine over the store) and a
// strict server: a storm of 401s, a holder killed (SIGKILL) while it holds
// the lock, a holder stopped (SIGSTOP) past its lease. It counts refreshes,
// rotations and reuses on the server's side, and tells the losses no store
// can prevent (a holder killed or frozen past its lease between the
// server's answer and its save) from the store's own faults:
//
//	func TestMyStoreProcesses(t *testing.T) {
//		storetest.RunProcesses(t, func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
//			return mystore.New(ns.Name) // the same backend in every process
//		}, storetest.ProcessOptions{})
//	}
//
// # Fault injection
//
// [Faults] wraps any store (keeping exactly its capabilities) and injects
// errors, panics and delays into Load, Save, CompareAndSwap, Lock, TryLock,
// unlock and Delete, scripted one by one or at random with a seed, including failures
// that happen after the store did its work (a save that committed although
// its caller saw it fail). Use it to test how your code, or the engine over
// your store, survives a store that misbehaves.
package storetest

import (
	"testing"
	"time"

	"github.com/oauthkit/refresh"
)

// Run checks that the stores made by newStore honour the refresh.TokenStore
// contract, and, when they implement them, the refresh.Locker,
// refresh.TryLocker, refresh.CompareAndSwapper and refresh.Deleter
// contracts.
//
// newStore is called once per subtest and must return an empty store (or one
// whose keys do not collide with other subtests: Run uses distinct random key
// prefixes per subtest anyway, so a shared backend with a per-test prefix
// works). Stores are used concurrently.
func Run(t *testing.T, newStore func(t *testing.T) refresh.TokenStore) {
	t.Helper()
	run(t, newStore, defaultOptions)
}

// tb is the part of testing.TB the checks use. The suite's own tests
// substitute a recorder for *testing.T, to prove that each check fails on a
// store that breaks its part of the contract.
type tb interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// options are the durations the checks wait. The suite's own tests shorten
// them, so that the broken stores that hang do not slow them down.
type options struct {
	// watchdog bounds every single store call that could hang.
	watchdog time.Duration
	// slow bounds a whole concurrent phase (many calls).
	slow time.Duration
	// lockWait is how long a Lock waits behind a holder before its
	// context ends.
	lockWait time.Duration
}

var defaultOptions = options{
	watchdog: 5 * time.Second,
	slow:     60 * time.Second,
	lockWait: 100 * time.Millisecond,
}

// A check tests one part of a contract on one store.
type check[S refresh.TokenStore] struct {
	name string
	run  func(t tb, s S, o options)
}

// storeChecks apply to every refresh.TokenStore.
var storeChecks = []check[refresh.TokenStore]{
	{"NotFound", checkNotFound},
	{"RoundTrip", checkRoundTrip},
	{"Overwrite", checkOverwrite},
	{"KeyIsolation", checkKeyIsolation},
	{"NoAliasing", checkNoAliasing},
	{"Concurrent", checkConcurrent},
	{"ContextCancelled", checkContextCancelled},
	{"Extra", checkExtra},
}

// lockChecks apply to stores that implement refresh.Locker.
var lockChecks = []check[refresh.Locker]{
	{"Exclusion", checkLockExclusion},
	{"ContextEnd", checkLockContextEnd},
	{"Cancel", checkLockCancel},
	{"Reacquire", checkLockReacquire},
}

// tryLockChecks apply to stores that implement refresh.TryLocker.
var tryLockChecks = []check[refresh.TryLocker]{
	{"Free", checkTryLockFree},
	{"Held", checkTryLockHeld},
	{"Exclusion", checkTryLockExclusion},
	{"ContextEnded", checkTryLockContextEnded},
}

// deleteChecks apply to stores that implement refresh.Deleter, and
// deleteCASChecks to those that are also refresh.CompareAndSwappers; both
// are the group "Delete".
var deleteChecks = []check[refresh.Deleter]{
	{"Missing", checkDeleteMissing},
	{"Load", checkDeleteLoad},
	{"Other", checkDeleteOther},
}

var deleteCASChecks = []check[deleteCASer]{
	{"CAS", checkDeleteCAS},
	{"RacesCAS", checkDeleteRacesCAS},
}

// casChecks apply to stores that implement refresh.CompareAndSwapper.
var casChecks = []check[refresh.CompareAndSwapper]{
	{"Create", checkCASCreate},
	{"Swap", checkCASSwap},
	{"StaleAfterSave", checkCASStaleAfterSave},
	{"Race", checkCASRace},
	{"ComparesTokensNotExpiry", checkCASComparesTokensNotExpiry},
}

func run(t *testing.T, newStore func(t *testing.T) refresh.TokenStore, o options) {
	t.Helper()
	for _, c := range storeChecks {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, mustStore(t, newStore), o)
		})
	}
	runGroup(t, "Lock", "refresh.Locker", lockChecks, newStore, o)
	runGroup(t, "TryLock", "refresh.TryLocker", tryLockChecks, newStore, o)
	runGroup(t, "CAS", "refresh.CompareAndSwapper", casChecks, newStore, o)
	t.Run("Delete", func(t *testing.T) {
		runChecks(t, "refresh.Deleter", deleteChecks, newStore, o)
		runChecks(t, "refresh.Deleter and refresh.CompareAndSwapper", deleteCASChecks, newStore, o)
	})
}

// runGroup runs the checks of a capability as subtests of group.
func runGroup[S refresh.TokenStore](t *testing.T, group, capability string, checks []check[S],
	newStore func(t *testing.T) refresh.TokenStore, o options) {
	t.Run(group, func(t *testing.T) { runChecks(t, capability, checks, newStore, o) })
}

// runChecks runs checks as subtests of t, each skipped if the store lacks
// capability.
func runChecks[S refresh.TokenStore](t *testing.T, capability string, checks []check[S],
	newStore func(t *testing.T) refresh.TokenStore, o options) {
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			s, ok := mustStore(t, newStore).(S)
			if !ok {
				t.Skip("the store does not implement " + capability)
			}
			c.run(t, s, o)
		})
	}
}

func mustStore(t *testing.T, newStore func(t *testing.T) refresh.TokenStore) refresh.TokenStore {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatalf("newStore returned a nil store")
	}
	return s
}
