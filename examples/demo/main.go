// Command demo puts github.com/oauthkit/refresh under load against a strict,
// in-process OAuth2 server and checks that no request ever fails while access
// tokens expire every couple of seconds, get revoked, and a storm of 401s
// hits at once, in several processes that share one token file:
//
//	go run ./examples/demo [-duration 15s] [-concurrency 32] [-workers 3] [-lifetime 2s] [-quiet]
//
// The server is refreshtest's, with its strictest options: refresh tokens
// are single-use, presenting one twice revokes the whole token family, and
// only the newest access token of the grant is accepted, so every refresh
// instantly invalidates the token all other goroutines and processes are
// sending. A client that refreshes from two goroutines or two processes at
// once, or retries a refresh, gets logged out.
//
// With -workers N (N >= 2; 3 by default) the demo starts N copies of itself
// as worker processes, each with -concurrency goroutines and its own engine,
// all sharing a file store in a temporary directory (removed at exit); this
// process runs the server, the revocations and the summary. With -workers 0
// or 1 the traffic comes from this process, with a memory store.
//
// The demo exits with status 1 if any invariant breaks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/refreshtest"
)

// stormSize is how many requests are released at the same instant right
// after a revocation (split among the workers): all of them hold the revoked
// token, and all of them must be served by a single refresh.
const stormSize = 200

type options struct {
	duration    time.Duration
	concurrency int
	workers     int
	lifetime    time.Duration
	quiet       bool
}

