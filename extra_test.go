package refresh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// idTokens makes refreshtest send ID tokens shaped as the leak scan knows
// them ("idt-<grant>-<pair>-<hex>"), with scope, refresh_expires_in and
// session_state, in the login and in every response but those of the pairs
// in omit, which carry none of them.
type idTokens struct {
	mu     sync.Mutex
	issued map[[2]int]string
	omit   map[int]bool
}

func newIDTokens(omit ...int) *idTokens {
	it := &idTokens{issued: map[[2]int]string{}, omit: map[int]bool{}}
	for _, p := range omit {
		it.omit[p] = true
	}
	return it
}

func (it *idTokens) extra(grant, pair int) map[string]any {
	if it.omit[pair] {
		return nil
	}
	var b [8]byte
	rand.Read(b[:])
	v := fmt.Sprintf("idt-%d-%d-%s", grant, pair, hex.EncodeToString(b[:]))
	it.mu.Lock()
	it.issued[[2]int{grant, pair}] = v
	it.mu.Unlock()
	return map[string]any{
		"id_token": v, "scope": fmt.Sprintf("openid s%d", pair),
		"refresh_expires_in": 1800 + pair, "session_state": fmt.Sprint("state-", pair),
	}
}

// id returns the ID token issued with pair of grant.
func (it *idTokens) id(grant, pair int) string {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.issued[[2]int{grant, pair}]
}

// checkExtra checks tok's extras without printing a token.
func checkExtra(t *testing.T, what string, tok *oauth2.Token, wantID, wantScope string, wantRefreshExpires, wantState any) {
	t.Helper()
	if got := tok.Extra("id_token"); got != wantID && !(wantID == "" && got == nil) {
		t.Errorf("%s: Extra(id_token) is not the one issued with pair %s", what, idPair(wantID))
	}
	if got := tok.Extra("scope"); fmt.Sprint(got) != wantScope && !(wantScope == "" && got == nil) {
		t.Errorf("%s: Extra(scope) = %v, want %q", what, got, wantScope)
	}
	if got := tok.Extra("refresh_expires_in"); got != wantRefreshExpires {
		t.Errorf("%s: Extra(refresh_expires_in) = %v, want %v", what, got, wantRefreshExpires)
	}
	if got := tok.Extra("session_state"); got != wantState {
		t.Errorf("%s: Extra(session_state) = %v, want %v", what, got, wantState)
	}
}

// idPair names the pair of an ID token by its number only.
func idPair(id string) string {
	if f := strings.Split(id, "-"); len(f) == 4 {
		return f[2]
	}
	return "(none)"
}

// TestExtraSurvivesRefreshAndRestart: id_token, scope and
// refresh_expires_in come through a refresh into Engine.Token; a refresh
// response without them keeps the previous id_token and scope (not
// refresh_expires_in, which described the previous response); and a new
// engine over the same store, a restart, gets them back. It failed before
// the engine kept extras: every Extra was nil after the first refresh.
func TestExtraSurvivesRefreshAndRestart(t *testing.T) {
	for _, c := range []struct {
		name      string
		endpoint  func(srv *refreshtest.Server) refresh.Endpoint // nil: Config.OAuth2
		keepState bool                                           // session_state is kept
	}{
		{name: "Config.OAuth2 keeps every member", keepState: true},
		{name: "FormEndpoint keeps the defaults", endpoint: func(srv *refreshtest.Server) refresh.Endpoint {
			return &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
				ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody}
		}},
		{name: "FormEndpoint with KeepExtra", keepState: true, endpoint: func(srv *refreshtest.Server) refresh.Endpoint {
			return &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
				ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody, KeepExtra: []string{"session_state"}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ids := newIDTokens(2)
			srv := newStrict(t, refreshtest.Options{Extra: ids.extra})
			cfg := refresh.Config{Store: new(refresh.MemoryStore)}
			if c.endpoint != nil {
				cfg.Endpoint = c.endpoint(srv)
			}
			state := func(pair int) any {
				if !c.keepState {
					return nil
				}
				return fmt.Sprint("state-", pair)
			}
			e := newEng(t, srv, cfg)
			ctx := t.Context()
			if err := e.SetToken(ctx, "", srv.Token()); err != nil {
				t.Fatal(err)
			}
			tok, err := e.Token(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			// SetToken keeps what the caller gives, whatever the endpoint keeps.
			checkExtra(t, "after SetToken", tok, ids.id(1, 0), "openid s0", 1800.0, "state-0")

			if tok, err = e.Refresh(ctx, "", nil); err != nil {
				t.Fatal(err)
			}
			checkExtra(t, "returned by the first refresh", tok, ids.id(1, 1), "openid s1", 1801.0, state(1))
			if tok, err = e.Token(ctx, ""); err != nil {
				t.Fatal(err)
			}
			checkExtra(t, "Token after the first refresh", tok, ids.id(1, 1), "openid s1", 1801.0, state(1))

			// Pair 2's response has none of them.
			if _, err = e.Refresh(ctx, "", nil); err != nil {
				t.Fatal(err)
			}
			if tok, err = e.Token(ctx, ""); err != nil {
				t.Fatal(err)
			}
			checkExtra(t, "Token after a response without them", tok, ids.id(1, 1), "openid s1", nil, nil)

			restarted := newEng(t, srv, cfg)
			if tok, err = restarted.Token(ctx, ""); err != nil {
				t.Fatal(err)
			}
			checkExtra(t, "Token after a restart", tok, ids.id(1, 1), "openid s1", nil, nil)
			if st := srv.Stats(); st.Refreshes != 2 || st.Reuses != 0 {
				t.Errorf("refreshes %d, reuses %d; want 2, 0", st.Refreshes, st.Reuses)
			}
		})
	}
}

