package refresh

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"

	"golang.org/x/oauth2"
)

// revokingEndpoint is memEndpoint with srv's revocation endpoint.
func revokingEndpoint(srv *testServer) *FormEndpoint {
	ep := memEndpoint(srv)
	ep.RevocationURL = srv.RevocationURL
	return ep
}

// TestLogout: Logout revokes the key's refresh token at the server (its
// whole grant), deletes it from the store and forgets the key; the key then
// needs a login, and nothing of it remains.
func TestLogout(t *testing.T) {
	for name, store := range map[string]TokenStore{"own": nil, "MemoryStore": new(MemoryStore)} {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
			e, _ := New(Config{Endpoint: revokingEndpoint(srv), Store: store})
			defer e.Close(context.Background())
			tok := srv.Token()
			if err := e.SetToken(t.Context(), "alice", tok); err != nil {
				t.Fatal(err)
			}
			if err := e.Logout(t.Context(), "alice"); err != nil {
				t.Fatal(err)
			}
			if st := srv.Stats(); st.Revocations != 1 {
				t.Errorf("revocations = %d, want 1", st.Revocations)
			}
			if srv.Current(tok.RefreshToken) != nil {
				t.Errorf("the grant is still live at the server")
			}
			if _, err := e.store.Load(t.Context(), "alice"); !errors.Is(err, ErrNotFound) {
				t.Errorf("store after Logout: %v, want ErrNotFound", err)
			}
			if n, st := keysHeld(e), e.Stats(); n != 0 || st.Keys != 0 {
				t.Errorf("after Logout: %d entries, Stats %+v; want none", n, st)
			}
			if _, err := e.Token(t.Context(), "alice"); !errors.Is(err, ErrReauthRequired) {
				t.Errorf("Token after Logout = %v, want ErrReauthRequired", err)
			}
			if n := srv.Stats().TokenRequests; n != 0 {
				t.Errorf("token requests = %d, want 0", n)
			}
		})
	}
}

// TestLogoutOtherProcess: a logout in one process, while another holds the
// key in memory, is final for both: the other's next refresh finds the key
// deleted, calls nobody and saves nothing.
func TestLogoutOtherProcess(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(lockingStore)
	a, _ := New(Config{Endpoint: revokingEndpoint(srv), Store: store})
	b, _ := New(Config{Endpoint: revokingEndpoint(srv), Store: store})
	defer a.Close(context.Background())
	defer b.Close(context.Background())
	store.Save(t.Context(), "alice", srv.Token())
	for _, e := range []*Engine{a, b} {
		if _, err := e.Token(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Logout(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Refresh(t.Context(), "alice", nil); !errors.Is(err, ErrReauthRequired) {
		t.Errorf("the other process's refresh after the logout = %v, want ErrReauthRequired", err)
	}
	if n := srv.Stats().TokenRequests; n != 0 {
		t.Errorf("token requests = %d, want 0", n)
	}
	if _, err := store.Load(t.Context(), "alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("store: %v, want ErrNotFound: the key came back", err)
	}
	if n := keysHeld(b); n != 0 {
		t.Errorf("the other process still holds %d keys", n)
	}
}

// TestLogoutRevocationFails: a revocation that keeps failing temporarily is
// tried RefreshAttempts times; the key is deleted and forgotten anyway, and
// Logout reports the failure.
func TestLogoutRevocationFails(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	e, _ := New(Config{Endpoint: revokingEndpoint(srv), RefreshAttempts: 2})
	defer e.Close(context.Background())
	e.SetToken(t.Context(), "alice", srv.Token())
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultUnavailable})
	err := e.Logout(t.Context(), "alice")
	var x *Error
	if !errors.As(err, &x) || !x.Temporary() || x.Key != "alice" {
		t.Fatalf("Logout with the revocation endpoint down = %v, want a temporary *Error of alice", err)
	}
	if n := srv.Stats().RevocationRequests; n != 2 {
		t.Errorf("revocation requests = %d, want 2", n)
	}
	if _, err := e.Token(t.Context(), "alice"); !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Token after Logout = %v, want ErrReauthRequired: the key was not deleted", err)
	}
}

