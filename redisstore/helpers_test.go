package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oauthkit/refresh/redisstore"
)

// redisAddr is the shared Redis the tests use: REFRESH_TEST_REDIS, or the
// default port on loopback.
func redisAddr() string {
	if a := os.Getenv("REFRESH_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newClient returns a client for addr with the settings the package
// documentation recommends: contexts bound every call.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
		// Redis 7 does not know the handshake of maintenance
		// notifications; the client would try it on every connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

// reachable pings the shared Redis once per test binary, so that tests
// skip at once when it is down rather than each wait for the client's
// retries.
var reachable = sync.OnceValue(func() error {
	c := newClient(redisAddr())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
})

// testClient returns a client of the shared Redis, closed when t ends. If
// Redis is not reachable the test is skipped, or fails when
// REFRESH_REQUIRE_SERVICES=1 (as in CI).
func testClient(t testing.TB) *redis.Client {
	t.Helper()
	addr := redisAddr()
	if err := reachable(); err != nil {
		if os.Getenv("REFRESH_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis not reachable at %s: %v (REFRESH_REQUIRE_SERVICES=1)", addr, err)
		}
		t.Skipf("redis not reachable at %s; start it with: redis-server --daemonize yes --port 6379 --save '' --appendonly no, or set REFRESH_TEST_REDIS", addr)
	}
	c := newClient(addr)
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix no other test or test run uses, and
// deletes every key under it when t ends, so the shared Redis is left as
// it was found.
func testPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	prefix := "refresh-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() { deleteUnder(c, prefix) })
	return prefix
}

// deleteUnder deletes the keys whose names start with prefix (which holds
// no glob characters).
func deleteUnder(c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
}

// newStore returns a store over c with a private prefix and the given
// options (whose Prefix is replaced).
func newStore(t testing.TB, c redis.UniversalClient, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.Prefix = testPrefix(t, c)
	s, err := redisstore.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
