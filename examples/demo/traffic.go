package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/bits"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// newEngine is the client configuration of the demo: what a program using
// the library writes, pointed at the local server. The in-process mode, each
// worker process and the restart check after the run all use it.
func newEngine(tokenURL string, store refresh.TokenStore, hooks refresh.Hooks) (*refresh.Engine, error) {
	return refresh.New(refresh.Config{
		OAuth2: &oauth2.Config{
			ClientID:     refreshtest.DefaultClientID,
			ClientSecret: refreshtest.DefaultClientSecret,
			// An explicit style is required: auto-detection retries a
			// rejected refresh with the other style, which presents the
			// same refresh token twice, i.e. a reuse.
			Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		Store: store,
		// ExpirySkew is left at its default (60s), which the engine clamps
		// to half the token's lifetime: tokens are renewed halfway through.
		Hooks: hooks,
	})
}

// driver sends API traffic through one engine and counts what its callers
// see. The in-process mode runs one; each worker process runs one.
type driver struct {
	client *http.Client
	tr     *http.Transport
	url    string

	requests  atomic.Int64
	failed    atomic.Int64
	refreshed atomic.Int64 // Hooks.Refreshed: token-endpoint calls this engine won
	reauths   atomic.Int64 // Hooks.ReauthRequired
	firstErr  atomic.Pointer[string]

	loops   sync.WaitGroup
	stopped atomic.Bool // the loops end before their deadline

	mu  sync.Mutex // guards lat
	lat histogram

	storm *stormGroup // prepared and not yet fired; nil otherwise
}

func newDriver(tokenURL, apiURL string, store refresh.TokenStore, concurrency int) (*driver, *refresh.Engine, error) {
	d := &driver{url: apiURL}
	eng, err := newEngine(tokenURL, store, refresh.Hooks{
		Refreshed:      func(string) { d.refreshed.Add(1) },
		RefreshFailed:  func(_ string, err error) { d.noteErr(err) },
		ReauthRequired: func(string, error) { d.reauths.Add(1) },
	})
	if err != nil {
		return nil, nil, err
	}
	// Keep-alive connections for every goroutine and the whole storm: with
	// the default two idle connections per host, almost every request
	// would open a new connection and a long run could exhaust ephemeral
	// ports.
	d.tr = http.DefaultTransport.(*http.Transport).Clone()
	d.tr.MaxIdleConnsPerHost = concurrency + stormSize
	d.client = eng.Client(&http.Client{Timeout: 10 * time.Second, Transport: d.tr})
	return d, eng, nil
}

func (d *driver) noteErr(err error) {
	s := err.Error() // library errors never hold a token
	d.firstErr.CompareAndSwap(nil, &s)
}

// get makes one API call and records its latency in h. Anything but a 200
// is a failure: the transport exists so that callers never see the 401s.
func (d *driver) get(h *histogram) bool {
	t0 := time.Now()
	resp, err := d.client.Get(d.url)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("API answered %s", resp.Status)
		}
	}
	h.add(time.Since(t0))
	d.requests.Add(1)
	if err != nil {
		d.failed.Add(1)
		d.noteErr(err)
		if errors.Is(err, refresh.ErrReauthRequired) {
			time.Sleep(10 * time.Millisecond) // a logged-out client would spin otherwise
		}
		return false
	}
	return true
}

// start sends requests from n goroutines in a loop until the deadline.
// Requests are not cancelled at the deadline: the last ones complete.
func (d *driver) start(n int, deadline time.Time) {
	for range n {
		d.loops.Go(func() {
			h := newHistogram()
			for time.Now().Before(deadline) && !d.stopped.Load() {
				d.get(h)
			}
			d.merge(h)
		})
	}
}

// stopNow makes the loops end after their current request.
func (d *driver) stopNow() { d.stopped.Store(true) }

// wait waits for the loops started by start.
func (d *driver) wait() { d.loops.Wait() }

