package refresh_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// A multi-tenant server keeps every user's tokens in one engine, each user
// under a key of their own, over a store that outlives the process (and that
// its replicas share). Users idle for an hour leave memory, their tokens
// staying in the store until their next request loads them again; a user
// who logs out has their grant revoked and their token deleted.
func Example_multiTenant() {
	auth := refreshtest.NewServer(refreshtest.Options{}) // the authorization server and its API
	defer auth.Close()

	store := new(refresh.MemoryStore) // in production: filestore, redisstore or pgstore
	e, err := refresh.New(refresh.Config{
		Endpoint: &refresh.FormEndpoint{
			TokenURL:      auth.TokenURL,
			RevocationURL: auth.RevocationURL,
			ClientID:      refreshtest.DefaultClientID,
			ClientSecret:  refreshtest.DefaultClientSecret,
			Auth:          refresh.AuthInBody,
		},
		Store:       store,
		IdleTimeout: time.Hour, // forget users idle for an hour
	})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx := context.Background()

	// Each user's login (the authorization-code flow, not shown) ends with:
	for _, user := range []string{"alice", "bob"} {
		e.SetToken(ctx, user, auth.Token())
	}

	// A request handler calls the API on behalf of its user.
	api := e.Client(nil)
	call := func(user string) {
		req, _ := http.NewRequestWithContext(refresh.WithKey(ctx, user), "GET", auth.URL+"/v2/account", nil)
		resp, err := api.Do(req)
		if err != nil {
			fmt.Println(user+":", err)
			return
		}
		resp.Body.Close()
		fmt.Println(user+":", resp.Status)
	}
	call("alice")
	call("bob")

	e.Forget(ctx, "bob") // what an hour of bob's silence does
	fmt.Println("keys in memory:", e.Stats().Keys)
	call("bob") // loaded from the store again

	if err := e.Logout(ctx, "alice"); err != nil {
		log.Fatal(err)
	}
	_, err = e.Token(ctx, "alice")
	fmt.Println("alice must log in again:", errors.Is(err, refresh.ErrReauthRequired))
	fmt.Println("grants revoked:", auth.Stats().Revocations)
	// Output:
	// alice: 200 OK
	// bob: 200 OK
	// keys in memory: 1
	// bob: 200 OK
	// alice must log in again: true
	// grants revoked: 1
}
