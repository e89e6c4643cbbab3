package refresh_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
	"golang.org/x/oauth2"
)

func newLeaseLocker(t *testing.T, s refresh.CompareAndSwapper, o refresh.LeaseOptions) *refresh.LeaseLocker {
	t.Helper()
	l, err := refresh.NewLeaseLocker(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestLeaseLockerConformance: a LeaseLocker is a conforming Locker,
// TryLocker and CompareAndSwapper over MemoryStore and over a real
// backend, filestore (whose own flock it does not use).
func TestLeaseLockerConformance(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			return newLeaseLocker(t, new(refresh.MemoryStore), refresh.LeaseOptions{})
		})
	})
	t.Run("File", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			fs, err := filestore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return newLeaseLocker(t, fs, refresh.LeaseOptions{})
		})
	})
	t.Run("SharedMemory", func(t *testing.T) {
		// Two LeaseLockers over one store exclude each other as two
		// processes would: every call alternates between them.
		var shared refresh.MemoryStore
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			return &twoLockers{newLeaseLocker(t, &shared, refresh.LeaseOptions{}), newLeaseLocker(t, &shared, refresh.LeaseOptions{})}
		})
	})
}

// shortLease makes a lease that a holder which cannot renew loses soon.
var shortLease = refresh.LeaseOptions{TTL: 60 * time.Millisecond, Poll: 5 * time.Millisecond}

// faultyLeaseLocker is a LeaseLocker over s, with f's faults injected into
// its store calls.
func faultyLeaseLocker(t *testing.T, f *storetest.Faults, s refresh.CompareAndSwapper, o refresh.LeaseOptions) *refresh.LeaseLocker {
	t.Helper()
	return newLeaseLocker(t, f.Wrap(s).(refresh.CompareAndSwapper), o)
}

// wantHeld fails the test unless TryLock of key through l finds it held.
func wantHeld(t *testing.T, l *refresh.LeaseLocker, key, when string) {
	t.Helper()
	if u, ok, err := l.TryLock(t.Context(), key); ok || err != nil {
		t.Errorf("TryLock %s: got %v, %v; want not ok", when, ok, err)
		if ok {
			u()
		}
	}
}

// wantFree fails the test unless TryLock of key through l takes it; it
// gives the lock back.
func wantFree(t *testing.T, l *refresh.LeaseLocker, key, when string) {
	t.Helper()
	u, ok, err := l.TryLock(t.Context(), key)
	if !ok || err != nil {
		t.Errorf("TryLock %s: got %v, %v; want the lock", when, ok, err)
		return
	}
	u()
}

// leaseHolder is a LeaseLocker a, with faults f injected into its store
// calls, that holds the short lease of "k" (unlock gives it back), and a
// peer b over the same store, as in another process.
type leaseHolder struct {
	f      storetest.Faults
	shared refresh.MemoryStore
	a, b   *refresh.LeaseLocker
	unlock func()
}

func newLeaseHolder(t *testing.T) *leaseHolder {
	t.Helper()
	h := new(leaseHolder)
	h.a = faultyLeaseLocker(t, &h.f, &h.shared, shortLease)
	h.b = newLeaseLocker(t, &h.shared, shortLease)
	var err error
	if h.unlock, err = h.a.Lock(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	return h
}

// twoLockers sends each call to one of two LeaseLockers over one store, in
// turn, as calls from two processes would be.
type twoLockers struct{ a, b *refresh.LeaseLocker }

var turn atomic.Uint32

func (s *twoLockers) pick() *refresh.LeaseLocker {
	if turn.Add(1)%2 == 0 {
		return s.a
	}
	return s.b
}

func (s *twoLockers) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.pick().Load(ctx, key)
}

func (s *twoLockers) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.pick().Save(ctx, key, tok)
}

func (s *twoLockers) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return s.pick().CompareAndSwap(ctx, key, old, new)
}

func (s *twoLockers) Lock(ctx context.Context, key string) (func(), error) {
	return s.pick().Lock(ctx, key)
}

func (s *twoLockers) TryLock(ctx context.Context, key string) (func(), bool, error) {
	return s.pick().TryLock(ctx, key)
}

func TestLeaseLockerOptions(t *testing.T) {
	var m refresh.MemoryStore
	for _, tt := range []struct {
		name  string
		store refresh.CompareAndSwapper
		o     refresh.LeaseOptions
	}{
		{"nil store", nil, refresh.LeaseOptions{}},
		{"TTL too short", &m, refresh.LeaseOptions{TTL: 29 * time.Millisecond}},
		{"Poll too short", &m, refresh.LeaseOptions{Poll: time.Microsecond}},
	} {
		if _, err := refresh.NewLeaseLocker(tt.store, tt.o); err == nil {
			t.Errorf("%s: NewLeaseLocker accepted it", tt.name)
		}
	}
}

