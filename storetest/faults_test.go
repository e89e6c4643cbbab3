package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// TestFaultsPassThrough: a Faults that injects nothing leaves a store
// conforming, with the capabilities it had.
func TestFaultsPassThrough(t *testing.T) {
	var f Faults
	t.Run("Memory", func(t *testing.T) {
		Run(t, func(t *testing.T) refresh.TokenStore { return f.Wrap(new(refresh.MemoryStore)) })
	})
	t.Run("LockCAS", func(t *testing.T) {
		Run(t, func(t *testing.T) refresh.TokenStore { return f.Wrap(newLockStore()) })
	})
	if st := f.Stats(); st.Calls[OpLoad] == 0 || st.Calls[OpLock] == 0 || st.Calls[OpUnlock] == 0 || st.Calls[OpCompareAndSwap] == 0 || st.Calls[OpTryLock] == 0 || st.Calls[OpDelete] == 0 {
		t.Errorf("calls not counted: %+v", st.Calls)
	}
}

type plainStore struct{ m refresh.MemoryStore }

func (s *plainStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.m.Load(ctx, key)
}
func (s *plainStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.m.Save(ctx, key, tok)
}

type lockOnly struct {
	plainStore
	l *lockStore
}

func (s *lockOnly) Lock(ctx context.Context, key string) (func(), error) { return s.l.Lock(ctx, key) }

type tryLockOnly struct{ lockOnly }

func (s *tryLockOnly) TryLock(ctx context.Context, key string) (func(), bool, error) {
	return s.l.TryLock(ctx, key)
}

// deleteOnly has Load, Save and Delete.
type deleteOnly struct{ plainStore }

func (s *deleteOnly) Delete(ctx context.Context, key string) error { return s.m.Delete(ctx, key) }

// casOnly has Load, Save and CompareAndSwap.
type casOnly struct{ plainStore }

func (s *casOnly) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return s.m.CompareAndSwap(ctx, key, old, new)
}

type tryLockDelete struct{ tryLockOnly }

func (s *tryLockDelete) Delete(ctx context.Context, key string) error { return s.m.Delete(ctx, key) }

func TestFaultsKeepCapabilities(t *testing.T) {
	var f Faults
	for _, c := range []struct {
		name                   string
		s                      refresh.TokenStore
		locker, try, swap, del bool
	}{
		{"plain", new(plainStore), false, false, false, false},
		{"cas", new(casOnly), false, false, true, false},
		{"delete", new(deleteOnly), false, false, false, true},
		{"cas+delete", new(refresh.MemoryStore), false, false, true, true},
		{"locker", &lockOnly{l: newLockStore()}, true, false, false, false},
		{"trylocker", &tryLockOnly{lockOnly{l: newLockStore()}}, true, true, false, false},
		{"trylocker+delete", &tryLockDelete{tryLockOnly{lockOnly{l: newLockStore()}}}, true, true, false, true},
		{"all", newLockStore(), true, true, true, true},
	} {
		w := f.Wrap(c.s)
		_, l := w.(refresh.Locker)
		_, tl := w.(refresh.TryLocker)
		_, s := w.(refresh.CompareAndSwapper)
		_, d := w.(refresh.Deleter)
		if l != c.locker || tl != c.try || s != c.swap || d != c.del {
			t.Errorf("%s: wrapped store is Locker %v, TryLocker %v, CompareAndSwapper %v, Deleter %v; want %v, %v, %v, %v",
				c.name, l, tl, s, d, c.locker, c.try, c.swap, c.del)
		}
	}
}

