package redisstore_test

import (
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// Every process of the service, on every host, builds the same engine over
// the same Redis: they share each key's token and refresh it once between
// them. (Not run: it needs a Redis and an authorization server.)
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{
		Addr: "redis.internal:6379",
		// Let each call's context bound it, even if Redis stops answering.
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()

	store, err := redisstore.New(rdb, redisstore.Options{
		Prefix:  "billing:oauth:", // one namespace per application
		LockTTL: 20 * time.Second, // longer than any pause you expect
	})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := refresh.New(refresh.Config{
		OAuth2: &oauth2.Config{
			ClientID:     "billing",
			ClientSecret: "…",
			Endpoint: oauth2.Endpoint{
				TokenURL:  "https://auth.example.com/oauth2/token",
				AuthStyle: oauth2.AuthStyleInHeader,
			},
		},
		Store: store,
	})
	if err != nil {
		log.Fatal(err)
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	_ = client // requests carry the token of refresh.DefaultKey, or of the key in their context
}