// TestLeaseLockerNames: the lease of a key and the tokens of keys that
// look like lease names never share a name in the store.
func TestLeaseLockerNames(t *testing.T) {
	ctx := t.Context()
	var m refresh.MemoryStore
	l := newLeaseLocker(t, &m, refresh.LeaseOptions{})
	tok := &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}
	for _, key := range []string{"~lease~x", "~x", "~", "x"} {
		if err := l.Save(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := l.Lock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := l.TryLock(ctx, "~lease~x"); !ok {
		t.Errorf(`TryLock("~lease~x") while "x" is locked: held, want free`)
	}
	unlock()
	for _, key := range []string{"~lease~x", "~x", "~", "x"} {
		if got, err := l.Load(ctx, key); err != nil || !refresh.SameToken(got, tok) {
			t.Errorf("Load(%q) after locking x: got %v, %v; want the token saved", key, got, err)
		}
	}
	if _, err := m.Load(ctx, "~lease~x"); err != nil {
		t.Errorf(`the lease of "x" is not stored as "~lease~x": %v`, err)
	}
	if got, _ := m.Load(ctx, "~~lease~x"); !refresh.SameToken(got, tok) {
		t.Errorf(`the token of "~lease~x" is not stored as "~~lease~x"`)
	}
}

// TestLeaseLockerDeadHolder: a lease that a dead process left behind is
// taken once it expires; one whose end lies far ahead (a clock set wrong,
// a corrupt record) once it has been seen unchanged for a TTL.
func TestLeaseLockerDeadHolder(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  time.Duration
	}{{"expiring", 100 * time.Millisecond}, {"far ahead", 1000 * time.Hour}} {
		t.Run(tt.name, func(t *testing.T) {
			var m refresh.MemoryStore
			dead := &oauth2.Token{AccessToken: "dead:1:00#1", TokenType: "lease", Expiry: time.Now().Add(tt.end)}
			if err := m.Save(t.Context(), "~lease~k", dead); err != nil {
				t.Fatal(err)
			}
			l := newLeaseLocker(t, &m, refresh.LeaseOptions{TTL: 100 * time.Millisecond, Poll: 5 * time.Millisecond})
			if _, ok, err := l.TryLock(t.Context(), "k"); ok || err != nil {
				t.Fatalf("TryLock of a live lease: got %v, %v; want not ok", ok, err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			unlock, err := l.Lock(ctx, "k")
			if err != nil {
				t.Fatalf("Lock behind a dead holder: %v", err)
			}
			unlock()
		})
	}
}

// cutRenewals makes the next 1000 swaps of key's lease record through f
// fail, as they do for a holder cut off from the store.
func cutRenewals(f *storetest.Faults, key string) {
	cut := make([]storetest.Fault, 1000)
	for i := range cut {
		cut[i] = storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError, Key: "~lease~" + key}
	}
	f.Script(cut...)
}

// TestLeaseLockerLostLease: a holder that cannot renew (frozen, cut off)
// loses its lease to another process, and its late unlock does not free
// the new holder's lease.
func TestLeaseLockerLostLease(t *testing.T) {
	h := newLeaseHolder(t)
	c := newLeaseLocker(t, &h.shared, shortLease)
	cutRenewals(&h.f, "k") // every renewal of a's fails
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	unlockB, err := h.b.Lock(ctx, "k")
	if err != nil {
		t.Fatalf("Lock behind a holder that cannot renew: %v", err)
	}
	h.f.Clear()
	h.unlock() // late: b holds the lease now
	wantHeld(t, c, "k", "after the old holder's late unlock (b holds it)")
	unlockB()
	wantFree(t, c, "k", "after b's unlock")
}

// TestLeaseLockerLostReply: a take whose reply was lost (the store swapped,
// then failed) fails Lock and gives the lease back.
func TestLeaseLockerLostReply(t *testing.T) {
	var m refresh.MemoryStore
	var f storetest.Faults
	l := faultyLeaseLocker(t, &f, &m, refresh.LeaseOptions{})
	f.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultErrorAfter, Key: "~lease~k"})
	if _, err := l.Lock(t.Context(), "k"); !errors.Is(err, storetest.ErrInjected) {
		t.Fatalf("Lock whose swap failed after it was done: got %v, want ErrInjected", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	unlock, err := l.Lock(ctx, "k") // the lease was given back, or this would wait for its 30 s
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}

// TestLeaseLockerWakesLocalWaiters: a waiter in the holder's process does
// not poll the store: it is woken by the unlock, and needs one Load before
// and one after it.
func TestLeaseLockerWakesLocalWaiters(t *testing.T) {
	var m refresh.MemoryStore
	var f storetest.Faults
	l := faultyLeaseLocker(t, &f, &m, refresh.LeaseOptions{Poll: 2 * time.Millisecond})
	unlock, err := l.Lock(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := l.Lock(t.Context(), "k")
		if err == nil {
			u()
		}
		got <- err
	}()
	for f.Stats().Calls[storetest.OpLoad] < 2 { // the holder's, the waiter's first
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // 100 tries, if it polled every 2 ms
	waiting := f.Stats().Calls[storetest.OpLoad] - 1
	unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	after := f.Stats().Calls[storetest.OpLoad] - 1 - waiting
	if waiting != 1 || after != 1 {
		t.Errorf("Loads of the waiter: %d while the lock was held, %d after the unlock; want 1 and 1", waiting, after)
	}
}

// TestLeaseLockerOneRefreshAcrossEngines: engines ("processes"), each with
// its own LeaseLocker over one shared store that has no lock of its own,
// refresh each rejected token once in all; the others adopt it, and no
// refresh token is sent twice.
func TestLeaseLockerOneRefreshAcrossEngines(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	var shared refresh.MemoryStore
	if err := shared.Save(t.Context(), refresh.DefaultKey, srv.Token()); err != nil {
		t.Fatal(err)
	}
	var clients []*http.Client
	for range 4 {
		e, err := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: newLeaseLocker(t, &shared, refresh.LeaseOptions{})})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, e.Client(nil))
	}
	for round := 1; round <= 3; round++ {
		srv.RevokeAccessTokens()
		var wg sync.WaitGroup
		for _, c := range clients {
			for range 10 {
				wg.Go(func() {
					resp, err := c.Get(srv.URL + "/v1/notes")
					if err != nil {
						t.Errorf("round %d: %v", round, err)
						return
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("round %d: status %d", round, resp.StatusCode)
					}
				})
			}
		}
		wg.Wait()
		if st := srv.Stats(); st.Refreshes != round || st.Reuses != 0 {
			t.Fatalf("after round %d: %d refreshes and %d reuses, want %d and 0", round, st.Refreshes, st.Reuses, round)
		}
	}
}

