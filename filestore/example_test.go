package filestore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/filestore"
)

func ExampleNew() {
	base, err := os.MkdirTemp("", "filestore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)

	// In a real program: a directory under os.UserConfigDir().
	store, err := filestore.New(filepath.Join(base, "tokens"))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Save(ctx, "alice", &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}); err != nil {
		log.Fatal(err)
	}

	// Another process using the same directory sees the token.
	other, err := filestore.New(filepath.Join(base, "tokens"))
	if err != nil {
		log.Fatal(err)
	}
	tok, err := other.Load(ctx, "alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.AccessToken, tok.RefreshToken)
	// Output: at rt
}
