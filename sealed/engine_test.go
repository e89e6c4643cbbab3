package sealed_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/sealed"
	"golang.org/x/oauth2"
)

// TestWithEngine runs the refresh engine over a sealed store: tokens reach
// the endpoint opened and the backend sealed, the engine takes the
// backend's lock through the wrapper, a second process with a rotated key
// adopts the stored token, and a tampered value stops the engine before
// the token endpoint.
func TestWithEngine(t *testing.T) {
	ctx := t.Context()
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	backend := &lockingCASBackend{}

	var mu sync.Mutex
	var sent []string // refresh tokens the endpoint received
	endpoint := refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, tok.RefreshToken)
		return tokenN(len(sent) + 1), nil
	})
	calls := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(sent)
	}
	newEngine := func(store refresh.TokenStore) *refresh.Engine {
		e, err := refresh.New(refresh.Config{Endpoint: endpoint, Store: store})
		if err != nil {
			t.Fatalf("refresh.New: %v", err)
		}
		return e
	}
	checkBackend := func(wantID string) {
		t.Helper()
		raw := loadRaw(t, backend, "alice")
		if !strings.HasPrefix(raw.AccessToken, "sealed1:"+wantID+":") || raw.RefreshToken != "" {
			t.Errorf("backend: got %q (refresh token %q), want a value sealed with %q only", raw.AccessToken, raw.RefreshToken, wantID)
		}
		for i := 1; i <= 4; i++ {
			checkClean(t, "backend", raw.AccessToken, nil, tokenN(i).AccessToken, tokenN(i).RefreshToken)
		}
	}

	// Process 1, key k1.
	e1 := newEngine(mustNew(t, backend, k1))
	if err := e1.SetToken(ctx, "alice", tokenN(1)); err != nil {
		t.Fatalf("SetToken: %v", err)
	}
	checkBackend("k1")
	got, err := e1.Refresh(ctx, "alice", tokenN(1))
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkSame(t, got, tokenN(2))
	if len(sent) != 1 || sent[0] != tokenN(1).RefreshToken {
		t.Errorf("endpoint got refresh tokens %q, want [%q]", sent, tokenN(1).RefreshToken)
	}
	checkBackend("k1")
	if n := backend.locks.Load(); n < 1 {
		t.Errorf("backend Lock calls: got %d, want at least 1", n)
	}
	if l, u := backend.locks.Load(), backend.unlocks.Load(); l != u {
		t.Errorf("backend locks %d, unlocks %d: want equal", l, u)
	}

	// Process 2, rotated to k2: it adopts the stored token without a
	// refresh, then refreshes and seals with k2.
	e2 := newEngine(mustNew(t, backend, k2, k1))
	got, err = e2.Token(ctx, "alice")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	checkSame(t, got, tokenN(2))
	if n := calls(); n != 1 {
		t.Errorf("endpoint calls after loading: got %d, want 1", n)
	}
	if got, err = e2.Refresh(ctx, "alice", got); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	checkSame(t, got, tokenN(3))
	if sent[1] != tokenN(2).RefreshToken {
		t.Errorf("endpoint got refresh token %q, want %q", sent[1], tokenN(2).RefreshToken)
	}
	checkBackend("k2")

	// Process 3 finds a value that does not open: an error, and no call
	// to the token endpoint on a guess.
	raw := loadRaw(t, backend, "alice")
	b := []byte(raw.AccessToken)
	b[len(b)-5] ^= 0x01
	if err := backend.Save(ctx, "alice", &oauth2.Token{AccessToken: string(b)}); err != nil {
		t.Fatal(err)
	}
	e3 := newEngine(mustNew(t, backend, k2, k1))
	_, err = e3.Token(ctx, "alice")
	if !errors.Is(err, sealed.ErrAuthentication) && !errors.Is(err, sealed.ErrNotSealed) {
		t.Errorf("Token over a tampered value: got %v, want a sealed open error", err)
	}
	if errors.Is(err, refresh.ErrReauthRequired) || errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("got %v, want neither ErrReauthRequired nor ErrNotFound", err)
	}
	if err != nil {
		checkClean(t, "error", err.Error(), []sealed.Key{k1, k2}, string(b))
	}
	if n := calls(); n != 2 {
		t.Errorf("endpoint calls: got %d, want 2", n)
	}
}
