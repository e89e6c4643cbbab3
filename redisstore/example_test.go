package redisstore_test

import (
	"log"
	"net/http"
	"net/url"
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

// A fleet of processes calls an API with one client-credentials token
// between them: the first process to need a token fetches it under the
// key's Redis lock and saves it, every other process adopts it from Redis,
// and when it comes due one of them fetches the next, while the others keep
// using the valid one. The token endpoint sees one request per token
// lifetime, whatever the size of the fleet. (Not run: it needs a Redis and
// an authorization server; storetest.RunProcesses's ClientCredentials
// scenario runs it against both.)
func ExampleNew_clientCredentials() {
	rdb := redis.NewClient(&redis.Options{Addr: "redis.internal:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	store, err := redisstore.New(rdb, redisstore.Options{Prefix: "reports:oauth:"})
	if err != nil {
		log.Fatal(err)
	}
	eng, err := refresh.New(refresh.Config{
		Store: store,
		Endpoint: &refresh.ClientCredentials{FormEndpoint: refresh.FormEndpoint{
			TokenURL:     "https://auth.example.com/oauth2/token",
			ClientID:     "reports",
			ClientSecret: "…", // from the environment or a file, never from code
			Auth:         refresh.AuthBasic,
			Scope:        "reports.read",
			Params:       url.Values{"audience": {"https://api.example.com"}},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	// One key per (client, scope set, audience) the program needs.
	api := &http.Client{Transport: &refresh.Transport{Engine: eng, Key: "reports.read@api.example.com"}}
	resp, err := api.Get("https://api.example.com/v1/reports")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}
