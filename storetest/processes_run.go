package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/refreshtest"
)

// pace is how long a worker's goroutine waits between its requests: the
// machine may have two CPUs and the race detector on.
const pace = 5 * time.Millisecond

// scene is one scenario, in the parent: its backend, its server and the
// token the store was seeded with.
type scene struct {
	t     *testing.T
	k     *kit
	ns    Namespace
	store refresh.Locker // the parent's
	srv   *server
	seed  *oauth2.Token
	n     int // workers started
}

// begin sets up a scenario: a new namespace and store, a server with
// opts, and the server's first token saved in the store (changed by
// adjust, if given).
func (k *kit) begin(t *testing.T, opts refreshtest.Options, adjust func(*oauth2.Token)) *scene {
	t.Helper()
	ns := newNamespace(t)
	s := k.newStore(t, ns)
	l, ok := s.(refresh.Locker)
	if !ok {
		t.Fatalf("the store (%T) is not a refresh.Locker: processes cannot share a rotating refresh token without a lock they all see", s)
	}
	r := &scene{t: t, k: k, ns: ns, store: l, srv: newServer(t, opts)}
	r.seed = r.srv.Token()
	if adjust != nil {
		adjust(r.seed)
	}
	if err := s.Save(r.ctx(defaultOptions.watchdog), refresh.DefaultKey, r.seed); err != nil {
		t.Fatalf("seeding the store: %v", err)
	}
	return r
}

// spec is the Spec of a new worker with g goroutines.
func (r *scene) spec(g int, pause bool) procs.Spec {
	r.n++
	return procs.Spec{
		ID: fmt.Sprintf("w%d", r.n), Name: r.ns.Name, Dir: r.ns.Dir,
		TokenURL: r.srv.TokenURL, ClientID: refreshtest.DefaultClientID, ClientSecret: refreshtest.DefaultClientSecret,
		Auth: refresh.AuthInBody, APIURL: r.srv.URL + "/api",
		Goroutines: g, Pace: pace, Duration: 5 * time.Minute, PauseSave: pause,
	}
}

// start starts n workers of g goroutines and waits until they are ready.
func (r *scene) start(n, g int, pause bool) []*procs.Proc {
	r.t.Helper()
	var specs []procs.Spec
	for range n {
		specs = append(specs, r.spec(g, pause))
	}
	return procs.StartAll(r.t, r.k.test, specs...)
}

// ctx returns a context that ends after d, or with the scenario; for
// calls made once.
func (r *scene) ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	r.t.Cleanup(cancel)
	return ctx
}

// current is the token the server issued last.
func (r *scene) current() *oauth2.Token { return r.srv.Current(r.seed.AccessToken) }

// awaitServed waits until the server has granted refreshes refreshes and
// each of the g goroutines of every one of ps has been served with the
// newest access token.
func (r *scene) awaitServed(what string, refreshes, g int, ps ...*procs.Proc) {
	r.t.Helper()
	procs.Await(r.t, what, func() bool {
		if bad, _ := r.srv.reuses(); len(bad) > 0 {
			r.t.Fatalf("%s: %s", what, bad[0])
		}
		// The count first: once it is reached, the newest token is the
		// one its last refresh issued (read the other way round, a
		// refresh in between would pass with the token it replaced).
		if r.srv.Stats().Refreshes < refreshes {
			return false
		}
		cur := r.current()
		if cur == nil {
			return false
		}
		fp := refresh.Fingerprint(cur.AccessToken)
		for _, p := range ps {
			if p.ServedWith(fp) < g {
				return false
			}
		}
		return true
	}, ps...)
}

// stored loads the key from the parent's store.
func (r *scene) stored() *oauth2.Token {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultOptions.watchdog)
	defer cancel()
	tok, err := r.store.Load(ctx, refresh.DefaultKey)
	if err != nil {
		r.t.Fatalf("Load: %v", err)
	}
	return tok
}

// expectStoredCurrent checks that the store holds the server's newest
// token.
func (r *scene) expectStoredCurrent() {
	r.t.Helper()
	got, want := r.stored(), r.current()
	if !refresh.SameToken(got, want) {
		r.t.Errorf("the store holds %s, want the server's newest token %s", fps(got), fps(want))
	}
}

// expectLockFree checks, once the workers have exited, that the key's
// lock can be taken: no exited or killed holder keeps it.
func (r *scene) expectLockFree() {
	r.t.Helper()
	unlock, err := r.store.Lock(r.ctx(procs.Watchdog), refresh.DefaultKey)
	if err != nil {
		r.t.Errorf("after the workers exited, Lock: %v (a holder that exited, or was killed, keeps the lock)", err)
		return
	}
	unlock()
}