func main() {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(workerMain(spec)) // this is a worker process started by the demo
	}
	var o options
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "how long to send traffic")
	flag.IntVar(&o.concurrency, "concurrency", 32, "goroutines sending requests in a loop, in each process")
	flag.IntVar(&o.workers, "workers", 3, "worker processes sharing a file store; 0 or 1: all traffic from this process, memory store")
	flag.DurationVar(&o.lifetime, "lifetime", 2*time.Second, "access-token lifetime, in whole seconds (expires_in is an integer)")
	flag.BoolVar(&o.quiet, "quiet", false, "do not show progress")
	flag.Parse()
	if flag.NArg() > 0 || o.duration <= 0 || o.concurrency < 1 || o.workers < 0 ||
		o.lifetime < time.Second || o.lifetime%time.Second != 0 {
		fmt.Fprintln(os.Stderr, "demo: need -duration > 0, -concurrency >= 1, -workers >= 0 and a -lifetime of whole seconds, at least 1s")
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	// The authorization server and the API it protects, on two loopback
	// listeners. The zero Options are already strict: refresh tokens
	// rotate on every refresh and a reuse revokes the grant (RFC 9700
	// §4.14.2), and the client must send its credentials in the body.
	srv := refreshtest.NewServer(refreshtest.Options{
		Lifetime:               o.lifetime,
		OneAccessTokenPerGrant: true, // as gw2.me: each refresh kills the previous access token
	})
	defer srv.Close()
	apiURL := srv.URL + "/v1/me"

	var (
		fl    fleet
		store refresh.TokenStore // where the token lives, for the store check
		setup string
	)
	if o.workers >= 2 {
		dir, err := os.MkdirTemp("", "refresh-demo-")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(dir)
		fs, err := filestore.New(dir)
		if err != nil {
			return fail(err)
		}
		// The login: a real program gets this token from its
		// authorization-code flow. The workers find it in the store.
		if err := fs.Save(ctx, refresh.DefaultKey, srv.Token()); err != nil {
			return fail(err)
		}
		ps, err := startWorkers(o.workers, workerSpec{Dir: dir, TokenURL: srv.TokenURL, APIURL: apiURL, Concurrency: o.concurrency})
		if err != nil {
			return fail(err)
		}
		defer ps.kill() // after an error; a no-op once they have exited
		fl, store = ps, fs
		setup = fmt.Sprintf("%d worker processes × %d goroutines sharing a file store", o.workers, o.concurrency)
	} else {
		ms := new(refresh.MemoryStore)
		d, eng, err := newDriver(srv.TokenURL, apiURL, ms, o.concurrency)
		if err != nil {
			return fail(err)
		}
		// The login: a real program gets this token from its
		// authorization-code flow.
		if err := eng.SetToken(ctx, refresh.DefaultKey, srv.Token()); err != nil {
			return fail(err)
		}
		fl, store = &local{d: d, concurrency: o.concurrency}, ms
		setup = fmt.Sprintf("%d goroutines in one process, memory store", o.concurrency)
	}

	con := newConsole(o.quiet)
	con.println(fmt.Sprintf("demo: %s, for %v against %s; access tokens live %v",
		setup, o.duration, apiURL, o.lifetime))

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	rot := watchRotations(watchCtx, srv)
	start := time.Now()
	if err := fl.start(start.Add(o.duration)); err != nil {
		return fail(err)
	}
	stopProgress := con.progress(func() string {
		req, failed := fl.progress()
		return fmt.Sprintf("%5.1fs  requests %8d  refreshes %3d  failures %d",
			time.Since(start).Seconds(), req, srv.Stats().TokenRequests, failed)
	})
	at := func() string { return fmt.Sprintf("%5.1fs", time.Since(start).Seconds()) }

	var (
		revocations   int
		storm         stormResult
		interrupted   bool
		stormFinished bool
	)
	// A third of the way in or so (at a calm moment, see calmMoment),
	// revoke the access token once: the 401s that follow must all be
	// absorbed by a single refresh.
	if calmMoment(ctx, rot, start.Add(o.duration/4), start.Add(o.duration/2), o.lifetime) {
		srv.RevokeAccessTokens()
		revocations++
		con.println(at() + "  revoked the access token")

		// Later, the 401 storm (at a calm moment too). Its requests are
		// made ready half way through, which takes a moment.
		if sleepUntil(ctx, start.Add(o.duration/2)) {
			var err error
			if storm, err = runStorm(srv, fl, func() {
				calmMoment(ctx, rot, start.Add(3*o.duration/5), start.Add(5*o.duration/6), o.lifetime) // on Ctrl-C: at once
			}); err != nil {
				stopProgress()
				fl.stop()
				fl.finish()
				return fail(err)
			}
			revocations++
			stormFinished = true
			con.println(fmt.Sprintf("%s  401 storm: revoked the access token and sent %d requests at once: %d OK, %d refresh call(s)",
				at(), storm.sent, storm.ok, storm.refreshes))
		}
	}
	interrupted = ctx.Err() != nil

	// Wait for the traffic to end; Ctrl-C ends it early.
	type result struct {
		reps []report
		err  error
	}
	done := make(chan result, 1)
	go func() {
		reps, err := fl.finish()
		done <- result{reps, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		fl.stop()
		res, interrupted = <-done, true
	}
	elapsed := time.Since(start)
	stopProgress()
	if res.err != nil {
		return fail(res.err)
	}
	if interrupted {
		fmt.Println("demo: interrupted")
		return 130
	}
	st := srv.Stats() // the counters of the traffic, before the store check
	storeErr := storeCheck(srv, store)
	if !stormFinished {
		return fail(fmt.Errorf("the storm did not run"))
	}
	return summarize(o, setup, elapsed, st, res.reps, storm, revocations, storeErr)
}

// stormResult is what the 401 storm did.
type stormResult struct {
	sent, ok  int
	refreshes int // token requests the server saw during the storm
}

// runStorm makes about stormSize requests wait at a barrier, revokes the
// access token, then releases them together, so that they all race to send
// the revoked token and to handle its 401.
func runStorm(srv *refreshtest.Server, fl fleet, calm func()) (stormResult, error) {
	var r stormResult
	var err error
	if r.sent, err = fl.prepareStorm(stormSize); err != nil {
		return r, err
	}
	calm()
	before := srv.Stats().TokenRequests
	srv.RevokeAccessTokens()
	if r.ok, err = fl.fireStorm(); err != nil {
		return r, err
	}
	r.refreshes = srv.Stats().TokenRequests - before
	return r, nil
}

// storeCheck checks that the store holds the live refresh token, the one a
// restarted program would start from: it sends the stored refresh token to
// the token endpoint once. The server grants that only if it is live: a
// spent one would be a reuse (and revoke the grant), an unknown one refused.
func storeCheck(srv *refreshtest.Server, store refresh.TokenStore) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := store.Load(ctx, refresh.DefaultKey)
	if err != nil {
		return err
	}
	before := srv.Stats()
	ep := &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
		ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody}
	if _, err := ep.Refresh(ctx, tok); err != nil {
		return err
	}
	after := srv.Stats()
	if after.Rotations != before.Rotations+1 || after.Reuses != before.Reuses {
		return fmt.Errorf("the server saw %d rotation(s) and %d reuse(s)",
			after.Rotations-before.Rotations, after.Reuses-before.Reuses)
	}
	return nil
}

