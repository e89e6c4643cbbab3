package refresh

// What a request carries: the Authorization header, never an unsafe
// token, and the token of the request's own key.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

// TestInjectAuthorization pins the header format "<type> <token>", with the
// type normalized by oauth2.Token.Type: any case of "bearer", or none, gives
// "Bearer"; another type is sent as is.
func TestInjectAuthorization(t *testing.T) {
	for _, tc := range []struct {
		tokenType string
		want      string
	}{
		{"Bearer", "Bearer at-1"},
		{"bearer", "Bearer at-1"},
		{"BEARER", "Bearer at-1"},
		{"", "Bearer at-1"},
		{"DPoP", "DPoP at-1"},
	} {
		t.Run(fmt.Sprintf("type %q", tc.tokenType), func(t *testing.T) {
			e := trEngine(t, nil)
			if err := e.SetToken(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-1", TokenType: tc.tokenType}); err != nil {
				t.Fatal(err)
			}
			var got []string
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				got = r.Header.Values("Authorization")
				return response(r, http.StatusOK, nil, ""), nil
			})
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Authorization = %q, want [%q]", got, tc.want)
			}
		})
	}
}

// TestInjectRefusesUnsafeToken pins that a token whose value or type holds
// CR, LF or NUL is never sent (base not called), fails with ErrInvalidToken,
// and is not quoted in the error.
func TestInjectRefusesUnsafeToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
	}{
		{"CR in value", &oauth2.Token{AccessToken: "at-secret\rX"}},
		{"LF in value", &oauth2.Token{AccessToken: "at-secret\nX-Evil: 1"}},
		{"CRLF in value", &oauth2.Token{AccessToken: "at-secret\r\nX-Evil: 1"}},
		{"NUL in value", &oauth2.Token{AccessToken: "at-secret\x00"}},
		{"CR in type", &oauth2.Token{AccessToken: "at-secret", TokenType: "Bearer\r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := trEngine(t, nil)
			if err := e.SetToken(context.Background(), DefaultKey, tc.tok); err != nil {
				t.Fatal(err)
			}
			for i := range 2 { // the second request takes the hot path's other branch
				body := &countingBody{Reader: strings.NewReader("x")}
				req := httptest.NewRequest(http.MethodPost, "http://api.test/x", body)
				resp, err := (&Transport{Engine: e, Base: trNoSend(t)}).RoundTrip(req)
				if resp != nil {
					t.Errorf("request %d: got a response, want none", i)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("request %d: err = %v, want ErrInvalidToken", i, err)
				}
				if err != nil && strings.Contains(err.Error(), "at-secret") {
					t.Errorf("request %d: error %q contains the token value", i, err)
				}
				if n := body.closes.Load(); n != 1 {
					t.Errorf("request %d: body closed %d times, want 1", i, n)
				}
			}
		})
	}
}

// TestInjectRefusesUnsafeRefreshedToken pins that an unsafe token obtained
// by a refresh is not sent either: neither as the retry of a rejected request
// nor as the first use of a stored token.
func TestInjectRefusesUnsafeRefreshedToken(t *testing.T) {
	const bad = "at-2-secret\r\nX-Evil: 1"
	for _, tc := range []struct {
		name     string
		stored   *oauth2.Token
		wantSent int64 // requests that reach the base
	}{
		// The API rejects a good token; the refresh yields a bad one.
		{"retry after 401", &oauth2.Token{AccessToken: "at-1-old", RefreshToken: "rt-1"}, 1},
		// The stored token is bad already; whatever the engine does with it,
		// nothing bad goes out.
		{"bad stored token", &oauth2.Token{AccessToken: "at-1\nsecret", RefreshToken: "rt-1"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := new(MemoryStore)
			store.Save(context.Background(), DefaultKey, tc.stored)
			e, err := New(Config{Store: store, Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
				return &oauth2.Token{AccessToken: bad, RefreshToken: "rt-2"}, nil
			})})
			if err != nil {
				t.Fatal(err)
			}
			var sent atomic.Int64
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				sent.Add(1)
				if got := r.Header.Get("Authorization"); got != "Bearer at-1-old" {
					t.Errorf("sent Authorization %q, want only %q", got, "Bearer at-1-old")
				}
				h := http.Header{}
				h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				return response(r, http.StatusUnauthorized, h, "token rejected"), nil
			})
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if resp != nil {
				resp.Body.Close()
				t.Errorf("got a response (%d), want none", resp.StatusCode)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q contains the token value", err)
			}
			if n := sent.Load(); n != tc.wantSent {
				t.Errorf("requests sent = %d, want %d", n, tc.wantSent)
			}
		})
	}
}

