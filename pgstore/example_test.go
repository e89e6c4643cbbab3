package pgstore_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// The table is created by an explicit Migrate, here at start-up; then
// every process of every host that uses the same table refreshes each
// key's token once and shares it. (Not run: it needs a database.)
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	opts := pgstore.Options{Schema: "myapp"} // table myapp.refresh_tokens
	if err := pgstore.Migrate(ctx, pool, opts); err != nil {
		log.Fatal(err)
	}
	store, err := pgstore.New(pool, opts)
	if err != nil {
		log.Fatal(err)
	}
	eng, err := refresh.New(refresh.Config{
		OAuth2: &oauth2.Config{
			ClientID:     "my-client",
			ClientSecret: os.Getenv("CLIENT_SECRET"),
			Endpoint:     oauth2.Endpoint{TokenURL: "https://auth.example.com/token", AuthStyle: oauth2.AuthStyleInHeader},
		},
		Store: store,
	})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := eng.Client(nil).Get("https://api.example.com/me")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}
