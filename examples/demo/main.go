// Command demo puts github.com/oauthkit/refresh under load against a strict,
// in-process OAuth2 server and checks that no request ever fails while access
// tokens expire every couple of seconds, get revoked, and a storm of 401s
// hits at once:
//
//	go run ./examples/demo [-duration 15s] [-concurrency 32] [-lifetime 2s] [-quiet]
//
// The server rotates refresh tokens and revokes the whole family if one is
// used twice, so a client that refreshes from two goroutines at once, or
// retries a refresh, gets logged out. The demo exits with status 1 if any
// invariant breaks.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// stormSize is how many requests are released at the same instant right
// after a revocation: all of them hold the revoked token, and all of them
// must be served by a single refresh.
const stormSize = 200

type options struct {
	duration    time.Duration
	concurrency int
	lifetime    time.Duration
	quiet       bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "how long to send traffic")
	flag.IntVar(&o.concurrency, "concurrency", 32, "goroutines sending requests in a loop")
	flag.DurationVar(&o.lifetime, "lifetime", 2*time.Second, "access-token lifetime, in whole seconds (expires_in is an integer)")
	flag.BoolVar(&o.quiet, "quiet", false, "do not show progress")
	flag.Parse()
	if o.duration <= 0 || o.concurrency < 1 || o.lifetime < time.Second || o.lifetime%time.Second != 0 {
		fmt.Fprintln(os.Stderr, "demo: need -duration > 0, -concurrency >= 1 and a -lifetime of whole seconds, at least 1s")
		os.Exit(2)
	}
	os.Exit(run(o))
}

// stats are the client's side of the story; the server keeps its own.
type stats struct {
	requests  atomic.Int64
	failed    atomic.Int64
	refreshed atomic.Int64 // Hooks.Refreshed
	reauths   atomic.Int64 // Hooks.ReauthRequired
	firstErr  atomic.Value // string: the first failure, to explain a red result
}

func (st *stats) fail(err error) {
	st.failed.Add(1)
	st.firstErr.CompareAndSwap(nil, err.Error()) // library errors never hold a token
}

// get makes one API call and reports its latency and whether it succeeded.
// Anything but a 200 is a failure: the transport exists so callers never
// see the 401s.
func (st *stats) get(c *http.Client, url string) (time.Duration, bool) {
	t0 := time.Now()
	resp, err := c.Get(url)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("API answered %s", resp.Status)
		}
	}
	d := time.Since(t0)
	st.requests.Add(1)
	if err != nil {
		st.fail(err)
	}
	return d, err == nil
}