// expectServedAll checks the reports of workers none of whose requests
// may fail, and returns the number of requests they made.
func (r *scene) expectServedAll(ps []*procs.Proc, reps []procs.Report) (requests int64) {
	r.t.Helper()
	for i, rep := range reps {
		requests += rep.Requests
		if rep.Failures != 0 || rep.Requests == 0 {
			r.t.Errorf("worker %s: %d of %d requests failed; first: %s", ps[i].ID, rep.Failures, rep.Requests, rep.FirstErr)
		}
		r.expectNoLeaseLost(ps[i], rep)
	}
	return requests
}

// expectNoLeaseLost checks that a worker that was never stopped reported
// no lost lease.
func (r *scene) expectNoLeaseLost(p *procs.Proc, rep procs.Report) {
	r.t.Helper()
	if n := leasesLost(rep); r.k.opts.ReportsLeaseLost && n != 0 {
		r.t.Errorf("worker %s, never stopped, reported %d lost leases", p.ID, n)
	}
}

// leasesLost counts the lost leases a worker reported: a store may find
// the loss while it renews the lease (Op "lock") or when it gives it back
// (Op "unlock"), as refresh.LeaseLocker does, whichever comes first.
func leasesLost(rep procs.Report) int64 {
	var n int64
	for ev, c := range rep.StoreEvents {
		if strings.HasSuffix(ev, ": lease lost") {
			n += c
		}
	}
	return n
}

// end makes the checks every scenario ends with, once its workers have
// exited: the lock is free, and every reuse is accounted for.
func (r *scene) end() {
	r.t.Helper()
	r.expectLockFree()
	r.srv.verdict(r.t)
}

// fps names a token by the fingerprints of its access and refresh tokens.
func fps(tok *oauth2.Token) string {
	if tok == nil {
		return "no token"
	}
	return fmt.Sprintf("{access %s, refresh %s}", refresh.Fingerprint(tok.AccessToken), refresh.Fingerprint(tok.RefreshToken))
}

// server is a refreshtest.Server that keeps every token event, to account
// for each reuse at the end of a scenario.
type server struct {
	*refreshtest.Server
	mu     sync.Mutex // protects the fields below
	events []refreshtest.TokenEvent
	lost   map[int]string // pair → how the answer of the refresh that spent it was lost
	hang   chan string    // armed by hangNext: gets the worker of the request it hangs
}

func newServer(t *testing.T, opts refreshtest.Options) *server {
	s := &server{lost: map[int]string{}}
	opts.Strict, opts.OneAccessTokenPerGrant, opts.OnTokenRequest = true, true, s.record
	s.Server = refreshtest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// hangNext makes the next token request hang without being handled, as
// if it never arrived, and returns a channel that gets its worker's ID.
func (s *server) hangNext() <-chan string {
	ch := make(chan string, 1)
	s.mu.Lock()
	s.hang = ch
	s.mu.Unlock()
	s.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHang})
	return ch
}

// record keeps ev, and lets hangNext know of the request it hangs.
func (s *server) record(ev refreshtest.TokenEvent) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	hang := s.hang
	if ev.Kind == refreshtest.TokenFault {
		s.hang = nil
	}
	s.mu.Unlock()
	if ev.Kind == refreshtest.TokenFault && hang != nil {
		s.SetFaults(refreshtest.Faults{}) // the next requests pass
		hang <- ev.Header.Get(procs.WorkerHeader)
	}
}

// lose records that the answer to worker's last granted refresh will never
// be saved, because the test ends the worker before it saves: why says
// how.
func (s *server) lose(worker, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.events) - 1; i >= 0; i-- {
		if ev := s.events[i]; ev.Kind == refreshtest.TokenGranted && ev.Header.Get(procs.WorkerHeader) == worker {
			s.lost[ev.Pair] = why
			return
		}
	}
}

// verdict accounts for every reuse the server saw: a reuse of a refresh
// token whose successor's answer was lost is expected, and logged; any
// other means two processes spent one refresh token, and fails t.
func (s *server) verdict(t *testing.T) {
	t.Helper()
	unexplained, expected := s.reuses()
	for _, m := range unexplained {
		t.Error(m)
	}
	for pair, n := range expected {
		t.Logf("expected loss, which no store can prevent: %d reuse(s) of the refresh token of pair %d, whose successor was lost (%s)", n, pair, s.why(pair))
	}
}

// reuses sorts the reuses so far: the messages of those no loss explains,
// and the count of the others by pair.
func (s *server) reuses() (unexplained []string, expected map[int]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	expected = map[int]int{}
	for _, ev := range s.events {
		if ev.Kind != refreshtest.TokenReuse {
			continue
		}
		if _, ok := s.lost[ev.Pair]; ok {
			expected[ev.Pair]++
			continue
		}
		unexplained = append(unexplained, fmt.Sprintf("worker %s presented the spent refresh token of pair %d (revoking the family: %v), "+
			"and no kill or freeze explains it: two processes spent one refresh token, which the store's lock must prevent",
			ev.Header.Get(procs.WorkerHeader), ev.Pair, ev.Revoked))
	}
	return unexplained, expected
}

func (s *server) why(pair int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost[pair]
}
