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
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// Wrap an existing client: requests carry the token, and a rejected token
// is refreshed and the request retried, without the caller noticing.
func Example() {
	srv := refreshtest.NewServer(refreshtest.Options{}) // a strict local server: rotation, reuse detection
	defer srv.Close()

	store := new(refresh.MemoryStore)
	eng, err := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	// The token from the user's login (conf.Exchange in a real program).
	login := srv.Token()
	eng.SetToken(context.Background(), refresh.DefaultKey, login)

	client := eng.Client(&http.Client{}) // keeps the client's Timeout, Jar, CheckRedirect
	srv.RevokeAccessTokens()             // the API will answer 401 to the current token

	resp, err := client.Get(srv.URL + "/v2/account")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)

	saved, _ := store.Load(context.Background(), refresh.DefaultKey)
	st := srv.Stats()
	fmt.Println("rotated refresh token saved:", saved.RefreshToken != login.RefreshToken)
	fmt.Println("refreshes:", st.Refreshes, "reuses:", st.Reuses)
	// Output:
	// status: 200
	// rotated refresh token saved: true
	// refreshes: 1 reuses: 0
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
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	eng, _ := refresh.New(refresh.Config{OAuth2: srv.Config()})
	eng.SetToken(context.Background(), "", srv.Token())
	client := eng.Client(nil)

	srv.RevokeGrants() // the user revoked the application

	_, err := client.Get(srv.URL + "/v2/account")
	if errors.Is(err, refresh.ErrReauthRequired) {
		fmt.Println("please log in again")
		// After the new login: eng.SetToken(ctx, key, newToken)
	}
	var rerr *refresh.Error
	if errors.As(err, &rerr) {
		fmt.Println("status:", rerr.StatusCode, "code:", rerr.Code, "temporary:", rerr.Temporary())
	}
	for range 10 { // no more token-endpoint calls until a new login
		client.Get(srv.URL + "/v2/account")
	}
	fmt.Println("token requests:", srv.Stats().TokenRequests)
	// Output:
	// please log in again
	// status: 400 code: invalid_grant temporary: false
	// token requests: 1
}

// At logout, revoke the token at the server (RFC 7009), so that a copy of
// it left anywhere is worthless: revoking the refresh token ends its whole
// grant. An endpoint without a RevocationURL says it cannot revoke.
func ExampleFormEndpoint_Revoke() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	ep := &refresh.FormEndpoint{TokenURL: srv.TokenURL, RevocationURL: srv.RevocationURL,
		ClientID: refreshtest.DefaultClientID, ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody}
	eng, _ := refresh.New(refresh.Config{Endpoint: ep})
	ctx := context.Background()
	tok := srv.Token()
	eng.SetToken(ctx, refresh.DefaultKey, tok)

	err := ep.Revoke(ctx, tok)
	var rerr *refresh.Error
	switch {
	case errors.Is(err, refresh.ErrNoRevocation):
		fmt.Println("this server cannot revoke")
	case errors.As(err, &rerr) && rerr.Temporary():
		fmt.Println("try again later")
	case err != nil:
		fmt.Println("revocation refused:", rerr.Code)
	default:
		fmt.Println("revoked")
	}

	_, err = eng.Client(nil).Get(srv.URL + "/v2/account") // the access token is revoked too
	fmt.Println("re-authentication required:", errors.Is(err, refresh.ErrReauthRequired))
	fmt.Println("revocations:", srv.Stats().Revocations)

	noURL := &refresh.FormEndpoint{TokenURL: srv.TokenURL}
	fmt.Println("without RevocationURL:", errors.Is(noURL.Revoke(ctx, tok), refresh.ErrNoRevocation))
	// Output:
	// revoked
	// re-authentication required: true
	// revocations: 1
	// without RevocationURL: true
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
	old, _ := s.next.Load(ctx, key)
	if old != nil && old.RefreshToken != tok.RefreshToken {
		fmt.Fprintf(s.out, "save %s: rotated\n", key)
	} else {
		fmt.Fprintf(s.out, "save %s\n", key)
	}
	return s.next.Save(ctx, key, tok)
}

// A custom store needs two methods. The engine re-reads it before every
// refresh, and saves every new token before using it.
func ExampleTokenStore() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	var out strings.Builder
	store := loggingStore{next: new(refresh.MemoryStore), out: &out}
	store.next.Save(context.Background(), "u1", srv.Token())

	eng, _ := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: store})
	client := &http.Client{Transport: &refresh.Transport{Engine: eng, Key: "u1"}}
	srv.RevokeAccessTokens()
	resp, err := client.Get(srv.URL + "/v2/account")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Print(out.String())
	fmt.Println("status", resp.StatusCode)
	// Output:
	// load u1: found=true
	// load u1: found=true
	// save u1: rotated
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