// TestFaultsDelete: a Delete fault fails the call before the store is
// reached, or after it deleted, as its kind says.
func TestFaultsDelete(t *testing.T) {
	ctx := context.Background()
	var f Faults
	inner := newLockStore()
	s := f.Wrap(inner).(refresh.Deleter)
	t1 := &oauth2.Token{AccessToken: "at1", RefreshToken: "rt1"}
	f.Script(
		Fault{Op: OpDelete, Kind: FaultError},
		Fault{Op: OpDelete, Kind: FaultPanic},
		Fault{Op: OpDelete, Kind: FaultErrorAfter},
	)
	if err := inner.Save(ctx, "a", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Delete: got %v, want ErrInjected", err)
	}
	if v := catch(func() { s.Delete(ctx, "a") }); v == nil {
		t.Fatalf("Delete did not panic")
	}
	if _, err := inner.Load(ctx, "a"); err != nil {
		t.Fatalf("FaultError or FaultPanic reached the store: %v", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Delete: got %v, want ErrInjected", err)
	}
	if _, err := inner.Load(ctx, "a"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("FaultErrorAfter did not reach the store: %v", err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Errorf("Delete after the script: %v", err)
	}
	if st := f.Stats(); st.Calls[OpDelete] != 4 || st.Total(OpDelete) != 3 || OpDelete.String() != "Delete" {
		t.Errorf("stats: %+v", st)
	}
}

func catch(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// TestFaultsScript: scripted faults are taken in order by the calls they
// match, once each, and do what their kind says.
func TestFaultsScript(t *testing.T) {
	ctx := context.Background()
	var f Faults
	inner := newLockStore()
	s := f.Wrap(inner).(interface {
		refresh.Locker
		refresh.CompareAndSwapper
	})
	t1 := &oauth2.Token{AccessToken: "at1", RefreshToken: "rt1"}
	t2 := &oauth2.Token{AccessToken: "at2", RefreshToken: "rt2"}
	mine := errors.New("mine")
	f.Script(
		Fault{Op: OpSave, Kind: FaultError, Key: "b"},
		Fault{Op: OpSave, Kind: FaultErrorAfter},
		Fault{Op: OpCompareAndSwap, Kind: FaultPanic},
		Fault{Op: OpCompareAndSwap, Kind: FaultPanicAfter},
		Fault{Op: OpLoad, Kind: FaultError, Err: mine},
	)
	// The first Save for "a" skips the fault for "b" and takes ErrorAfter:
	// the token is saved, the caller told otherwise.
	if err := s.Save(ctx, "a", t1); !errors.Is(err, ErrInjected) {
		t.Fatalf("Save: got %v, want ErrInjected", err)
	}
	if got, _ := inner.Load(ctx, "a"); !refresh.SameToken(got, t1) {
		t.Errorf("FaultErrorAfter did not reach the store")
	}
	if err := s.Save(ctx, "b", t1); !errors.Is(err, ErrInjected) {
		t.Fatalf("Save(b): got %v, want ErrInjected", err)
	}
	if _, err := inner.Load(ctx, "b"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("FaultError reached the store: %v", err)
	}
	if v := catch(func() { s.CompareAndSwap(ctx, "a", t1, t2) }); v == nil {
		t.Fatalf("CompareAndSwap did not panic")
	}
	if got, _ := inner.Load(ctx, "a"); !refresh.SameToken(got, t1) {
		t.Errorf("FaultPanic reached the store")
	}
	v := catch(func() { s.CompareAndSwap(ctx, "a", t1, t2) })
	if v == nil || strings.Contains(v.(string), "at") && strings.Contains(v.(string), "rt2") {
		t.Fatalf("CompareAndSwap: panic value %v", v)
	}
	if got, _ := inner.Load(ctx, "a"); !refresh.SameToken(got, t2) {
		t.Errorf("FaultPanicAfter did not reach the store")
	}
	if _, err := s.Load(ctx, "a"); err != mine {
		t.Errorf("Load: got %v, want the scripted error", err)
	}
	if _, err := s.Load(ctx, "a"); err != nil || f.Pending() != 0 {
		t.Errorf("after the script: Load error %v, %d faults pending", err, f.Pending())
	}
	st := f.Stats()
	if st.Total(OpSave) != 2 || st.Injected[OpCompareAndSwap][FaultPanic] != 1 || st.Injected[OpCompareAndSwap][FaultPanicAfter] != 1 || st.Calls[OpLoad] != 2 {
		t.Errorf("stats: %+v", st)
	}
}

// TestFaultsLock: a Lock that fails after taking the lock releases it; an
// unlock that panics releases it first; a gate holds a call until it opens
// and its context ends the wait.
func TestFaultsLock(t *testing.T) {
	ctx := context.Background()
	var f Faults
	s := f.Wrap(newLockStore()).(refresh.Locker)
	f.Script(Fault{Op: OpLock, Kind: FaultErrorAfter}, Fault{Op: OpUnlock, Kind: FaultPanic})
	if _, err := s.Lock(ctx, "k"); !errors.Is(err, ErrInjected) {
		t.Fatalf("Lock: got %v, want ErrInjected", err)
	}
	unlock, err := s.Lock(ctx, "k") // taken again: the failed one was released
	if err != nil {
		t.Fatal(err)
	}
	if v := catch(unlock); v == nil {
		t.Errorf("unlock did not panic")
	}
	gate := make(chan struct{})
	reached := make(chan struct{}, 1)
	f.Script(Fault{Op: OpLock, Gate: gate, Reached: reached})
	done := make(chan error)
	go func() {
		u, err := s.Lock(ctx, "k") // free again: the panicking unlock released it
		if err == nil {
			u()
		}
		done <- err
	}()
	<-reached
	select {
	case err := <-done:
		t.Fatalf("Lock returned %v before its gate opened", err)
	default:
	}
	close(gate)
	if err := <-done; err != nil {
		t.Errorf("gated Lock: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f.Script(Fault{Op: OpLoad, Gate: make(chan struct{})})
	if _, err := s.Load(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("gated Load with an ended context: got %v", err)
	}
}

// TestFaultsTryLock: a TryLock failed after it took the lock releases it,
// and its unlock takes OpUnlock's faults.
func TestFaultsTryLock(t *testing.T) {
	ctx := context.Background()
	var f Faults
	s := f.Wrap(newLockStore()).(refresh.TryLocker)
	f.Script(Fault{Op: OpTryLock, Kind: FaultErrorAfter}, Fault{Op: OpUnlock, Kind: FaultPanic})
	if _, ok, err := s.TryLock(ctx, "k"); ok || !errors.Is(err, ErrInjected) {
		t.Fatalf("TryLock: got %v, %v; want not ok and ErrInjected", ok, err)
	}
	unlock, ok, err := s.TryLock(ctx, "k") // free: the failed one was released
	if !ok || err != nil {
		t.Fatalf("TryLock after a failed one: got %v, %v; want the lock", ok, err)
	}
	if _, ok, err := s.TryLock(ctx, "k"); ok || err != nil {
		t.Errorf("TryLock of a held key: got %v, %v; want not ok and nil", ok, err)
	}
	if v := catch(unlock); v == nil {
		t.Errorf("unlock did not panic")
	}
	if u, ok, _ := s.TryLock(ctx, "k"); !ok {
		t.Errorf("TryLock after a panicking unlock: not ok, want the lock")
	} else {
		u()
	}
	if st := f.Stats(); st.Calls[OpTryLock] != 4 || st.Injected[OpTryLock][FaultErrorAfter] != 1 {
		t.Errorf("TryLock calls %d, ErrorAfter faults %d; want 4 and 1", st.Calls[OpTryLock], st.Injected[OpTryLock][FaultErrorAfter])
	}
}

// TestFaultsRandom: random faults follow their rates and repeat with the
// seed.
func TestFaultsRandom(t *testing.T) {
	run := func(seed uint64) (FaultStats, []bool) {
		var f Faults
		f.SetRandom(Random{Seed: seed, Ops: []Op{OpSave}, Error: 0.25, Panic: 0.25})
		s := f.Wrap(new(refresh.MemoryStore))
		var outcome []bool
		for range 400 {
			v := catch(func() {
				err := s.Save(context.Background(), "k", &oauth2.Token{AccessToken: "a"})
				outcome = append(outcome, err == nil)
			})
			if v != nil {
				outcome = append(outcome, false)
			}
			if _, err := s.Load(context.Background(), "k"); err != nil && !errors.Is(err, refresh.ErrNotFound) {
				t.Fatalf("Load failed although only Save may: %v", err)
			}
		}
		return f.Stats(), outcome
	}
	st, a := run(7)
	_, b := run(7)
	if strings.Join(boolStrings(a), "") != strings.Join(boolStrings(b), "") {
		t.Errorf("the same seed gave different faults")
	}
	e, p := st.Injected[OpSave][FaultError], st.Injected[OpSave][FaultPanic]
	if e < 60 || e > 140 || p < 60 || p > 140 || st.Total(OpLoad) != 0 {
		t.Errorf("with rates 0.25/0.25 over 400 saves: %d errors, %d panics, %d load faults", e, p, st.Total(OpLoad))
	}
}

func boolStrings(bs []bool) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		if b {
			out[i] = "1"
		} else {
			out[i] = "0"
		}
	}
	return out
}
