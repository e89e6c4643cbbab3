package pgstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// TestLockSurvivesPooling: with a pool of 2 connections, a held lock keeps
// its own connection while many statements go through the other one; it
// excludes another pool's Lock until unlock, and the pool never hands the
// lock's session to anyone else.
func TestLockSurvivesPooling(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	poolA := testPool(t, maxConns(2))
	a := migrated(t, poolA, opts)
	b, err := pgstore.New(testPool(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	admin := testPool(t)
	ctx := ctx5s(t)
	const key = "alice"
	id := lockID(t, a, key)

	unlock, err := a.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	pid := holder(t, admin, id)

	// 800 statements from 8 goroutines through the one free connection,
	// with a deadline that only a hang reaches: on a loaded machine they
	// took longer than the 5 s of ctx.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	slow, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for g := range 8 {
		wg.Go(func() {
			k := fmt.Sprint("other-", g)
			for i := range 50 {
				tok := testToken(fmt.Sprint(g, "-", i))
				if err := a.Save(slow, k, tok); err != nil {
					errs <- err
					return
				}
				if _, err := a.Load(slow, k); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Meanwhile another pool cannot take the lock, and this store does
	// not lock a second key with its last connection: that connection
	// must stay free for the holder's own statements.
	if u, err := lockWithin(b, key, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Errorf("Lock from another pool while held: %v, want DeadlineExceeded", err)
	}
	if u, err := lockWithin(a, "bob", 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Errorf("second Lock of a 2-connection store: %v, want DeadlineExceeded", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("statement while a lock is held: %v", err)
	}
	if got := holder(t, admin, id); got != pid {
		t.Errorf("lock holder changed from %d to %d", pid, got)
	}
	if u, err := lockWithin(b, key, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Errorf("Lock from another pool after the statements: %v, want DeadlineExceeded", err)
	}

	unlock()
	unlock() // a second call does nothing
	if granted, waiting := lockSessions(t, admin, id); len(granted)+len(waiting) != 0 {
		t.Errorf("after unlock: held by %v, waiting %v; want nobody", granted, waiting)
	}
	ub, err := lockWithin(b, key, 2*time.Second)
	if err != nil {
		t.Fatalf("Lock from another pool after unlock: %v", err)
	}
	if got := holder(t, admin, id); got == pid {
		t.Errorf("the other pool's lock is held by the first pool's session %d", pid)
	}
	ub()
	ua, err := lockWithin(a, "bob", 2*time.Second)
	if err != nil {
		t.Fatalf("Lock of a second key after unlock: %v", err)
	}
	ua()
}

// TestLockReleasedWhenProcessDies: a process killed with SIGKILL while it
// holds a lock does not keep it: the server sees its connection close.
func TestLockReleasedWhenProcessDies(t *testing.T) {
	schema := testSchema(t)
	s := migrated(t, testPool(t), pgstore.Options{Schema: schema})
	const key = "alice"

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=locker", "PGSTORE_TEST_URL="+dbURL(), "PGSTORE_TEST_SCHEMA="+schema, "PGSTORE_TEST_KEY="+key)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if sc := bufio.NewScanner(stdout); !sc.Scan() || sc.Text() != "locked" {
		t.Fatalf("child: %q, want \"locked\"", sc.Text())
	}

	if u, err := lockWithin(s, key, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Fatalf("Lock while the child holds it: %v, want DeadlineExceeded", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	start := time.Now()
	unlock, err := lockWithin(s, key, 5*time.Second)
	if err != nil {
		t.Fatalf("Lock after the child was killed: %v", err)
	}
	t.Logf("lock taken %v after the holder was killed", time.Since(start).Round(time.Millisecond))
	unlock()
}

// lockerMain is the child of TestLockReleasedWhenProcessDies: it takes the
// lock, says so, and waits to be killed.
func lockerMain() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, os.Getenv("PGSTORE_TEST_URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := pgstore.New(pool, pgstore.Options{Schema: os.Getenv("PGSTORE_TEST_SCHEMA")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := s.Lock(ctx, os.Getenv("PGSTORE_TEST_KEY")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("locked")
	time.Sleep(time.Minute) // killed long before
	return 1
}

// TestLockContextEnds: a Lock waiting behind a holder returns promptly when
// its context is cancelled or times out, with an error wrapping the
// context's, and holds nothing: no session of its pool holds or waits for
// the lock, and another store locks at once after the holder unlocks.
func TestLockContextEnds(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	a := migrated(t, testPool(t), opts)
	b, err := pgstore.New(testPool(t, maxConns(2)), opts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgstore.New(testPool(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	admin := testPool(t)
	const key = "alice"
	id := lockID(t, a, key)
	unlock, err := a.Lock(ctx5s(t), key)
	if err != nil {
		t.Fatal(err)
	}
	pid := holder(t, admin, id)

	for _, cancelled := range []bool{true, false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		want := context.DeadlineExceeded
		if cancelled {
			ctx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			want = context.Canceled
		}
		type result struct {
			unlock func()
			err    error
		}
		done := make(chan result, 1)
		go func() {
			u, err := b.Lock(ctx, key)
			done <- result{u, err}
		}()
		select {
		case r := <-done:
			if !errors.Is(r.err, want) {
				t.Errorf("Lock with a context that ends: %v, want an error wrapping %v", r.err, want)
			}
			if r.unlock != nil {
				t.Errorf("Lock that failed returned an unlock func")
				r.unlock()
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Lock did not return within 2 s of a context that ended after 150 ms")
		}
		cancel()
		granted, waiting := lockSessions(t, admin, id)
		if len(granted) != 1 || granted[0] != pid || len(waiting) != 0 {
			t.Errorf("after the waiter gave up: held by %v, waiting %v; want only %d", granted, waiting, pid)
		}
	}

	unlock()
	if granted, waiting := lockSessions(t, admin, id); len(granted)+len(waiting) != 0 {
		t.Errorf("after unlock: held by %v, waiting %v; want nobody", granted, waiting)
	}
	start := time.Now()
	uc, err := lockWithin(c, key, time.Second)
	if err != nil {
		t.Fatalf("Lock from another store after unlock: %v", err)
	}
	t.Logf("lock taken %v after unlock", time.Since(start).Round(time.Microsecond))
	uc()
	// The store whose waits ended still works: nothing of its 2
	// connections was left behind.
	ub, err := lockWithin(b, key, time.Second)
	if err != nil {
		t.Fatalf("Lock from the store whose waits ended: %v", err)
	}
	ub()
	if granted, waiting := lockSessions(t, admin, id); len(granted)+len(waiting) != 0 {
		t.Errorf("at the end: held by %v, waiting %v; want nobody", granted, waiting)
	}
}

// tryCounter is a pgx tracer that counts the lock attempts
// (pg_try_advisory_lock) of a pool's connections.
type tryCounter struct{ n atomic.Int64 }

func (c *tryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, "pg_try_advisory_lock") {
		c.n.Add(1)
	}
	return ctx
}

func (c *tryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestLockPollFloor: whatever LockPoll New accepts, a Lock waiting behind
// a held lock tries at most once a millisecond. A LockPoll of a nanosecond
// used to make the wait a busy loop, thousands of queries in 300 ms.
func TestLockPollFloor(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	holder := migrated(t, testPool(t), opts)
	const key, wait = "alice", 300 * time.Millisecond
	unlock, err := holder.Lock(ctx5s(t), key)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, poll := range []time.Duration{time.Nanosecond, time.Microsecond, 999 * time.Microsecond, time.Millisecond} {
		var tries tryCounter
		o := opts
		o.LockPoll = poll
		s, err := pgstore.New(testPool(t, func(c *pgxpool.Config) { c.ConnConfig.Tracer = &tries }), o)
		if err != nil {
			if poll >= time.Millisecond || !strings.Contains(err.Error(), "LockPoll") {
				t.Errorf("New with LockPoll %v: %v", poll, err)
			}
			continue
		}
		if _, err := s.Load(ctx5s(t), key); !errors.Is(err, refresh.ErrNotFound) { // opens a connection
			t.Fatalf("Load: %v", err)
		}
		if u, err := lockWithin(s, key, wait); !errors.Is(err, context.DeadlineExceeded) {
			if u != nil {
				u()
			}
			t.Fatalf("Lock with LockPoll %v while held: %v, want DeadlineExceeded", poll, err)
		}
		// One try at once, then one after each pause of at least 1 ms.
		n, most := tries.n.Load(), int64(wait/time.Millisecond)+5
		if n > most {
			t.Errorf("LockPoll %v: %d lock attempts in a wait of %v, want at most %d", poll, n, wait, most)
		}
		t.Logf("LockPoll %v: %d lock attempts in %v", poll, n, wait)
	}
}