// TestExtraJSONEndpoint: JSONEndpoint keeps the defaults and KeepExtra.
func TestExtraJSONEndpoint(t *testing.T) {
	ids := newIDTokens()
	srv := newStrict(t, refreshtest.Options{Extra: ids.extra, JSON: &refreshtest.JSONDialect{}})
	e := newEng(t, srv, refresh.Config{Endpoint: &refresh.JSONEndpoint{URL: srv.TokenURL, KeepExtra: []string{"session_state"}}})
	if err := e.SetToken(t.Context(), "k", &oauth2.Token{RefreshToken: srv.Token().RefreshToken}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.Token(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	checkExtra(t, "Token", tok, ids.id(1, 1), "openid s1", 1801.0, "state-1")
}

// TestKeepExtraRefused: names that are the token's own fields, empty names
// and too many names are a configuration error at New.
func TestKeepExtraRefused(t *testing.T) {
	for _, keep := range [][]string{{"access_token"}, {"refresh_token"}, {"expiry"}, {""}, {"\xff"}, make([]string, 65)} {
		for _, ep := range []refresh.Endpoint{
			&refresh.FormEndpoint{TokenURL: "https://example.com/token", KeepExtra: keep},
			&refresh.JSONEndpoint{URL: "https://example.com/token", KeepExtra: keep},
		} {
			if _, err := refresh.New(refresh.Config{Endpoint: ep}); err == nil || !strings.Contains(err.Error(), "KeepExtra") {
				t.Errorf("New with KeepExtra %q: got %v, want an error about KeepExtra", keep[:min(len(keep), 1)], err)
			}
		}
	}
	if _, err := refresh.New(refresh.Config{Endpoint: &refresh.FormEndpoint{TokenURL: "https://example.com/token",
		KeepExtra: []string{refresh.KeepAllExtra, "id_token", "x"}}}); err != nil {
		t.Errorf("New with a valid KeepExtra: %v", err)
	}
}

// leakyStore fails every save with an error that quotes the token's
// id_token, as a careless store might.
type leakyStore struct {
	refresh.MemoryStore
	fail atomic.Bool
}

func (s *leakyStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if s.fail.Load() {
		return fmt.Errorf("cannot save token with id_token %v", tok.Extra("id_token"))
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

func (s *leakyStore) CompareAndSwap(ctx context.Context, key string, old, tok *oauth2.Token) error {
	if s.fail.Load() {
		return fmt.Errorf("cannot swap token with id_token %v for %v", tok.Extra("id_token"), old.Extra("id_token"))
	}
	return s.MemoryStore.CompareAndSwap(ctx, key, old, tok)
}

// TestExtraNeverInErrorsOrLogs: an ID token that a store's error quotes is
// redacted like the access and refresh tokens, in the error a hook gets and
// in the log; the token in memory keeps its extras meanwhile.
func TestExtraNeverInErrorsOrLogs(t *testing.T) {
	ids := newIDTokens()
	srv := newStrict(t, refreshtest.Options{Extra: ids.extra})
	var logs bytes.Buffer
	var mu sync.Mutex
	var hookErrs []string
	store := &leakyStore{}
	e := newEng(t, srv, refresh.Config{Store: store,
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks: refresh.Hooks{SaveFailed: func(key string, err error) {
			mu.Lock()
			hookErrs = append(hookErrs, err.Error())
			mu.Unlock()
		}}})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	store.fail.Store(true)
	tok, err := e.Refresh(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkExtra(t, "a token whose save failed", tok, ids.id(1, 1), "openid s1", 1801.0, "state-1")
	e.Close(context.Background())

	mu.Lock()
	defer mu.Unlock()
	if len(hookErrs) == 0 {
		t.Fatalf("SaveFailed was not called")
	}
	for _, id := range []string{ids.id(1, 0), ids.id(1, 1)} {
		for _, msg := range append(hookErrs, logs.String()) {
			if strings.Contains(msg, id) {
				t.Errorf("an ID token (pair %s) reached an error or the log", idPair(id))
			}
		}
	}
	if !strings.Contains(hookErrs[0], "id_token [token ") {
		t.Errorf("the store's error does not show the ID token redacted")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
