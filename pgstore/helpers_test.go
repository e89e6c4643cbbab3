package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/pgstore"
)

// roleEnv makes the test binary a helper process: "locker" (holds a lock
// until killed).
const roleEnv = "PGSTORE_TEST_ROLE"

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "locker" {
		os.Exit(lockerMain())
	}
	os.Exit(m.Run())
}

// dbURL is the database the tests use.
func dbURL() string {
	if u := os.Getenv("REFRESH_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// testPool returns a pool over the test database, closed when the test
// ends. configure, if given, adjusts the pool's configuration first. If the
// database cannot be reached the test is skipped, or fails when
// REFRESH_REQUIRE_SERVICES=1.
func testPool(t testing.TB, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	url := redacted(dbURL())
	cfg, err := pgxpool.ParseConfig(dbURL())
	if err != nil {
		t.Fatalf("REFRESH_TEST_POSTGRES: %v", err)
	}
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	for _, f := range configure {
		f(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		if err = pool.Ping(ctx); err != nil {
			pool.Close()
		}
	}
	if err != nil {
		if os.Getenv("REFRESH_REQUIRE_SERVICES") == "1" {
			t.Fatalf("postgres not reachable at %s: %v", url, err)
		}
		t.Skipf("postgres not reachable at %s; start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start, or set REFRESH_TEST_POSTGRES", url)
	}
	t.Cleanup(pool.Close)
	return pool
}

// redacted hides a password in a database URL that is printed.
func redacted(s string) string {
	if u, err := neturl.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

func maxConns(n int32) func(*pgxpool.Config) {
	return func(c *pgxpool.Config) { c.MaxConns = n }
}

// testSchema creates a schema with a random name for this test and drops
// it, with everything in it, when the test ends. It uses connections of
// its own, so that a test that breaks its pools still cleans up.
func testSchema(t testing.TB) string {
	t.Helper()
	testPool(t).Close() // skips or fails the test as testPool does
	b := make([]byte, 6)
	rand.Read(b)
	name := "pgstore_test_" + hex.EncodeToString(b)
	ident := pgx.Identifier{name}.Sanitize()
	exec := func(q string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dbURL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	if err := exec("CREATE SCHEMA " + ident); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + ident + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// migrated creates the store's table in schema and returns a store over
// pool.
func migrated(t testing.TB, pool *pgxpool.Pool, opts pgstore.Options) *pgstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pgstore.Migrate(ctx, pool, opts); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := pgstore.New(pool, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// lockID returns the advisory lock id of key in s.
func lockID(t *testing.T, s *pgstore.Store, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := s.LockIDForTest(ctx, key)
	if err != nil {
		t.Fatalf("lock id: %v", err)
	}
	return id
}

// lockSessions returns the backends that hold (granted) or wait for
// (waiting) the advisory lock id in the test database.
func lockSessions(t *testing.T, admin *pgxpool.Pool, id int64) (granted, waiting []int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := admin.Query(ctx, `SELECT pid, granted FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint64(id)>>32), int64(uint32(id)))
	if err != nil {
		t.Fatalf("pg_locks: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var pid int32
		var ok bool
		if err := rows.Scan(&pid, &ok); err != nil {
			t.Fatalf("pg_locks: %v", err)
		}
		if ok {
			granted = append(granted, pid)
		} else {
			waiting = append(waiting, pid)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pg_locks: %v", err)
	}
	return granted, waiting
}

// holder returns the one backend that holds the lock id, failing the test
// if there is not exactly one.
func holder(t *testing.T, admin *pgxpool.Pool, id int64) int32 {
	t.Helper()
	granted, _ := lockSessions(t, admin, id)
	if len(granted) != 1 {
		t.Fatalf("sessions holding the lock: %v, want exactly one", granted)
	}
	return granted[0]
}

// waitUnlocked waits until no session holds or waits for the lock id.
func waitUnlocked(t *testing.T, admin *pgxpool.Pool, id int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		granted, waiting := lockSessions(t, admin, id)
		if len(granted)+len(waiting) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, the lock is still held by %v (waiting: %v)", within, granted, waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// terminate ends the backend pid, as an administrator or a server timeout
// would.
func terminate(t *testing.T, admin *pgxpool.Pool, pid int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// lockWithin calls s.Lock with a context that ends after d.
func lockWithin(s interface {
	Lock(context.Context, string) (func(), error)
}, key string, d time.Duration) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return s.Lock(ctx, key)
}

func ctx5s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randomKey(tag string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s-%x", tag, b)
}

func testToken(tag string) *oauth2.Token {
	return &oauth2.Token{AccessToken: "at-" + tag, TokenType: "Bearer", RefreshToken: "rt-" + tag,
		Expiry: time.Now().Add(time.Hour).Round(time.Microsecond), ExpiresIn: 3600}
}