// summarize prints the summary and checks the invariants; it returns the
// exit status.
func summarize(o options, setup string, elapsed time.Duration, st refreshtest.Stats, reps []report, storm stormResult, revocations int, storeErr error) int {
	var total report
	lat := newHistogram()
	var perRequests, perRefreshes []string
	for _, r := range reps {
		total.Requests += r.Requests
		total.Failed += r.Failed
		total.Refreshed += r.Refreshed
		total.Reauths += r.Reauths
		if total.FirstErr == "" {
			total.FirstErr = r.FirstErr
		}
		lat.merge(r.Latency)
		perRequests = append(perRequests, strconv.FormatInt(r.Requests, 10))
		perRefreshes = append(perRefreshes, strconv.FormatInt(r.Refreshed, 10))
	}
	multi := len(reps) > 1
	// Tokens are renewed halfway through their lifetime, so at most one
	// proactive refresh per half lifetime, one per revocation, and slack
	// for the first and the last.
	bound := int(o.duration/(o.lifetime/2)) + revocations + 2

	fmt.Printf("\nSummary after %v (%s, access tokens live %v, %d revocations incl. the storm)\n",
		elapsed.Round(time.Millisecond), setup, o.lifetime, revocations)
	row := func(name string, v any, note string) { fmt.Printf("  %-20s %10v   %s\n", name, v, note) }
	note := fmt.Sprintf("(%.0f/s)", float64(total.Requests)/elapsed.Seconds())
	if multi {
		note += "; by worker: " + strings.Join(perRequests, ", ")
	}
	row("requests", total.Requests, note)
	row("401s absorbed", st.Served401, "401s the API served; each was retried with a fresh token")
	row("refresh calls", st.TokenRequests, fmt.Sprintf("seen by the token endpoint; bound %v/%v + %d + 2 = %d",
		o.duration, o.lifetime/2, revocations, bound))
	row("rotations", st.Rotations, "refresh tokens exchanged for a new pair")
	if multi {
		row("workers", len(reps), "processes sharing one file store; refreshes made by each: "+strings.Join(perRefreshes, ", ")+
			" (the others adopted the new token from the store)")
	}
	row("reuses detected", st.Reuses, "must be 0")
	row("failed requests", total.Failed, "must be 0")
	row("re-authentications", total.Reauths, "must be 0")
	row("401 storm", fmt.Sprintf("%d/%d", storm.ok, storm.sent), fmt.Sprintf("requests sent at once with a revoked token that got a 200; %d refresh call(s) meanwhile", storm.refreshes))
	fmt.Printf("  %-20s p50 %v  p90 %v  p99 %v  max %v\n", "latency",
		round(lat.percentile(0.50)), round(lat.percentile(0.90)), round(lat.percentile(0.99)), round(lat.percentile(1)))
	if storeErr == nil {
		row("stored token", "live", "the token endpoint accepted the stored refresh token after the run (what a restart would send)")
	} else {
		row("stored token", "NOT LIVE", storeErr.Error())
	}

	var broken []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			broken = append(broken, fmt.Sprintf(format, args...))
		}
	}
	check(total.Requests > 0, "no request was sent")
	check(st.Reuses == 0, "the server detected %d refresh-token reuse(s)", st.Reuses)
	check(total.Failed == 0, "%d request(s) failed", total.Failed)
	check(total.Reauths == 0, "the engines asked for re-authentication %d time(s)", total.Reauths)
	check(storm.ok == storm.sent, "%d of the %d storm requests failed", storm.sent-storm.ok, storm.sent)
	check(st.TokenRequests <= bound, "%d refresh calls, more than the bound of %d", st.TokenRequests, bound)
	check(st.TokenRequests == st.Rotations, "%d of %d refresh calls were not granted", st.TokenRequests-st.Rotations, st.TokenRequests)
	check(int(total.Refreshed) == st.Rotations, "the engines reported %d refreshes, the server granted %d", total.Refreshed, st.Rotations)
	check(storeErr == nil, "the store does not hold the live refresh token: %v", storeErr)

	if len(broken) == 0 {
		fmt.Println("OK: every invariant held")
		return 0
	}
	fmt.Println("FAILED:")
	for _, b := range broken {
		fmt.Println("  - " + b)
	}
	if total.FirstErr != "" {
		fmt.Println("  first error:", total.FirstErr)
	}
	if lat.Max >= o.lifetime/2 {
		fmt.Printf(`  note: some requests took longer than half a token lifetime (max %v, tokens rotate every %v).
  With one access token per grant, a token can then be replaced twice during one request, and
  the library retries a request once only. The machine is overloaded for these settings: try
  fewer -workers or -concurrency, or a longer -lifetime.
`, round(lat.Max), o.lifetime/2)
	}
	return 1
}

