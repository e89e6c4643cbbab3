package sealed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/sealed"
	"golang.org/x/oauth2"
)

// secretFromManager stands for a secret manager. Real secrets are 32 bytes
// from crypto/rand, never constants in code.
func secretFromManager(name string) []byte {
	return bytes.Repeat([]byte(name[len(name)-1:]), 32)
}

func Example() {
	ctx := context.Background()
	backend := &refresh.MemoryStore{} // or a file, Redis, PostgreSQL store
	store, err := sealed.New(backend, sealed.Key{ID: "2026-01", Secret: secretFromManager("tokens/1")})
	if err != nil {
		log.Fatal(err)
	}
	// Pass store to refresh.New; here it is used directly.
	if err := store.Save(ctx, "alice", &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"}); err != nil {
		log.Fatal(err)
	}

	raw, _ := backend.Load(ctx, "alice")
	fmt.Println("backend:", strings.HasPrefix(raw.AccessToken, "sealed1:2026-01:"), raw.RefreshToken == "")
	tok, _ := store.Load(ctx, "alice")
	fmt.Println("wrapper:", tok.AccessToken, tok.RefreshToken)
	// Output:
	// backend: true true
	// wrapper: at-1 rt-1
}

func Example_rotation() {
	ctx := context.Background()
	backend := &refresh.MemoryStore{}
	jan := sealed.Key{ID: "2026-01", Secret: secretFromManager("tokens/1")}
	feb := sealed.Key{ID: "2026-02", Secret: secretFromManager("tokens/2")}

	before, _ := sealed.New(backend, jan)
	before.Save(ctx, "alice", &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"})

	// The new key seals; the old one still opens.
	after, err := sealed.New(backend, feb, jan)
	if err != nil {
		log.Fatal(err)
	}
	tok, _ := after.Load(ctx, "alice")
	after.Save(ctx, "alice", tok) // the engine saves at every refresh
	raw, _ := backend.Load(ctx, "alice")
	fmt.Println(strings.HasPrefix(raw.AccessToken, "sealed1:2026-02:"))

	// Once every token has been saved again, jan can go.
	final, _ := sealed.New(backend, feb)
	tok, _ = final.Load(ctx, "alice")
	fmt.Println(tok.RefreshToken)
	// Output:
	// true
	// rt-1
}

func ExampleHideKeys() {
	ctx := context.Background()
	backend := &refresh.MemoryStore{}
	hidden, err := sealed.HideKeys(backend, secretFromManager("tokens/names"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := sealed.New(hidden, sealed.Key{ID: "2026-01", Secret: secretFromManager("tokens/1")})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Save(ctx, "alice", &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"}); err != nil {
		log.Fatal(err)
	}

	_, err = backend.Load(ctx, "alice")
	fmt.Println("backend under alice:", errors.Is(err, refresh.ErrNotFound))
	tok, _ := store.Load(ctx, "alice")
	fmt.Println("wrapper:", tok.AccessToken, tok.RefreshToken)
	// Output:
	// backend under alice: true
	// wrapper: at-1 rt-1
}
