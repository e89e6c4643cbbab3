package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/pgstore"
	"github.com/oauthkit/refresh/redisstore"
)

// storeSpec says where the shared store of one soak is: everything a
// worker needs to open it, and the orchestrator to remove it.
type storeSpec struct {
	Kind string `json:"kind"` // "file", "redis" or "postgres"

	Dir string `json:"dir,omitempty"` // file: the token directory

	Addr    string        `json:"addr,omitempty"`   // redis: host:port
	Prefix  string        `json:"prefix,omitempty"` // redis: unique to this soak
	LockTTL time.Duration `json:"lock_ttl,omitempty"`

	URL   string `json:"url,omitempty"`   // postgres: connection string
	Table string `json:"table,omitempty"` // postgres: unique to this soak
}

var storeKinds = []string{"file", "redis", "postgres"}

func randomHex() string {
	b := make([]byte, 6)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// createStore makes a new, empty shared store of the given kind: a
// temporary directory, a Redis prefix no one else uses, or a PostgreSQL
// table created with pgstore.Migrate. The caller must call remove.
func createStore(ctx context.Context, kind string, o *options) (storeSpec, error) {
	sp := storeSpec{Kind: kind}
	switch kind {
	case "file":
		dir, err := os.MkdirTemp("", "refresh-chaos-")
		if err != nil {
			return sp, err
		}
		sp.Dir = dir
	case "redis":
		sp.Addr, sp.Prefix, sp.LockTTL = o.redisAddr, "refresh-chaos:"+randomHex()+":", o.lease
		c := redisClient(sp.Addr)
		defer c.Close()
		if err := c.Ping(ctx).Err(); err != nil {
			return sp, fmt.Errorf("redis at %s: %w", sp.Addr, err)
		}
	case "postgres":
		sp.URL, sp.Table = o.postgresURL, "refresh_chaos_"+randomHex()
		pool, err := pgPool(ctx, sp.URL)
		if err != nil {
			return sp, err
		}
		defer pool.Close()
		if err := pgstore.Migrate(ctx, pool, pgstore.Options{Table: sp.Table}); err != nil {
			return sp, err
		}
	default:
		return sp, fmt.Errorf("unknown store %q (want file, redis or postgres)", kind)
	}
	return sp, nil
}

// remove deletes everything the soak stored: the directory, the keys under
// the prefix, or the table. It is safe to call on a spec whose creation
// failed half-way.
func (sp storeSpec) remove(ctx context.Context) error {
	switch sp.Kind {
	case "file":
		if sp.Dir != "" {
			return os.RemoveAll(sp.Dir)
		}
	case "redis":
		if sp.Prefix == "" {
			return nil
		}
		c := redisClient(sp.Addr)
		defer c.Close()
		var errs []error
		iter := c.Scan(ctx, 0, sp.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			errs = append(errs, c.Del(ctx, iter.Val()).Err())
		}
		return errors.Join(append(errs, iter.Err())...)
	case "postgres":
		if sp.Table == "" {
			return nil
		}
		pool, err := pgPool(ctx, sp.URL)
		if err != nil {
			return err
		}
		defer pool.Close()
		_, err = pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{sp.Table}.Sanitize())
		return err
	}
	return nil
}

// where describes the store for the summary.
func (sp storeSpec) where() string {
	switch sp.Kind {
	case "file":
		return "directory " + sp.Dir
	case "redis":
		return fmt.Sprintf("redis %s, prefix %q, lock lease %v", sp.Addr, sp.Prefix, sp.LockTTL)
	case "postgres":
		return "postgres table " + sp.Table
	}
	return sp.Kind
}

// lease is how long a lock outlives a paused holder: a SIGSTOP longer than
// that may let another process take it. Zero for stores whose lock lasts
// as long as the holder's process (flock, a database session).
func (sp storeSpec) lease() time.Duration {
	if sp.Kind == "redis" {
		return sp.LockTTL
	}
	return 0
}

// sharedStore is what every store of the soak is: a lock and a
// compare-and-swap, so that the engine runs its cross-process protocol.
type sharedStore interface {
	refresh.Locker
	refresh.CompareAndSwapper
}

// open returns a store over the shared one and a function that releases
// its connections. leaseLost, if set, is told when a Redis lease of this
// process expired while it was held.
func (sp storeSpec) open(ctx context.Context, leaseLost func()) (sharedStore, func(), error) {
	switch sp.Kind {
	case "file":
		s, err := filestore.New(sp.Dir)
		return s, func() {}, err
	case "redis":
		c := redisClient(sp.Addr)
		opts := redisstore.Options{Prefix: sp.Prefix, LockTTL: sp.LockTTL}
		if leaseLost != nil {
			opts.LeaseLost = func(string) { leaseLost() }
		}
		s, err := redisstore.New(c, opts)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return s, func() { c.Close() }, nil
	case "postgres":
		pool, err := pgPool(ctx, sp.URL)
		if err != nil {
			return nil, nil, err
		}
		s, err := pgstore.New(pool, pgstore.Options{Table: sp.Table})
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		return s, pool.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown store %q", sp.Kind)
}

// redisClient is configured as redisstore's documentation recommends: the
// context's deadline bounds every call.
func redisClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           2 * time.Second,
		// Redis 7 does not know the maintenance-notification handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}

func pgPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.MaxConns = 4 // a held lock keeps one
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres at %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}