// rotationWatch knows when the server last rotated the refresh token: it
// polls the server's counters.
type rotationWatch struct{ last atomic.Int64 } // Unix nanoseconds

func watchRotations(ctx context.Context, srv *refreshtest.Server) *rotationWatch {
	w := new(rotationWatch)
	w.last.Store(time.Now().UnixNano()) // the login
	go func() {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		n := srv.Stats().Rotations
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if r := srv.Stats().Rotations; r != n {
					n = r
					w.last.Store(time.Now().UnixNano())
				}
			}
		}
	}()
	return w
}

// calmMoment waits until earliest, then for a calm moment between two token
// rotations, but not beyond latest. Tokens are refreshed halfway through
// their lifetime, so rotations come every half lifetime; the calm moment is
// late in that interval, from 3/8 to 7/16 of a lifetime after the latest
// rotation, when the requests sent before it have long come back and every
// process has adopted the newest token. It reports false if ctx ended
// first.
//
// Why: with one access token per grant, a rotation makes the requests in
// flight with the previous token meet a 401, and the library retries each
// with the new token. A revocation that lands before such a retry gives it
// a second 401, and the library retries a request once only: it returns
// that 401 to the caller. Two independent invalidations of one request are
// not what this demo is about, and under heavy load (requests that take
// hundreds of milliseconds) they would make it fail at random.
func calmMoment(ctx context.Context, w *rotationWatch, earliest, latest time.Time, lifetime time.Duration) bool {
	if !sleepUntil(ctx, earliest) {
		return false
	}
	for time.Now().Before(latest) {
		since := time.Since(time.Unix(0, w.last.Load()))
		if since >= 3*lifetime/8 && since <= 7*lifetime/16 || since > lifetime {
			return true
		}
		if !sleepUntil(ctx, time.Now().Add(2*time.Millisecond)) {
			return false
		}
	}
	return true
}

// sleepUntil sleeps until t; it reports false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
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
// that stops it and leaves the last value on screen; calling it again does
// nothing.
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
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-finished
			if c.tty {
				c.show(line())
				c.mu.Lock()
				fmt.Println()
				c.width = 0
				c.mu.Unlock()
			}
		})
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
