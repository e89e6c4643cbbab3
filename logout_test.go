package refresh

import (
	"context"
	"errors"
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
