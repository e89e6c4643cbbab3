//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

var _ refresh.Locker = (*filestore.Store)(nil)

// mustLock locks key of s within a few seconds, or fails the test.
func mustLock(t *testing.T, s *filestore.Store, key string) (unlock func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatalf("Lock(%q): %v", key, err)
	}
	return unlock
}

// TestLockExclusion checks that goroutines, through one Store or two over
// the same directory, never hold a key's lock together.
func TestLockExclusion(t *testing.T) {
	s1, dir := newStore(t)
	s2, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, rounds = 8, 20
	var holders, maxHolders, total atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		s := s1
		if g%2 == 1 {
			s = s2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				unlock, err := s.Lock(ctx, "k")
				cancel()
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				h := holders.Add(1)
				for {
					m := maxHolders.Load()
					if h <= m || maxHolders.CompareAndSwap(m, h) {
						break
					}
				}
				total.Add(1)
				time.Sleep(100 * time.Microsecond)
				holders.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("at most %d goroutines held the lock at once, want 1", m)
	}
	if n := total.Load(); n != goroutines*rounds {
		t.Errorf("the lock was taken %d times, want %d", n, goroutines*rounds)
	}
}

func TestLockDeadline(t *testing.T) {
	s, _ := newStore(t)
	unlock := mustLock(t, s, "k")
	defer unlock()

	// Lock waits for as long as its context lasts, and gives up when it
	// ends. Whether it gave up too early is told by the context, not by a
	// clock: the deadline was set before Lock was called, so on a loaded
	// machine less than the timeout may be left by then.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	unlock2, err := s.Lock(ctx, "k")
	if err == nil {
		unlock2()
		t.Fatal("Lock of a held key: got nil error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock of a held key: got %v, want context.DeadlineExceeded", err)
	}
	if ctx.Err() == nil {
		t.Errorf("Lock of a held key gave up before its context ended: %v", err)
	}

	// An already cancelled context fails at once, even for a free key.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := s.Lock(cctx, "free"); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestLockKeysIndependent(t *testing.T) {
	s, _ := newStore(t)
	unlock := mustLock(t, s, "a")
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	unlockB, err := s.Lock(ctx, "b")
	if err != nil {
		t.Fatalf("Lock(b) while a is held: %v", err)
	}
	unlockB()
}

func TestUnlockTwice(t *testing.T) {
	s, _ := newStore(t)
	unlock := mustLock(t, s, "k")
	unlock()
	unlock() // must not panic, nor release a lock taken since
	unlock2 := mustLock(t, s, "k")
	unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if u, err := s.Lock(ctx, "k"); err == nil {
		u()
		t.Error("a second call of an old unlock released a newer lock")
	}
	unlock2()
}

// TestWritesUnderLock follows the engine: with the refresh lock held, the
// same process loads, swaps and saves the key without waiting for itself.
func TestWritesUnderLock(t *testing.T) {
	s, _ := newStore(t)
	unlock := mustLock(t, s, "k")
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Load(ctx, "k"); !errors.Is(err, refresh.ErrNotFound) {
		t.Fatalf("Load: got %v, want ErrNotFound", err)
	}
	if err := s.CompareAndSwap(ctx, "k", nil, tok("1")); err != nil {
		t.Fatalf("CompareAndSwap under the lock: %v", err)
	}
	if err := s.Save(ctx, "k", tok("2")); err != nil {
		t.Fatalf("Save under the lock: %v", err)
	}
}

// Environment of the helper process.
const (
	envHelper  = "FILESTORE_TEST_HELPER" // "lock" or "cas"
	envDir     = "FILESTORE_TEST_DIR"
	envBarrier = "FILESTORE_TEST_BARRIER"
	envIndex   = "FILESTORE_TEST_INDEX"
)

// TestHelperProcess is not a test: it is the child process of the
// cross-process tests, which run this test binary again with envHelper set.
// It reports to its parent on stdout.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envHelper)
	if mode == "" {
		t.Skip("child process of the cross-process tests")
	}
	s, err := filestore.New(os.Getenv(envDir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch mode {
	case "lock":
		if _, err := s.Lock(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute) // until the parent kills us
		t.Fatal("not killed")
	case "cas":
		fmt.Println("ready")
		for {
			if _, err := os.Stat(os.Getenv(envBarrier)); err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("no barrier")
			}
			time.Sleep(100 * time.Microsecond)
		}
		err := s.CompareAndSwap(ctx, "k", tok("A"), tok("X"+os.Getenv(envIndex)))
		switch {
		case err == nil:
			fmt.Println("won")
		case errors.Is(err, refresh.ErrConflict):
			fmt.Println("lost")
		default:
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

// child is a helper process.
type child struct {
	cmd    *exec.Cmd
	lines  chan string // its stdout, line by line; closed at EOF
	stderr strings.Builder
}

// startChild starts a helper process in mode with the extra environment
// env, and kills it (if still running) when the test ends.
func startChild(t *testing.T, mode string, env ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")}
	c.cmd.Env = append(append(os.Environ(), envHelper+"="+mode), env...)
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.lines = make(chan string, 16)
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		for range c.lines { // drain, so that Wait does not race the reads
		}
		c.cmd.Wait()
	})
	return c
}

// await waits for the line want from c, skipping others, and fails the test
// if c ends or takes too long first.
func (c *child) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.cmd.Wait()
				t.Fatalf("child %d ended before printing %q: %v\n%s", c.cmd.Process.Pid, want, c.cmd.ProcessState, c.stderr.String())
			}
			if line == want {
				return
			}
		case <-timeout:
			t.Fatalf("child %d did not print %q", c.cmd.Process.Pid, want)
		}
	}
}

// TestLockCrossProcess checks that a lock held by another process excludes
// this one, and that the kernel releases it when that process is killed.
func TestLockCrossProcess(t *testing.T) {
	s, dir := newStore(t)
	c := startChild(t, "lock", envDir+"="+dir)
	c.await(t, "locked")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if unlock, err := s.Lock(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			unlock()
		}
		t.Fatalf("Lock while another process holds it: got %v, want context.DeadlineExceeded", err)
	}

	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, "k")
	if err != nil {
		t.Fatalf("Lock after the holder was killed: %v", err)
	}
	unlock()
	t.Logf("lock acquired %v after SIGKILL", time.Since(start))
}

// TestCompareAndSwapCrossProcess races CompareAndSwap(A, Xi) in several
// processes: exactly one must win.
func TestCompareAndSwapCrossProcess(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", tok("A")); err != nil {
		t.Fatal(err)
	}
	barrier := filepath.Join(t.TempDir(), "go")
	const n = 4
	children := make([]*child, n)
	for i := range children {
		children[i] = startChild(t, "cas", envDir+"="+dir, envBarrier+"="+barrier, fmt.Sprint(envIndex, "=", i))
	}
	for _, c := range children {
		c.await(t, "ready")
	}
	if err := os.WriteFile(barrier, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	winner, wins := -1, 0
	for i, c := range children {
		var result string
		for line := range c.lines {
			if line == "won" || line == "lost" {
				result = line
			}
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v\n%s", i, err, c.stderr.String())
		}
		switch result {
		case "won":
			winner = i
			wins++
		case "lost":
		default:
			t.Errorf("child %d reported no result\n%s", i, c.stderr.String())
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d processes won the CompareAndSwap race, want 1", wins, n)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, tok(fmt.Sprint("X", winner)))
}