func run(o options) int {
	srv := newAuthServer(o.lifetime)
	defer srv.close()

	var st stats
	store := new(refresh.MemoryStore)
	eng, err := refresh.New(refresh.Config{
		OAuth2: &oauth2.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			// An explicit style is required: auto-detection retries a
			// rejected refresh with the other style, which presents the
			// same refresh token twice, i.e. a reuse.
			Endpoint: oauth2.Endpoint{TokenURL: srv.tokenURL(), AuthStyle: oauth2.AuthStyleInParams},
		},
		Store: store,
		// ExpirySkew is left at its default (60s), which the engine clamps
		// to half the token's lifetime: tokens are renewed halfway through.
		Hooks: refresh.Hooks{
			Refreshed:      func(string) { st.refreshed.Add(1) },
			RefreshFailed:  func(_ string, err error) { st.firstErr.CompareAndSwap(nil, err.Error()) },
			ReauthRequired: func(string, error) { st.reauths.Add(1) },
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if err := eng.SetToken(context.Background(), refresh.DefaultKey, srv.login()); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	// Keep-alive connections for every worker and the whole storm: with the
	// default two idle connections per host, almost every request would
	// open a new connection and a long run could exhaust ephemeral ports.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = o.concurrency + stormSize
	client := eng.Client(&http.Client{Timeout: 10 * time.Second, Transport: tr})
	defer tr.CloseIdleConnections()

	con := newConsole(o.quiet)
	con.println(fmt.Sprintf("demo: %d workers for %v against %s, access tokens live %v",
		o.concurrency, o.duration, srv.apiURL(), o.lifetime))

	start := time.Now()
	deadline := start.Add(o.duration)
	lat := make([][]time.Duration, o.concurrency+1) // one slice per goroutine: no lock on the hot path
	var workers sync.WaitGroup
	for i := range o.concurrency {
		workers.Go(func() {
			for time.Now().Before(deadline) {
				d, _ := st.get(client, srv.apiURL())
				lat[i] = append(lat[i], d)
			}
		})
	}
	stopProgress := con.progress(func() string {
		return fmt.Sprintf("%5.1fs  requests %8d  refreshes %3d  failures %d",
			time.Since(start).Seconds(), st.requests.Load(), srv.refreshCalls.Load(), st.failed.Load())
	})

	// A third of the way in, revoke the access token once: the 401s that
	// follow must all be absorbed by a single refresh.
	time.Sleep(time.Until(start.Add(o.duration / 3)))
	srv.revokeAccess()
	con.println(fmt.Sprintf("%5.1fs  revoked the access token", time.Since(start).Seconds()))

	// Two thirds of the way in, the 401 storm.
	time.Sleep(time.Until(start.Add(2 * o.duration / 3)))
	stormLat, stormOK, stormRefreshes := storm(&st, srv, client)
	lat[o.concurrency] = stormLat
	con.println(fmt.Sprintf("%5.1fs  401 storm: revoked the access token and sent %d requests at once: %d OK, %d refresh(es)",
		time.Since(start).Seconds(), stormSize, stormOK, stormRefreshes))

	workers.Wait()
	elapsed := time.Since(start)
	stopProgress()
	return report(o, elapsed, &st, srv, store, slices.Concat(lat...))
}

// storm revokes the access token while stormSize goroutines wait at a
// barrier, then releases them together, so that they all race to send the
// revoked token and to handle its 401.
func storm(st *stats, srv *authServer, client *http.Client) (lat []time.Duration, ok int, refreshes int64) {
	lat = make([]time.Duration, stormSize)
	oks := make([]bool, stormSize)
	var ready, done sync.WaitGroup
	release := make(chan struct{})
	before := srv.refreshCalls.Load()
	ready.Add(stormSize)
	for i := range stormSize {
		done.Go(func() {
			ready.Done()
			<-release
			lat[i], oks[i] = st.get(client, srv.apiURL())
		})
	}
	ready.Wait()
	srv.revokeAccess()
	close(release)
	done.Wait()
	for _, b := range oks {
		if b {
			ok++
		}
	}
	return lat, ok, srv.refreshCalls.Load() - before
}

// report prints the summary and checks the invariants; it returns the exit
// status.
func report(o options, elapsed time.Duration, st *stats, srv *authServer, store *refresh.MemoryStore, lat []time.Duration) int {
	revocations := srv.revocations.Load()
	// Tokens are renewed halfway through their lifetime, so at most one
	// proactive refresh per half lifetime, one per revocation, and slack
	// for the first and the last.
	bound := int64(o.duration/(o.lifetime/2)) + revocations + 2
	calls, reuses := srv.refreshCalls.Load(), srv.reuses.Load()

	var stored string
	if tok, err := store.Load(context.Background(), refresh.DefaultKey); err == nil {
		stored = refresh.Fingerprint(tok.RefreshToken)
	}

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}

	fmt.Printf("\nSummary after %v (%d workers, access tokens live %v, %d revocations incl. the storm)\n",
		elapsed.Round(time.Millisecond), o.concurrency, o.lifetime, revocations)
	row := func(name string, v any, note string) { fmt.Printf("  %-20s %10v   %s\n", name, v, note) }
	row("requests", st.requests.Load(), fmt.Sprintf("(%.0f/s)", float64(st.requests.Load())/elapsed.Seconds()))
	row("401s absorbed", srv.served401.Load(), "401s the API served; each was retried with a fresh token")
	row("refresh calls", calls, fmt.Sprintf("seen by the token endpoint; bound %v/%v + %d + 2 = %d",
		o.duration, o.lifetime/2, revocations, bound))
	row("rotations", srv.rotations.Load(), "refresh tokens exchanged for a new pair")
	row("reuses detected", reuses, "must be 0")
	row("failed requests", st.failed.Load(), "must be 0")
	row("re-authentications", st.reauths.Load(), "must be 0")
	fmt.Printf("  %-20s p50 %v  p90 %v  p99 %v  max %v\n", "latency",
		round(pct(0.50)), round(pct(0.90)), round(pct(0.99)), round(pct(1)))
	row("stored refresh token", stored, "fingerprint; the server's live one is "+srv.liveRefresh())

	var broken []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			broken = append(broken, fmt.Sprintf(format, args...))
		}
	}
	check(reuses == 0, "the server detected %d refresh-token reuse(s)", reuses)
	check(st.failed.Load() == 0, "%d request(s) failed", st.failed.Load())
	check(st.reauths.Load() == 0, "the engine asked for re-authentication %d time(s)", st.reauths.Load())
	check(calls <= bound, "%d refresh calls, more than the bound of %d", calls, bound)
	check(calls == srv.rotations.Load(), "%d of %d refresh calls were rejected", calls-srv.rotations.Load(), calls)
	check(stored != "" && stored == srv.liveRefresh(), "the store does not hold the live refresh token")

	if len(broken) == 0 {
		fmt.Println("OK: every invariant held")
		return 0
	}
	fmt.Println("FAILED:")
	for _, b := range broken {
		fmt.Println("  - " + b)
	}
	if e, _ := st.firstErr.Load().(string); e != "" {
		fmt.Println("  first error:", e)
	}
	return 1
}

// round keeps latencies readable: three significant digits or so.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// console owns stdout while traffic runs: it keeps one live progress line
// at the bottom of a terminal and prints event lines above it.
type console struct {
	mu    sync.Mutex
	tty   bool
	quiet bool
	width int // length of the live line currently on screen; 0 if none
}

func newConsole(quiet bool) *console {
	fi, err := os.Stdout.Stat()
	return &console{quiet: quiet, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

// println prints a line, first wiping the live line; it comes back on the
// next tick.
func (c *console) println(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.width > 0 {
		fmt.Print("\r" + strings.Repeat(" ", c.width) + "\r")
		c.width = 0
	}
	fmt.Println(s)
}

// progress shows line() every 250ms in place on a terminal (fast enough to
// look live, slow enough not to flicker), or as a plain line every 5s when
// stdout is a pipe or file, so logs stay readable. It returns a function
// that stops it and leaves the last value on screen.
func (c *console) progress(line func() string) (stop func()) {
	if c.quiet {
		return func() {}
	}
	every := 5 * time.Second
	if c.tty {
		every = 250 * time.Millisecond
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.show(line())
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
		if c.tty {
			c.show(line())
			c.mu.Lock()
			fmt.Println()
			c.width = 0
			c.mu.Unlock()
		}
	}
}

func (c *console) show(s string) {
	if !c.tty {
		c.println(s)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Pad over the previous line in case this one is shorter.
	fmt.Print("\r" + s + strings.Repeat(" ", max(0, c.width-len(s))))
	c.width = max(c.width, len(s))
}
