package refresh_test

// The first promise under store faults, panics and hostile servers: a
// refresh token goes to the server once, a rotated token survives every
// later failure, and tokens never cross keys. Each test here failed on the
// engine before the fix it names.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
)

// newStrict returns a strict refreshtest server (rotation; a reuse revokes
// the family), closed with the test.
func newStrict(t *testing.T, o refreshtest.Options) *refreshtest.Server {
	t.Helper()
	srv := refreshtest.NewServer(o)
	t.Cleanup(srv.Close)
	return srv
}

// newEng returns an engine over srv with c's other settings, and closes it
// with the test.
func newEng(t *testing.T, srv *refreshtest.Server, c refresh.Config) *refresh.Engine {
	t.Helper()
	if c.Endpoint == nil && c.OAuth2 == nil {
		c.OAuth2 = srv.Config()
	}
	e, err := refresh.New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// status sends GET url through c and returns the status, or the error.
func status(c *http.Client, ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// noReuse fails the test if srv saw a spent refresh token again.
func noReuse(t *testing.T, srv *refreshtest.Server) {
	t.Helper()
	if st := srv.Stats(); st.Reuses != 0 || st.FamiliesRevoked != 0 {
		t.Errorf("server saw %d reuses, revoked %d families; want none", st.Reuses, st.FamiliesRevoked)
	}
}

// reply is an empty answer with code, and a Bearer challenge for a 401.
func reply(r *http.Request, code int) *http.Response {
	h := http.Header{}
	if code == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	return refresh.Response(r, code, h, "")
}

// TestKeysNeverCross: whatever a key's name, nothing derived from it shares
// a name space with another key. Alice's API rejects even her refreshed
// token, so her request goes on to re-read the store, which is slow; a
// request for the key "alice\x00adopt" meanwhile must carry its own token.
// (Before the fix, both were coalesced in one singleflight group and the
// second key's request went out with alice's token.)
func TestKeysNeverCross(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var faults storetest.Faults
	store := faults.Wrap(new(refresh.MemoryStore))
	e := newEng(t, srv, refresh.Config{Store: store})
	ctx := t.Context()
	const other = "alice\x00adopt"
	alice, mallory := srv.Token(), srv.Token()
	if err := e.SetToken(ctx, "alice", alice); err != nil {
		t.Fatal(err)
	}
	expired := *mallory
	expired.Expiry = time.Now().Add(-time.Minute)
	if err := e.SetToken(ctx, other, &expired); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	sent := map[string][]string{} // key → Authorization values sent
	api := refresh.StubRT(func(r *http.Request) (*http.Response, error) {
		key := r.Header.Get("X-Key")
		mu.Lock()
		sent[key] = append(sent[key], r.Header.Get("Authorization"))
		mu.Unlock()
		if key == "alice" {
			return reply(r, http.StatusUnauthorized), nil // rejects every token of hers
		}
		return reply(r, http.StatusOK), nil
	})
	client := &http.Client{Transport: &refresh.Transport{Engine: e, Base: api}}
	do := func(key string) (int, error) {
		req, _ := http.NewRequestWithContext(refresh.WithKey(ctx, key), http.MethodGet, "https://api.test/", nil)
		req.Header.Set("X-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// Alice's first Load (in her refresh) goes through; the second, when
	// her refreshed token is rejected too, waits at the gate.
	gate, reached := make(chan struct{}), make(chan struct{}, 1)
	faults.Script(
		storetest.Fault{Op: storetest.OpLoad, Key: "alice"},
		storetest.Fault{Op: storetest.OpLoad, Key: "alice", Gate: gate, Reached: reached},
	)
	aliceDone := make(chan struct{})
	go func() {
		defer close(aliceDone)
		do("alice")
	}()
	<-reached
	// The other key's request needs nothing of alice's: it must finish
	// while her Load waits. If it joined her flight, it waits for the gate,
	// which opens after a while, and then carries her token.
	type result struct {
		code int
		err  error
	}
	otherDone := make(chan result, 1)
	go func() {
		code, err := do(other)
		otherDone <- result{code, err}
	}()
	var r result
	select {
	case r = <-otherDone:
	case <-time.After(3 * time.Second):
		close(gate)
		r = <-otherDone
		gate = nil
	}
	if gate != nil {
		close(gate)
	}
	<-aliceDone
	if r.err != nil || r.code != http.StatusOK {
		t.Fatalf("request for %q: %d, %v; want 200", other, r.code, r.err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent[other]) == 0 {
		t.Fatalf("no request for %q reached the API", other)
	}
	for _, authz := range sent[other] {
		if !strings.HasPrefix(authz, "Bearer at-2-") {
			t.Errorf("a request for key %q carried %q…, not a token of its own grant (2)", other, authz[:min(len(authz), 13)])
		}
	}
	noReuse(t, srv)
}

// TestRotatedTokenSurvivesSaveFaults: whatever a save does after the
// server rotated (fail, panic, commit and then fail or panic), the new
// token serves from memory, the spent refresh token is never sent again,
// and the newest token reaches the store once it works. (Before the fix, a
// panic lost the new token and the next refresh was a reuse.)
func TestRotatedTokenSurvivesSaveFaults(t *testing.T) {
	for _, op := range []storetest.Op{storetest.OpCompareAndSwap, storetest.OpSave} {
		for _, kind := range []storetest.FaultKind{storetest.FaultError, storetest.FaultErrorAfter, storetest.FaultPanic, storetest.FaultPanicAfter} {
			t.Run(op.String()+"/"+kind.String(), func(t *testing.T) {
				srv := newStrict(t, refreshtest.Options{})
				var faults storetest.Faults
				var inner refresh.TokenStore = new(refresh.MemoryStore)
				if op == storetest.OpSave {
					inner = saveOnly{new(refresh.MemoryStore)}
				}
				store := faults.Wrap(inner)
				e := newEng(t, srv, refresh.Config{Store: store})
				ctx := t.Context()
				if err := e.SetToken(ctx, "", srv.Token()); err != nil {
					t.Fatal(err)
				}
				c := e.Client(nil)
				for i := range 3 {
					faults.Script(storetest.Fault{Op: op, Kind: kind})
					srv.RevokeAccessTokens()
					if code, err := status(c, ctx, srv.URL+"/x"); code != 200 {
						t.Fatalf("request %d after a %v %v: %d, %v; want 200 from the token in memory", i, op, kind, code, err)
					}
				}
				if err := e.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
				noReuse(t, srv)
				if st := srv.Stats(); st.Refreshes != 3 {
					t.Errorf("refreshes = %d, want 3", st.Refreshes)
				}
				stored, err := inner.Load(ctx, refresh.DefaultKey)
				if err != nil {
					t.Fatal(err)
				}
				tok, _ := e.Token(ctx, "")
				if tok != nil && !refresh.SameToken(stored, tok) {
					t.Errorf("the store does not hold the newest token after Close")
				}
			})
		}
	}
}

// saveOnly hides the CompareAndSwap of a store.
type saveOnly struct{ s *refresh.MemoryStore }

func (s saveOnly) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.s.Load(ctx, key)
}
func (s saveOnly) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.s.Save(ctx, key, tok)
}

// TestInvalidRequestNeverAdoptsOlder: after a rotated token could not be
// saved, an invalid_request answer must not make the engine adopt the
// older token still in the store as if a peer had refreshed: its refresh
// token is spent. (Before the fix, it was adopted and sent again.)
func TestInvalidRequestNeverAdoptsOlder(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var faults storetest.Faults
	store := faults.Wrap(new(refresh.MemoryStore))
	real := &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
		ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody}
	var calls atomic.Int64
	ep := refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		if calls.Add(1) == 2 {
			return nil, &refresh.Error{StatusCode: 400, Code: "invalid_request"}
		}
		return real.Refresh(ctx, tok)
	})
	logs := new(refresh.SyncBuffer)
	e := newEng(t, srv, refresh.Config{Endpoint: ep, Store: store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	c := e.Client(nil)
	// Every save fails for now: the store keeps the first token.
	faults.SetRandom(storetest.Random{Ops: []storetest.Op{storetest.OpCompareAndSwap, storetest.OpSave}, Error: 1})
	srv.RevokeAccessTokens()
	if code, err := status(c, ctx, srv.URL+"/x"); code != 200 {
		t.Fatalf("first refresh: %d, %v", code, err)
	}
	srv.RevokeAccessTokens()
	status(c, ctx, srv.URL+"/x") // invalid_request: whatever it ends in, no older token is adopted
	if strings.Contains(logs.String(), "concurrent refresh") {
		t.Errorf("the engine adopted the store's older token as a peer's:\n%s", logs)
	}
	faults.Clear()
	srv.RevokeAccessTokens()
	status(c, ctx, srv.URL+"/x")
	noReuse(t, srv)
}

// twoProcesses returns a strict server and two engines ("processes") A and
// B sharing a file store, logged in, with faults injected into A's calls of
// the store, and B's refresh timeout set.
func twoProcesses(t *testing.T, timeoutB time.Duration) (*refreshtest.Server, *storetest.Faults, *refresh.Engine, *refresh.Engine) {
	t.Helper()
	srv := newStrict(t, refreshtest.Options{})
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	faults := new(storetest.Faults)
	a := newEng(t, srv, refresh.Config{Store: faults.Wrap(fs)})
	b := newEng(t, srv, refresh.Config{Store: fs, RefreshTimeout: timeoutB})
	if err := a.SetToken(t.Context(), "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	return srv, faults, a, b
}

// TestFailedSaveHoldsOtherProcesses: two engines ("processes") share a
// file store. A's save fails after A rotated; until A's token reaches the
// store, B must not spend the store's older refresh token: it waits for
// A, then adopts A's token. (Before the fix, A released the lock and B
// sent the spent refresh token: the family was revoked.)
func TestFailedSaveHoldsOtherProcesses(t *testing.T) {
	srv, faults, a, b := twoProcesses(t, time.Minute)
	ctx := t.Context()
	ca, cb := a.Client(nil), b.Client(nil)
	if code, err := status(cb, ctx, srv.URL+"/x"); code != 200 {
		t.Fatalf("B's first request: %d, %v", code, err)
	}
	faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError})
	srv.RevokeAccessTokens()
	if code, err := status(ca, ctx, srv.URL+"/x"); code != 200 {
		t.Fatalf("A's refresh with a failing save: %d, %v", code, err)
	}
	// B's token is revoked too: B must wait for A's save, then adopt.
	if code, err := status(cb, ctx, srv.URL+"/x"); code != 200 {
		t.Errorf("B after A's failed save: %d, %v; want 200 with A's token", code, err)
	}
	noReuse(t, srv)
	if st := srv.Stats(); st.Refreshes != 1 {
		t.Errorf("refreshes = %d, want 1 (B adopts A's token)", st.Refreshes)
	}
}

// TestFailedSaveOthersFailTemporarily: while A cannot save for longer than
// B's refresh timeout, B's requests fail temporarily; B never spends the
// store's older refresh token. Once the store heals, B adopts A's token.
func TestFailedSaveOthersFailTemporarily(t *testing.T) {
	srv, faults, a, b := twoProcesses(t, 300*time.Millisecond)
	ctx := t.Context()
	ca, cb := a.Client(nil), b.Client(nil)
	faults.SetRandom(storetest.Random{Ops: []storetest.Op{storetest.OpCompareAndSwap}, Error: 1})
	srv.RevokeAccessTokens()
	if code, err := status(ca, ctx, srv.URL+"/x"); code != 200 {
		t.Fatalf("A's refresh with a failing save: %d, %v", code, err)
	}
	_, err := status(cb, ctx, srv.URL+"/x")
	var x *refresh.Error
	if !errors.As(err, &x) || !x.Temporary() {
		t.Errorf("B while A's save is pending: got %v, want a temporary *refresh.Error", err)
	}
	noReuse(t, srv)
	faults.Clear()
	if err := a.Close(ctx); err != nil {
		t.Errorf("A's Close with a healthy store: %v", err)
	}
	refresh.WaitFor(t, "B adopts A's token, once its cooldown passed", func() bool {
		code, _ := status(cb, ctx, srv.URL+"/x")
		return code == 200
	})
	noReuse(t, srv)
	if st := srv.Stats(); st.Refreshes != 1 {
		t.Errorf("refreshes = %d, want 1", st.Refreshes)
	}
}

// TestStoreOutageWhileDue: when the store cannot be read or locked while
// the token is due for refresh but still valid, requests keep being served
// with it, and the store is tried again after a while, not on every
// request. (Before the fix, every request failed and hit the store.)
func TestStoreOutageWhileDue(t *testing.T) {
	for _, op := range []storetest.Op{storetest.OpLoad, storetest.OpLock} {
		t.Run(op.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var faults storetest.Faults
				store := faults.Wrap(new(refresh.LockingStore))
				var calls atomic.Int64
				ep := refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
					calls.Add(1)
					return &oauth2.Token{AccessToken: "at-new", RefreshToken: "rt-new", ExpiresIn: 3600, Expiry: time.Now().Add(time.Hour)}, nil
				})
				e, err := refresh.New(refresh.Config{Endpoint: ep, Store: store})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close(context.Background())
				// 1.5 s left of a one-hour token: due (skew 60 s), valid.
				tok := &oauth2.Token{AccessToken: "at-old", RefreshToken: "rt-old", ExpiresIn: 3600, Expiry: time.Now().Add(1500 * time.Millisecond)}
				if err := e.SetToken(t.Context(), "", tok); err != nil {
					t.Fatal(err)
				}
				faults.SetRandom(storetest.Random{Ops: []storetest.Op{op}, Error: 1})
				c := &http.Client{Transport: &refresh.Transport{Engine: e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
					return reply(r, http.StatusOK), nil
				})}}
				for i := range 20 {
					if code, err := status(c, t.Context(), "https://api.test/"); code != 200 {
						t.Errorf("request %d with %v failing and the token valid for %v: %d, %v", i, op, time.Until(tok.Expiry), code, err)
					}
					time.Sleep(70 * time.Millisecond)
				}
				if n := faults.Stats().Calls[op]; n > 6 {
					t.Errorf("%d store %v calls for 20 requests; want a few (a cooldown, not one per request)", n, op)
				}
				if calls.Load() != 0 {
					t.Errorf("the endpoint was called without the store's lock or latest token")
				}
			})
		})
	}
}