// --- Keys ---

// TestKeysSelectToken pins how a request's key is chosen: WithKey in its
// context, DefaultKey without one (or with ""), and a Transport's fixed Key
// over the context.
func TestKeysSelectToken(t *testing.T) {
	e := trEngine(t, map[string]*oauth2.Token{
		DefaultKey: {AccessToken: "at-default"},
		"alice":    {AccessToken: "at-alice"},
		"bob":      {AccessToken: "at-bob"},
	})
	var got string
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Authorization")
		return response(r, http.StatusOK, nil, ""), nil
	})
	bg := context.Background()
	for _, tc := range []struct {
		name     string
		fixedKey string
		ctx      context.Context
		want     string
	}{
		{"context alice", "", WithKey(bg, "alice"), "Bearer at-alice"},
		{"context bob", "", WithKey(bg, "bob"), "Bearer at-bob"},
		{"no key", "", bg, "Bearer at-default"},
		{"empty key", "", WithKey(bg, ""), "Bearer at-default"},
		{"fixed key over context", "bob", WithKey(bg, "alice"), "Bearer at-bob"},
		{"fixed key without context", "alice", bg, "Bearer at-alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = ""
			req := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil).WithContext(tc.ctx)
			resp, err := (&Transport{Engine: e, Base: base, Key: tc.fixedKey}).RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if got != tc.want {
				t.Errorf("Authorization = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKeysConcurrent pins that tokens never cross keys when many requests of
// two keys run at once and each key's token is rejected and refreshed
// mid-way: every request goes out with its own key's token, and each key is
// refreshed exactly once.
func TestKeysConcurrent(t *testing.T) {
	keys := []string{"alice", "bob"}
	store := new(MemoryStore)
	for _, k := range keys {
		store.Save(context.Background(), k, &oauth2.Token{AccessToken: "at-" + k + "-1", RefreshToken: "rt-" + k + "-1"})
	}
	var refreshes sync.Map // refresh token → *atomic.Int32
	e, err := New(Config{Store: store, Endpoint: EndpointFunc(func(_ context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		n, _ := refreshes.LoadOrStore(tok.RefreshToken, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		for _, k := range keys {
			if tok.RefreshToken == "rt-"+k+"-1" {
				return &oauth2.Token{AccessToken: "at-" + k + "-2", RefreshToken: "rt-" + k + "-2"}, nil
			}
		}
		t.Errorf("refresh with unexpected refresh token %q", tok.RefreshToken)
		return nil, errors.New("unexpected refresh token")
	})})
	if err != nil {
		t.Fatal(err)
	}
	// The API accepts only the second token of each key, so every key is
	// refreshed while requests are in flight.
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		key := r.Header.Get("X-Key")
		switch got := r.Header.Get("Authorization"); got {
		case "Bearer at-" + key + "-2":
			return response(r, http.StatusOK, nil, key), nil
		case "Bearer at-" + key + "-1":
			h := http.Header{}
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return response(r, http.StatusUnauthorized, h, "token rejected"), nil
		default:
			t.Errorf("request of key %q sent Authorization %q", key, got)
			return response(r, http.StatusBadRequest, nil, ""), nil
		}
	})
	tr := &Transport{Engine: e, Base: base}

	const perKey = 50
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range perKey * len(keys) {
		key := keys[i%len(keys)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil).WithContext(WithKey(context.Background(), key))
			req.Header.Set("X-Key", key)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Errorf("key %q: RoundTrip: %v", key, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != key {
				t.Errorf("key %q: got %d %q, want 200 %q", key, resp.StatusCode, body, key)
			}
			if got, want := resp.Request.Header.Get("Authorization"), "Bearer at-"+key+"-2"; got != want {
				t.Errorf("key %q: final request sent %q, want %q", key, got, want)
			}
		}()
	}
	close(start)
	wg.Wait()

	for _, k := range keys {
		var n int32
		if v, ok := refreshes.Load("rt-" + k + "-1"); ok {
			n = v.(*atomic.Int32).Load()
		}
		if n != 1 {
			t.Errorf("key %q refreshed %d times, want 1", k, n)
		}
		tok, err := store.Load(context.Background(), k)
		if err != nil || tok.AccessToken != "at-"+k+"-2" {
			t.Errorf("key %q: stored %v %v, want access token %q", k, tok, err, "at-"+k+"-2")
		}
	}
}
