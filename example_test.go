package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// provider is a tiny authorization server and API for the examples: the
// API accepts only the newest access token; refresh tokens rotate.
type provider struct {
	mu       sync.Mutex
	n        int
	access   string
	refresh  string
	rejected bool // reject every refresh token (the user revoked the app)
	api      *httptest.Server
	token    *httptest.Server
}

func newProvider() *provider {
	p := &provider{access: "at-0", refresh: "rt-0"}
	p.token = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if p.rejected || r.FormValue("refresh_token") != p.refresh {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		p.n++
		p.access, p.refresh = fmt.Sprintf("at-%d", p.n), fmt.Sprintf("rt-%d", p.n)
		fmt.Fprintf(w, `{"access_token":%q,"refresh_token":%q,"token_type":"bearer","expires_in":3600}`, p.access, p.refresh)
	}))
	p.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		ok := r.Header.Get("Authorization") == "Bearer "+p.access
		p.mu.Unlock()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "hello")
	}))
	return p
}

func (p *provider) close() { p.api.Close(); p.token.Close() }

// expire makes the API reject the current access token.
func (p *provider) expire() { p.mu.Lock(); p.access = "expired"; p.mu.Unlock() }

func (p *provider) config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     "my-client",
		ClientSecret: "my-secret",
		Endpoint:     oauth2.Endpoint{TokenURL: p.token.URL, AuthStyle: oauth2.AuthStyleInParams},
	}
}

// Wrap an existing client: requests carry the token, and a rejected token
// is refreshed and the request retried, without the caller noticing.
func Example() {
	p := newProvider()
	defer p.close()

	store := new(refresh.MemoryStore)
	eng, err := refresh.New(refresh.Config{OAuth2: p.config(), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	// The token from the user's login (conf.Exchange in a real program).
	eng.SetToken(context.Background(), refresh.DefaultKey, &oauth2.Token{AccessToken: "at-0", RefreshToken: "rt-0"})

	client := eng.Client(&http.Client{}) // keeps the client's Timeout, Jar, CheckRedirect
	p.expire()                           // the API will answer 401 to the current token

	resp, err := client.Get(p.api.URL)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	saved, _ := store.Load(context.Background(), refresh.DefaultKey)
	fmt.Println("rotated refresh token saved:", saved.RefreshToken)
	// Output:
	// 200 hello
	// rotated refresh token saved: rt-1
}

// One shared client serves many users: the key travels in each request's
// context.
func ExampleWithKey() {
	var mu sync.Mutex
	seen := map[string]string{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	defer api.Close()

	eng, _ := refresh.New(refresh.Config{Endpoint: refresh.EndpointFunc(func(ctx context.Context, t *oauth2.Token) (*oauth2.Token, error) {
		return nil, errors.New("not needed in this example")
	})})
	ctx := context.Background()
	eng.SetToken(ctx, "alice", &oauth2.Token{AccessToken: "alice-token"})
	eng.SetToken(ctx, "bob", &oauth2.Token{AccessToken: "bob-token"})
	client := eng.Client(nil)

	for _, user := range []string{"alice", "bob"} {
		req, _ := http.NewRequestWithContext(refresh.WithKey(ctx, user), "GET", api.URL+"/"+user, nil)
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
	}
	fmt.Println(seen["/alice"])
	fmt.Println(seen["/bob"])
	// Output:
	// Bearer alice-token
	// Bearer bob-token
}

// When the refresh token is rejected, the user must log in again. The
// engine stops calling the token endpoint for that key until it gets a new
// token.
func ExampleErrReauthRequired() {
	p := newProvider()
	defer p.close()
	eng, _ := refresh.New(refresh.Config{OAuth2: p.config()})
	eng.SetToken(context.Background(), "", &oauth2.Token{AccessToken: "at-0", RefreshToken: "rt-0"})
	client := eng.Client(nil)

	p.mu.Lock()
	p.rejected = true // the user revoked the application
	p.mu.Unlock()
	p.expire()

	_, err := client.Get(p.api.URL)
	if errors.Is(err, refresh.ErrReauthRequired) {
		fmt.Println("please log in again")
		// After the new login: eng.SetToken(ctx, key, newToken)
	}
	var rerr *refresh.Error
	if errors.As(err, &rerr) {
		fmt.Println("status:", rerr.StatusCode, "code:", rerr.Code, "temporary:", rerr.Temporary())
	}
	// Output:
	// please log in again
	// status: 400 code: invalid_grant temporary: false
}

// loggingStore is a custom TokenStore: here it wraps another store and
// reports what happens, without printing token values.
type loggingStore struct {
	next refresh.TokenStore
	out  io.Writer
}

func (s loggingStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	tok, err := s.next.Load(ctx, key)
	fmt.Fprintf(s.out, "load %s: found=%v\n", key, err == nil)
	return tok, err
}

func (s loggingStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	fmt.Fprintf(s.out, "save %s: refresh token %s\n", key, strings.Repeat("*", len(tok.RefreshToken)))
	return s.next.Save(ctx, key, tok)
}

// A custom store needs two methods. The engine re-reads it before every
// refresh, and saves every new token before using it.
func ExampleTokenStore() {
	p := newProvider()
	defer p.close()
	var out strings.Builder
	store := loggingStore{next: new(refresh.MemoryStore), out: &out}
	store.next.Save(context.Background(), "u1", &oauth2.Token{AccessToken: "at-0", RefreshToken: "rt-0"})

	eng, _ := refresh.New(refresh.Config{OAuth2: p.config(), Store: store})
	client := &http.Client{Transport: &refresh.Transport{Engine: eng, Key: "u1"}}
	p.expire()
	resp, err := client.Get(p.api.URL)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Print(out.String())
	fmt.Println("status", resp.StatusCode)
	// Output:
	// load u1: found=true
	// load u1: found=true
	// save u1: refresh token ****
	// status 200
}

// Libraries that take an oauth2.TokenSource can use the engine too.
func ExampleEngine_TokenSource() {
	eng, _ := refresh.New(refresh.Config{Endpoint: refresh.EndpointFunc(func(ctx context.Context, t *oauth2.Token) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "new"}, nil
	})})
	eng.SetToken(context.Background(), "", &oauth2.Token{AccessToken: "current", RefreshToken: "r"})
	var ts oauth2.TokenSource = eng.TokenSource("")
	tok, _ := ts.Token()
	fmt.Println(tok.AccessToken)
	// Output: current
}