// TestLeaseLockerLeaseLostEvent: a holder whose lease was taken while it
// refreshed (it could not renew) reports it as an EventStore event.
func TestLeaseLockerLeaseLostEvent(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	var shared refresh.MemoryStore
	if err := shared.Save(t.Context(), refresh.DefaultKey, srv.Token()); err != nil {
		t.Fatal(err)
	}
	var fa storetest.Faults
	o := shortLease
	var mu sync.Mutex
	var lost int
	e, err := refresh.New(refresh.Config{
		OAuth2: srv.Config(),
		Store:  faultyLeaseLocker(t, &fa, &shared, o),
		OnEvent: func(ev refresh.Event) {
			if ev.Kind == refresh.EventStore && ev.Store.What == "lease lost" {
				mu.Lock()
				lost++
				mu.Unlock()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	gate := srv.Hold()
	done := make(chan error, 1)
	go func() { _, err := e.Refresh(t.Context(), refresh.DefaultKey, nil); done <- err }()
	<-gate.Reached() // the engine holds the lease and waits for the server
	cutRenewals(&fa, refresh.DefaultKey)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	unlock, err := newLeaseLocker(t, &shared, o).Lock(ctx, refresh.DefaultKey)
	if err != nil {
		t.Fatalf("Lock behind a holder that cannot renew: %v", err)
	}
	fa.Clear()
	gate.Release()
	<-done
	unlock()
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if mu.Lock(); lost != 1 {
		t.Errorf("lease lost events: got %d, want 1", lost)
	}
	mu.Unlock()
}

// TestLeaseLockerUnknownRenewals: renewals whose outcome the holder does not
// learn (one done although it failed, then one that failed) do not cost it
// the lease: it keeps renewing from whichever record the store holds, and
// its unlock gives back the right one.
func TestLeaseLockerUnknownRenewals(t *testing.T) {
	h := newLeaseHolder(t)
	f := &h.f
	f.Script(
		storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultErrorAfter, Key: "~lease~k"},
		storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError, Key: "~lease~k"},
	)
	// The take, then renewals: 1 call, 2 (a conflict and the error), 2 (a
	// conflict and the swap from the record written first), then 1 each.
	deadline := time.Now().Add(time.Minute)
	for f.Stats().Calls[storetest.OpCompareAndSwap] < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d swaps in a minute: the holder stopped renewing (it took its lease for lost)", f.Stats().Calls[storetest.OpCompareAndSwap])
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantHeld(t, h.b, "k", "while a holds the lease")
	h.unlock()
	wantFree(t, h.b, "k", "after a's unlock")
}

// TestLeaseLockerStorePanics: a store that panics in a renewal, in the
// give-back or in the take does not end the program (the renewal and the
// give-back run on goroutines of their own); the lease is kept, or given
// back, or expires, and a panicking take is an error wrapping ErrPanic.
func TestLeaseLockerStorePanics(t *testing.T) {
	h := newLeaseHolder(t)
	f, a, b := &h.f, h.a, h.b
	f.Script(
		storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanic, Key: "~lease~k"},
		storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanicAfter, Key: "~lease~k"},
	)
	for f.Pending() > 0 { // both renewals panicked
		time.Sleep(5 * time.Millisecond)
	}
	wantHeld(t, b, "k", "after renewals that panicked (a still holds it)")
	f.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanicAfter, Key: "~lease~k"})
	h.unlock() // its give-back panics after it was done
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	u, err := b.Lock(ctx, "k")
	if err != nil {
		t.Fatalf("Lock after a give-back that panicked: %v", err)
	}
	u()
	f.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanic, Key: "~lease~k"})
	if _, err := a.Lock(t.Context(), "k"); !errors.Is(err, refresh.ErrPanic) {
		t.Errorf("Lock whose take panicked: got %v, want an error wrapping ErrPanic", err)
	}
}
