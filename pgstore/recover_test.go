package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// TestLockSessionLost: the session holding a lock is terminated in the
// middle of a refresh. The server releases the lock with the session, so
// another store can lock and save; the first holder's compare-and-swap is
// refused; during a network outage a compare-and-swap fails with a clear
// error; the holder's unlock neither hangs nor panics; and once the network
// is back the store locks again.
func TestLockSessionLost(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	cfg, err := pgxpool.ParseConfig(dbURL())
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, net.JoinHostPort(cfg.ConnConfig.Host, strconv.Itoa(int(cfg.ConnConfig.Port))))
	a := migrated(t, testPool(t, px.through, maxConns(4)), opts)
	b, err := pgstore.New(testPool(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	admin := testPool(t)
	ctx := ctx5s(t)
	const key = "alice"
	id := lockID(t, a, key)
	t1, t2, t3 := testToken("1"), testToken("2"), testToken("3")
	if err := a.Save(ctx, key, t1); err != nil {
		t.Fatal(err)
	}

	unlockA, err := a.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	terminate(t, admin, holder(t, admin, id))
	waitUnlocked(t, admin, id, 5*time.Second)

	// Another process takes over and refreshes.
	unlockB, err := lockWithin(b, key, 2*time.Second)
	if err != nil {
		t.Fatalf("Lock after the holder's session ended: %v", err)
	}
	if err := b.CompareAndSwap(ctx, key, t1, t2); err != nil {
		t.Fatalf("the new holder's save: %v", err)
	}
	unlockB()
	// The first holder's save, from the token it read, is refused.
	if err := a.CompareAndSwap(ctx, key, t1, t3); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("the stale holder's save: %v, want ErrConflict", err)
	}

	// A network outage.
	px.cut()
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err = a.CompareAndSwap(cctx, key, t2, t3)
	cancel()
	switch {
	case err == nil:
		t.Errorf("CompareAndSwap during the outage succeeded")
	case errors.Is(err, refresh.ErrConflict):
		t.Errorf("CompareAndSwap during the outage: %v, want an error other than ErrConflict", err)
	case !strings.HasPrefix(err.Error(), "pgstore: compare-and-swap in "):
		t.Errorf("CompareAndSwap during the outage: %q, want it to start with \"pgstore: compare-and-swap in \"", err)
	case strings.Contains(err.Error(), "at-") || strings.Contains(err.Error(), "rt-"):
		t.Errorf("CompareAndSwap during the outage: %q holds a token", err)
	}
	t.Logf("CompareAndSwap during the outage, after %v: %v", time.Since(start).Round(time.Millisecond), err)

	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		unlockA()
		unlockA()
	}()
	select {
	case p := <-done:
		if p != nil {
			t.Errorf("unlock of the lost lock panicked: %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unlock of the lost lock did not return within 10 s")
	}
	t.Logf("unlock of the lost lock returned after %v", time.Since(start).Round(time.Millisecond))

	px.restore()
	unlock, err := lockWithin(a, key, 5*time.Second)
	if err != nil {
		t.Fatalf("Lock after the outage: %v", err)
	}
	holder(t, admin, id)
	unlock()
	if got, err := a.Load(ctx, key); err != nil || !refresh.SameToken(got, t2) {
		t.Errorf("Load after the outage: %v, %v; want the new holder's token", got, err)
	}
}

// TestServerRestart: every session of a pool is terminated, as a server
// restart would from the client's side (the shared server keeps running).
// The pool's connections are all dead, one of them holding a lock; the
// dead lock's unlock returns, and the next Loads, Saves, CompareAndSwaps and
// Locks, even concurrent ones that meet every dead connection, succeed.
func TestServerRestart(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	app := "pgstore-test-" + opts.Schema
	pool := testPool(t, maxConns(6), func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["application_name"] = app })
	s := migrated(t, pool, opts)
	admin := testPool(t)
	ctx := ctx5s(t)
	const key = "alice"
	t1, t2 := testToken("1"), testToken("2")
	if err := s.Save(ctx, key, t1); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// Open the pool's other connections.
	var conns []*pgxpool.Conn
	for range 5 {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns[1:] {
		c.Release()
	}
	sessions := func() (n int) {
		t.Helper()
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sessions(); n != 6 {
		t.Fatalf("sessions of the pool: %d, want 6", n)
	}
	var killed int
	err = conns[0].QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t`, app).Scan(&killed)
	if err != nil || killed != 5 {
		t.Fatalf("terminated %d sessions (%v), want 5", killed, err)
	}
	conns[0].Release()
	for deadline := time.Now().Add(5 * time.Second); sessions() > 1; {
		if time.Now().After(deadline) {
			t.Fatalf("terminated sessions still there after 5 s: %d", sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Five dead connections in the pool, one of them holding the lock.
	done := make(chan struct{})
	go func() { unlock(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("unlock on a terminated session did not return within 5 s")
	}
	// Concurrent calls meet every dead connection of the pool.
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			k := fmt.Sprint("k", g)
			if err := s.Save(ctx, k, t1); err != nil {
				t.Errorf("Save(%s) after the restart: %v", k, err)
			}
			if got, err := s.Load(ctx, k); err != nil || !refresh.SameToken(got, t1) {
				t.Errorf("Load(%s) after the restart: %v, %v", k, got, err)
			}
			if err := s.CompareAndSwap(ctx, k, t1, t2); err != nil {
				t.Errorf("CompareAndSwap(%s) after the restart: %v", k, err)
			}
			u, err := lockWithin(s, k, 2*time.Second)
			if err != nil {
				t.Errorf("Lock(%s) after the restart: %v", k, err)
				return
			}
			u()
		})
	}
	wg.Wait()
	if got, err := s.Load(ctx, key); err != nil || !refresh.SameToken(got, t1) {
		t.Errorf("Load(%s) after the restart: %v, %v", key, got, err)
	}
	u, err := lockWithin(s, key, 2*time.Second)
	if err != nil {
		t.Fatalf("Lock(%s) after the restart: %v", key, err)
	}
	u()
}
