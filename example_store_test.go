package refresh_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// countingStore adds an action to every write of a MemoryStore: it counts
// them (a real one might copy the token to a backup, or tell another part of
// the program). It embeds MemoryStore, which is a CompareAndSwapper, so it
// overrides both ways of writing: the engine saves refreshed tokens with
// CompareAndSwap, and Save alone would miss them.
type countingStore struct {
	refresh.MemoryStore
	writes atomic.Int32
}

func (s *countingStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if err := s.MemoryStore.Save(ctx, key, tok); err != nil {
		return err
	}
	s.writes.Add(1)
	return nil
}

func (s *countingStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if err := s.MemoryStore.CompareAndSwap(ctx, key, old, new); err != nil {
		return err // refresh.ErrConflict included: nothing was written
	}
	s.writes.Add(1)
	return nil
}

// saveOnlyStore is the trap: it overrides Save but not the CompareAndSwap
// it gets from the embedded MemoryStore, which the engine calls instead.
type saveOnlyStore struct {
	refresh.MemoryStore
	writes atomic.Int32
}

func (s *saveOnlyStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if err := s.MemoryStore.Save(ctx, key, tok); err != nil {
		return err
	}
	s.writes.Add(1)
	return nil
}

// refreshOnce stores a login's token in store (seed writes it without the
// wrapper), then makes the engine refresh and save it once.
func refreshOnce(store refresh.TokenStore, seed *refresh.MemoryStore) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	seed.Save(context.Background(), "u1", srv.Token())
	eng, err := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close(context.Background())
	client := &http.Client{Transport: &refresh.Transport{Engine: eng, Key: "u1"}}
	srv.RevokeAccessTokens() // the next request gets a 401, and the engine refreshes
	resp, err := client.Get(srv.URL + "/v2/account")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}

// A store that embeds MemoryStore to add to its writes must override
// CompareAndSwap as well as Save: the engine saves a refreshed token with
// the CompareAndSwap of a store that has one, and the embedded MemoryStore's
// is promoted. (A store that holds its MemoryStore in a named field and has
// only Load and Save is not a CompareAndSwapper; the engine then uses Save.)
func ExampleMemoryStore_wrapping() {
	good := new(countingStore)
	refreshOnce(good, &good.MemoryStore)
	fmt.Println("Save and CompareAndSwap overridden, writes counted:", good.writes.Load())

	trap := new(saveOnlyStore)
	refreshOnce(trap, &trap.MemoryStore)
	fmt.Println("only Save overridden, writes counted:", trap.writes.Load())
	// Output:
	// Save and CompareAndSwap overridden, writes counted: 1
	// only Save overridden, writes counted: 0
}

// A backend that can compare-and-swap but has no lock (a table with
// conditional writes, a Kubernetes Secret and its resourceVersion, Vault
// KV's cas) gets one through NewLeaseLocker. Here two "processes", each
// with its own engine and its own LeaseLocker over one shared backend
// (a MemoryStore stands in for it), both find the token rejected: one
// refreshes, the other adopts its token.
func ExampleNewLeaseLocker() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	var backend refresh.MemoryStore // yours: Load, Save, CompareAndSwap
	backend.Save(context.Background(), refresh.DefaultKey, srv.Token())

	var clients []*http.Client
	for range 2 {
		store, err := refresh.NewLeaseLocker(&backend, refresh.LeaseOptions{})
		if err != nil {
			log.Fatal(err)
		}
		eng, err := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: store})
		if err != nil {
			log.Fatal(err)
		}
		clients = append(clients, eng.Client(nil))
	}

	srv.RevokeAccessTokens()
	done := make(chan int)
	for _, c := range clients {
		go func() {
			resp, err := c.Get(srv.URL + "/v1/notes")
			if err != nil {
				log.Fatal(err)
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	fmt.Println("statuses:", <-done, <-done)
	st := srv.Stats()
	fmt.Println("refreshes:", st.Refreshes, "reuses:", st.Reuses)
	// Output:
	// statuses: 200 200
	// refreshes: 1 reuses: 0
}
