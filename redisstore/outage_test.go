package redisstore_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// privateRedis is a redis-server of the test's own, on a free port, without
// persistence, that the test may kill and start again. The shared Redis is
// never restarted.
type privateRedis struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	addr string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("REFRESH_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis-server not found: %v (REFRESH_REQUIRE_SERVICES=1)", err)
		}
		t.Skipf("redis-server not found (%v); install it to run the outage tests", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &privateRedis{t: t, bin: bin, dir: t.TempDir(), port: port, addr: "127.0.0.1:" + strconv.Itoa(port)}
	p.start()
	t.Cleanup(p.kill)
	return p
}

// start runs the server and waits until it answers.
func (p *privateRedis) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "--port", strconv.Itoa(p.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", p.dir)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	c := newClient(p.addr)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("private redis-server on %s did not answer within 10 s: %v", p.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the server with SIGKILL, as a crash would.
func (p *privateRedis) kill() {
	if p.cmd != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		p.cmd = nil
	}
}

// bounded runs f, failing the test if it does not return within d.
func bounded(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// wantOutageErr checks that err is a plain failure: not nil, not a missing
// token, not a conflict.
func wantOutageErr(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s while Redis is down: got nil error", what)
	case errors.Is(err, refresh.ErrNotFound), errors.Is(err, refresh.ErrConflict), errors.Is(err, redisstore.ErrCorrupt):
		t.Errorf("%s while Redis is down: got %q, want a connection error (not ErrNotFound, ErrConflict or ErrCorrupt)", what, err)
	}
}

// TestServerRestart: while Redis is down every call fails cleanly within
// its context; once Redis is back the same Store works again. Without
// persistence the token is gone after the restart, as the package
// documentation says.
func TestServerRestart(t *testing.T) {
	p := startPrivateRedis(t)
	c := newClient(p.addr)
	defer c.Close()
	s, err := redisstore.New(c, redisstore.Options{LockTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	const key = "alice"
	t0 := token("0")
	if err := s.Save(bg, key, t0); err != nil {
		t.Fatal(err)
	}

	p.kill()
	calls := []struct {
		what string
		f    func(ctx context.Context) error
	}{
		{"Load", func(ctx context.Context) error { _, err := s.Load(ctx, key); return err }},
		{"Save", func(ctx context.Context) error { return s.Save(ctx, key, token("1")) }},
		{"CompareAndSwap", func(ctx context.Context) error { return s.CompareAndSwap(ctx, key, t0, token("1")) }},
		{"Lock", func(ctx context.Context) error {
			unlock, err := s.Lock(ctx, key)
			if err == nil {
				unlock()
			}
			return err
		}},
	}
	for _, call := range calls {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		var err error
		bounded(t, 5*time.Second, call.what+" while Redis is down", func() { err = call.f(ctx) })
		cancel()
		wantOutageErr(t, call.what, err)
	}

	p.start()
	// The client's pool may need a moment to give up its dead
	// connections and dial anew.
	var got error
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		_, got = s.Load(ctx, key)
		cancel()
		if got == nil || errors.Is(got, refresh.ErrNotFound) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(got, refresh.ErrNotFound) {
		t.Fatalf("Load after a restart without persistence: got %v, want ErrNotFound", got)
	}
	t1 := token("1")
	if err := s.Save(bg, key, t1); err != nil {
		t.Fatalf("Save after the restart: %v", err)
	}
	if tok, err := s.Load(bg, key); err != nil || !refresh.SameToken(tok, t1) {
		t.Errorf("Load after the restart: got %v, %v; want the token saved", tok, err)
	}
	if err := s.CompareAndSwap(bg, key, t1, token("2")); err != nil {
		t.Errorf("CompareAndSwap after the restart: %v", err)
	}
	ctx, cancel := context.WithTimeout(bg, 2*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatalf("Lock after the restart: %v", err)
	}
	unlock()
}

// TestConnectionLostWhileHolding: Redis dies while a holder is between its
// token request and its save: the save fails with a clear error (no panic,
// no hang), unlock returns promptly, and once Redis is back the lease is
// gone and the key can be locked again.
func TestConnectionLostWhileHolding(t *testing.T) {
	p := startPrivateRedis(t)
	c := newClient(p.addr)
	defer c.Close()
	lost := make(chan string, 1)
	s, err := redisstore.New(c, redisstore.Options{LockTTL: time.Second, LeaseLost: func(k string) { lost <- k }})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	const key = "bob"
	if err := s.Save(bg, key, token("0")); err != nil {
		t.Fatal(err)
	}
	unlock := lockWithin(t, s, key, 2*time.Second, "holder")
	seen, err := s.Load(bg, key)
	if err != nil {
		t.Fatal(err)
	}

	p.kill()
	time.Sleep(500 * time.Millisecond) // a renewal or two fail meanwhile
	var casErr error
	bounded(t, 5*time.Second, "CompareAndSwap while Redis is down", func() {
		ctx, cancel := context.WithTimeout(bg, time.Second)
		defer cancel()
		casErr = s.CompareAndSwap(ctx, key, seen, token("1"))
	})
	wantOutageErr(t, "CompareAndSwap", casErr)
	bounded(t, 3*time.Second, "unlock while Redis is down", unlock)

	p.start()
	rc := newClient(p.addr)
	defer rc.Close()
	if n, err := rc.Exists(bg, redisstore.LockKey(s, key)).Result(); err != nil || n != 0 {
		t.Errorf("lock key after the restart: EXISTS = %d, %v; want 0 (the lease is gone)", n, err)
	}
	// Same Store, same client: locking works again once the pool has
	// dialled anew.
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	var unlock2 func()
	for {
		unlock2, err = s.Lock(ctx, key)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Lock after the restart: %v", err)
	}
	unlock2()
	// LeaseLost reports only what Redis answered: nothing could be
	// learnt while it was down, and the holder unlocked before it came
	// back.
	if len(lost) != 0 {
		t.Errorf("LeaseLost(%q) called, want no call", <-lost)
	}
}