// TestCloseReportsUnsaved: Close tries once more to save a pending token
// and names the keys whose newest token it could not save.
func TestCloseReportsUnsaved(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var faults storetest.Faults
	e := newEng(t, srv, refresh.Config{Store: faults.Wrap(new(refresh.MemoryStore))})
	ctx := t.Context()
	for _, k := range []string{"alice", "bob"} {
		if err := e.SetToken(ctx, k, srv.Token()); err != nil {
			t.Fatal(err)
		}
	}
	faults.SetRandom(storetest.Random{Ops: []storetest.Op{storetest.OpCompareAndSwap}, Error: 1})
	for _, k := range []string{"alice", "bob"} {
		if _, err := e.Refresh(ctx, k, nil); err != nil {
			t.Fatalf("refresh of %s: %v", k, err)
		}
	}
	faults.Clear()
	faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Key: "bob", Kind: storetest.FaultError})
	err := e.Close(ctx)
	if !errors.Is(err, refresh.ErrNotSaved) {
		t.Fatalf("Close: got %v, want ErrNotSaved", err)
	}
	var x *refresh.Error
	if !errors.As(err, &x) || x.Key != "bob" || strings.Contains(err.Error(), "alice") {
		t.Errorf("Close: %v; want bob's key only", err)
	}
	if _, err := e.Refresh(ctx, "alice", nil); !errors.Is(err, refresh.ErrClosed) {
		t.Errorf("Refresh after Close: %v; want ErrClosed", err)
	}
	if err := e.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRetryAfterPeerRefreshed: a refresh that failed temporarily is not