// TestLogoutPendingSave: the newest token, whose save is pending, is the one
// revoked, and the logout ends the pending save and the lock kept for it.
func TestLogoutPendingSave(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(fakeStore) // its deletes work while its saves fail
	e, _ := New(Config{Endpoint: revokingEndpoint(srv), Store: store})
	defer e.Close(context.Background())
	store.Save(t.Context(), "alice", srv.Token())
	store.failSaves(errors.New("store down"))
	newest, err := e.Refresh(t.Context(), "alice", nil)
	if err != nil || e.Stats().PendingSaves != 1 {
		t.Fatalf("refresh with the store down: %v, %d pending", err, e.Stats().PendingSaves)
	}
	if err := e.Logout(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if srv.Current(newest.RefreshToken) != nil {
		t.Errorf("the newest refresh token, whose save was pending, is still live")
	}
	if n := e.Stats().PendingSaves; n != 0 {
		t.Errorf("pending saves after Logout = %d, want 0", n)
	}
}

// TestLogoutStoreCannotDelete: with a store that cannot delete, Logout
// says so and changes nothing.
func TestLogoutStoreCannotDelete(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	e, _ := New(Config{Endpoint: revokingEndpoint(srv), Store: saveOnly{new(MemoryStore)}})
	defer e.Close(context.Background())
	tok := srv.Token()
	e.SetToken(t.Context(), "alice", tok)
	if err := e.Logout(t.Context(), "alice"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Logout = %v, want errors.ErrUnsupported", err)
	}
	if got, err := e.Token(t.Context(), "alice"); err != nil || !SameToken(got, tok) {
		t.Errorf("Token after a refused Logout = %v", err)
	}
	if n := srv.Stats().Revocations; n != 0 {
		t.Errorf("revocations = %d, want 0", n)
	}
}

// saveOnly is a TokenStore with Load and Save alone.
type saveOnly struct{ s TokenStore }

func (s saveOnly) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.s.Load(ctx, key)
}

func (s saveOnly) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.s.Save(ctx, key, tok)
}

// flakyLockingStore is lockingStore whose saves and deletes can be made
// to fail.
type flakyLockingStore struct {
	lockingStore
	failSave, failDelete atomic.Bool
}

func (s *flakyLockingStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if s.failSave.Load() {
		return errors.New("store down")
	}
	return s.lockingStore.Save(ctx, key, tok)
}

func (s *flakyLockingStore) CompareAndSwap(ctx context.Context, key string, old, tok *oauth2.Token) error {
	if s.failSave.Load() {
		return errors.New("store down")
	}
	return s.lockingStore.CompareAndSwap(ctx, key, old, tok)
}

func (s *flakyLockingStore) Delete(ctx context.Context, key string) error {
	if s.failDelete.Load() {
		return errors.New("store down")
	}
	return s.lockingStore.Delete(ctx, key)
}

// TestLogoutFailedKeepsLock: a Logout that cannot delete, for a key whose
// newest token is not saved yet, keeps the key's cross-process lock, as the
// failed save did: no other process may spend the store's older refresh
// token meanwhile.
func TestLogoutFailedKeepsLock(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(flakyLockingStore)
	e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store}) // no revocation URL
	defer e.Close(context.Background())
	store.lockingStore.Save(t.Context(), "alice", srv.Token())
	store.failSave.Store(true)
	if _, err := e.Refresh(t.Context(), "alice", nil); err != nil || e.Stats().PendingSaves != 1 {
		t.Fatalf("refresh with the store down: %v, %d pending", err, e.Stats().PendingSaves)
	}
	store.failDelete.Store(true)
	if err := e.Logout(t.Context(), "alice"); err == nil {
		t.Fatal("Logout with the store down = nil, want its error")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if unlock, err := store.lockingStore.Lock(ctx, "alice"); err == nil {
		unlock()
		t.Fatal("the key's lock is free after a failed Logout while its newest token is unsaved")
	}
	if n := e.Stats().PendingSaves; n != 1 {
		t.Errorf("pending saves = %d, want 1: the newest token is kept", n)
	}
}