func (d *driver) merge(h *histogram) {
	d.mu.Lock()
	d.lat.merge(h)
	d.mu.Unlock()
}

// stormGroup is n goroutines waiting at a barrier to send one request each.
type stormGroup struct {
	release chan struct{}
	done    sync.WaitGroup
	ok      atomic.Int64
}

// prepareStorm starts n goroutines that wait at a barrier, and returns when
// all of them are there.
func (d *driver) prepareStorm(n int) {
	g := &stormGroup{release: make(chan struct{})}
	var ready sync.WaitGroup
	ready.Add(n)
	for range n {
		g.done.Go(func() {
			h := newHistogram()
			ready.Done()
			<-g.release
			if d.get(h) {
				g.ok.Add(1)
			}
			d.merge(h)
		})
	}
	ready.Wait()
	d.storm = g
}

// fireStorm releases the goroutines of prepareStorm together, so that they
// all race to send the token the server has just revoked and to handle its
// 401, and returns how many got a 200.
func (d *driver) fireStorm() int {
	g := d.storm
	d.storm = nil
	close(g.release)
	g.done.Wait()
	return int(g.ok.Load())
}

// report is what a driver tells the parent when its traffic is over.
type report struct {
	Requests  int64      `json:"requests"`
	Failed    int64      `json:"failed"`
	Refreshed int64      `json:"refreshed"`
	Reauths   int64      `json:"reauths"`
	FirstErr  string     `json:"first_err,omitempty"`
	Latency   *histogram `json:"latency"`
}

func (d *driver) report() report {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := report{
		Requests:  d.requests.Load(),
		Failed:    d.failed.Load(),
		Refreshed: d.refreshed.Load(),
		Reauths:   d.reauths.Load(),
		Latency:   d.lat.clone(),
	}
	if p := d.firstErr.Load(); p != nil {
		r.FirstErr = *p
	}
	return r
}

// histogram counts latencies in buckets about 3 % wide, so that a worker
// process sends all of its latencies to the parent in a few hundred bytes
// and percentiles are computed the same way in both modes.
//
// A bucket key below 64 is a latency in whole microseconds; above, it is
// e<<6 | m for latencies of m<<e to (m+1)<<e - 1 microseconds, m in
// [32, 63].
type histogram struct {
	Buckets map[int]int64 `json:"buckets"`
	Max     time.Duration `json:"max"`
}

func newHistogram() *histogram { return &histogram{Buckets: map[int]int64{}} }

func (h *histogram) add(d time.Duration) {
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	us := uint64(max(d, 0) / time.Microsecond)
	k := int(us)
	if us >= 64 {
		e := bits.Len64(us) - 6
		k = e<<6 | int(us>>e)
	}
	h.Buckets[k]++
	h.Max = max(h.Max, d)
}

func (h *histogram) merge(o *histogram) {
	if o == nil {
		return
	}
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	for k, n := range o.Buckets {
		h.Buckets[k] += n
	}
	h.Max = max(h.Max, o.Max)
}

func (h *histogram) clone() *histogram {
	c := newHistogram()
	c.merge(h)
	return c
}

// percentile returns the latency below which a share p of the requests
// fall: the middle of its bucket, and the exact maximum for p = 1.
func (h *histogram) percentile(p float64) time.Duration {
	var n int64
	for _, c := range h.Buckets {
		n += c
	}
	if n == 0 {
		return 0
	}
	if p >= 1 {
		return h.Max
	}
	rank := max(1, int64(math.Ceil(p*float64(n))))
	for _, k := range slices.Sorted(maps.Keys(h.Buckets)) {
		if rank -= h.Buckets[k]; rank <= 0 {
			us := float64(k)
			if k >= 64 {
				e, m := k>>6, k&63
				us = float64(m<<e) + float64(int(1)<<e)/2
			}
			return min(time.Duration(us*float64(time.Microsecond)), h.Max)
		}
	}
	return h.Max
}