// retried with the same refresh token once someone else saved a newer
// token meanwhile (a process that took the lock after ours expired): the
// retry adopts it. (Before the fix, the retry spent the old refresh token
// again: the family was revoked.)
func TestRetryAfterPeerRefreshed(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	store := new(refresh.MemoryStore) // no lock: as after a lost lease
	real := &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
		ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody}
	b := newEng(t, srv, refresh.Config{Store: store})
	var calls atomic.Int64
	a := newEng(t, srv, refresh.Config{Store: store, Endpoint: refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		if calls.Add(1) == 1 {
			// While A's first attempt is answered 503, B refreshes.
			if _, err := b.Refresh(ctx, "", nil); err != nil {
				t.Errorf("B's refresh: %v", err)
			}
			return nil, &refresh.Error{StatusCode: http.StatusServiceUnavailable}
		}
		return real.Refresh(ctx, tok)
	})})
	ctx := t.Context()
	if err := a.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	got, err := a.Refresh(ctx, "", nil)
	if err != nil {
		t.Fatalf("A's refresh: %v", err)
	}
	want, _ := b.Token(ctx, "")
	if !refresh.SameToken(got, want) {
		t.Errorf("A did not adopt B's token")
	}
	noReuse(t, srv)
	if calls.Load() != 1 {
		t.Errorf("A called its endpoint %d times; want 1 (the retry adopts B's token)", calls.Load())
	}
}
