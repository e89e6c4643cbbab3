package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
	"golang.org/x/oauth2"
)

// TestLeaseLostEvent: a lease lost while an engine's refresh holds the lock
// reaches the engine's OnEvent as an EventStore event of the key.
func TestLeaseLostEvent(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	a := storeWith(t, c, prefix, redisstore.Options{LockTTL: 300 * time.Millisecond})
	b := storeWith(t, c, prefix, redisstore.Options{LockTTL: 10 * time.Second})
	const key = "leased"
	var mu sync.Mutex
	var got []refresh.Event
	inRefresh, release := make(chan struct{}), make(chan struct{})
	e, err := refresh.New(refresh.Config{
		Store: a,
		OnEvent: func(ev refresh.Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, ev)
		},
		Endpoint: refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
			close(inRefresh)
			<-release
			return &oauth2.Token{AccessToken: "at-new-0000", RefreshToken: "rt-new-0000"}, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.SetToken(ctx, key, token("0")); err != nil {
		t.Fatal(err)
	}
	redisstore.PauseRenewal(a, true)
	done := make(chan error, 1)
	go func() { _, err := e.Refresh(ctx, key, nil); done <- err }()
	<-inRefresh
	// B takes the lock once A's lease ran out; A's renewal then finds it
	// lost.
	unlockB := lockWithin(t, b, key, 5*time.Second, "B behind the engine's expiring lease")
	redisstore.PauseRenewal(a, false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		refresh.ReportStoreEvent(ctx, refresh.StoreEvent{}) // not from an engine: ignored
		mu.Lock()
		var lost []refresh.Event
		for _, ev := range got {
			if ev.Kind == refresh.EventStore {
				lost = append(lost, ev)
			}
		}
		mu.Unlock()
		if len(lost) == 1 && lost[0].Key == key && lost[0].Store.Op == "lock" && lost[0].Store.What == "lease lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store events %+v; want one lease lost for %q within 5 s of the renewal resuming", lost, key)
		}
		time.Sleep(10 * time.Millisecond)
	}
	unlockB()
	close(release)
	<-done
	e.Close(ctx)
}
