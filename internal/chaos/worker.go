package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
)

// The worker protocol. The orchestrator starts this program with workerEnv
// set to a JSON workerSpec. On stdin it may send
//
//	drain     stop the traffic and the store faults; wait for EOF
//
// and then EOF, which means: report and exit (the orchestrator may also be
// gone). On stdout the worker sends one line per event, times in Unix
// nanoseconds, pairs as "<grant> <n>":
//
//	ready
//	P <progress JSON>      every 500 ms, and a last one with "final": true
//	L <grant> <n> <time>   a Load of the real store returned this token
//	S <grant> <n> <time>   a Save or CompareAndSwap of it committed
//	K <time>               the real store's Lock returned the lock
//	U <time>               its unlock was called
//	E <time> <message>     the engine logged a warning or an error
//	Q <time>               redisstore reported a lease lost while held
//
// Store events are seen below the fault injection: a save that committed
// and then reported an injected error is an S line.
const workerEnv = "REFRESH_CHAOS_WORKER"

// workerHeader names the worker on its token requests, for the server's
// events.
const workerHeader = "Chaos-Worker"

// workerSpec is all a worker needs. It holds no token: the worker finds
// the login in the shared store.
type workerSpec struct {
	ID         string           `json:"id"` // "<slot>.<incarnation>"
	Store      storeSpec        `json:"store"`
	TokenURL   string           `json:"token_url"`
	APIURL     string           `json:"api_url"`
	Goroutines int              `json:"goroutines"`
	Pace       time.Duration    `json:"pace"`
	Faults     storetest.Random `json:"faults"`
}

// progress is what a worker has done so far.
type progress struct {
	OK       int64                `json:"ok"`
	Failed   map[string]int64     `json:"failed"`
	FirstErr map[string]string    `json:"first_err"` // the first message of each failure kind, redacted
	Faults   storetest.FaultStats `json:"faults"`    // store faults injected
	Log      map[string]int64     `json:"log"`       // engine log records by message
	LastOK   int64                `json:"last_ok"`   // Unix nanoseconds; 0: none yet
	Oldest   int64                `json:"oldest_ms"` // age of the oldest request in flight
	Final    bool                 `json:"final"`
}

// out serializes the worker's stdout lines.
type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) line(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format+"\n", args...)
}

// observed reports the tokens the real store holds as it reads and writes
// them. It sits below the fault injection.
type observed struct {
	sharedStore
	out  *out
	held atomic.Int32 // locks held now
}

// idle waits until this process has held no lock for a moment, or limit
// passed: no refresh is between the token endpoint and its save.
func (s *observed) idle(limit time.Duration) {
	deadline := time.Now().Add(limit)
	quiet := 0
	for quiet < 10 && time.Now().Before(deadline) {
		if s.held.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *observed) report(kind string, tok *oauth2.Token) {
	if p, ok := parsePair(tok.RefreshToken); ok {
		s.out.line("%s %d %d %d", kind, p.grant, p.n, time.Now().UnixNano())
	}
}

func (s *observed) Lock(ctx context.Context, key string) (func(), error) {
	unlock, err := s.sharedStore.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	s.held.Add(1)
	s.out.line("K %d", time.Now().UnixNano())
	return func() {
		s.out.line("U %d", time.Now().UnixNano())
		unlock()
		s.held.Add(-1)
	}, nil
}

func (s *observed) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	tok, err := s.sharedStore.Load(ctx, key)
	if err == nil && tok != nil {
		s.report("L", tok)
	}
	return tok, err
}

func (s *observed) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	err := s.sharedStore.Save(ctx, key, tok)
	if err == nil {
		s.report("S", tok)
	}
	return err
}

func (s *observed) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	err := s.sharedStore.CompareAndSwap(ctx, key, old, new)
	if err == nil {
		s.report("S", new)
	}
	return err
}

// logTap counts the engine's log records and forwards its warnings and
// errors as E lines. Records carry at most token fingerprints; only their
// messages are kept.
type logTap struct {
	out *out
	mu  sync.Mutex
	n   map[string]int64
}

func (t *logTap) Enabled(context.Context, slog.Level) bool { return true }
func (t *logTap) WithAttrs([]slog.Attr) slog.Handler       { return t }
func (t *logTap) WithGroup(string) slog.Handler            { return t }

func (t *logTap) Handle(_ context.Context, r slog.Record) error {
	t.mu.Lock()
	t.n[r.Message]++
	t.mu.Unlock()
	// "refresh failed" repeats on every failed flight; its count says
	// enough.
	if r.Level >= slog.LevelWarn && r.Message != "refresh: refresh failed" {
		t.out.line("E %d %s", time.Now().UnixNano(), r.Message)
	}
	return nil
}

func (t *logTap) counts() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := make(map[string]int64, len(t.n))
	for k, v := range t.n {
		c[k] = v
	}
	return c
}

// workerMain is main in a worker process. It recovers nothing: a panic
// that escapes the engine ends the process, and the orchestrator counts a
// crash.
func workerMain(specJSON string) int {
	// Ctrl-C belongs to the orchestrator, which stops the workers itself.
	signal.Ignore(os.Interrupt)
	var sp workerSpec
	if err := json.Unmarshal([]byte(specJSON), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "chaos worker: bad", workerEnv+":", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "chaos worker %s: %v\n", sp.ID, redact(err.Error()))
		return 3
	}
	o := &out{w: os.Stdout}

	openCtx, cancelOpen := context.WithTimeout(context.Background(), 20*time.Second)
	real, closeStore, err := sp.Store.open(openCtx, func() { o.line("Q %d", time.Now().UnixNano()) })
	cancelOpen()
	if err != nil {
		return fail(err)
	}
	defer closeStore()
	var faults storetest.Faults
	faults.SetRandom(sp.Faults)
	tap := &logTap{out: o, n: map[string]int64{}}
	obs := &observed{sharedStore: real, out: o}
	eng, err := refresh.New(refresh.Config{
		Store: faults.Wrap(obs),
		Endpoint: &refresh.FormEndpoint{
			TokenURL:     sp.TokenURL,
			ClientID:     refreshtest.DefaultClientID,
			ClientSecret: refreshtest.DefaultClientSecret,
			Auth:         refresh.AuthInBody,
			Header:       http.Header{workerHeader: {sp.ID}},
			HTTPClient:   &http.Client{Timeout: 10 * time.Second},
		},
		Logger: slog.New(tap),
	})
	if err != nil {
		return fail(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: sp.Goroutines}
	client := eng.Client(&http.Client{Transport: tr, Timeout: 20 * time.Second})

	t := newTraffic(sp.Goroutines)
	traffic, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	var wg sync.WaitGroup
	for i := range sp.Goroutines {
		wg.Go(func() { t.loop(traffic, i, client, sp.APIURL, sp.Pace) })
	}
	report := func(final bool) {
		p := t.progress()
		p.Faults, p.Log, p.Final = faults.Stats(), tap.counts(), final
		b, _ := json.Marshal(p)
		o.line("P %s", b)
	}

	eof := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "drain" {
				stopTraffic()
				faults.Clear()
			}
		}
		close(eof)
	}()
	o.line("ready")
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-tick.C:
			report(false)
		case <-eof:
			done = true
		}
	}
	stopTraffic()
	wg.Wait() // bounded by the client's timeout
	// A refresh runs detached from the request that started it and may
	// still be between the token endpoint and its save: closing the store
	// under it would lose the new token. The engine offers no way to wait
	// for it; the lock it holds tells.
	obs.idle(30 * time.Second)
	tr.CloseIdleConnections()
	report(true)
	return 0
}

// traffic is the request loops of one worker and their counts.
type traffic struct {
	ok       atomic.Int64
	lastOK   atomic.Int64
	inflight []atomic.Int64 // per loop: start of its request in flight, 0 if none

	mu       sync.Mutex
	failed   map[string]int64
	firstErr map[string]string
}

func newTraffic(n int) *traffic {
	return &traffic{inflight: make([]atomic.Int64, n), failed: map[string]int64{}, firstErr: map[string]string{}}
}

// loop sends requests until ctx ends, pausing pace between them (longer
// after a failure, as a real client would).
func (t *traffic) loop(ctx context.Context, i int, client *http.Client, url string, pace time.Duration) {
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		t.inflight[i].Store(time.Now().UnixNano())
		resp, err := client.Do(req)
		t.inflight[i].Store(0)
		if ctx.Err() != nil {
			if err == nil {
				resp.Body.Close()
			}
			return // stopping: not a failure
		}
		wait := pace
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("API answered %d", resp.StatusCode)
			}
		}
		if err == nil {
			t.ok.Add(1)
			t.lastOK.Store(time.Now().UnixNano())
		} else {
			t.fail(failureKind(err, resp), err)
			wait = max(pace, 50*time.Millisecond)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
}

func (t *traffic) fail(kind string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed[kind]++
	if _, ok := t.firstErr[kind]; !ok {
		t.firstErr[kind] = redact(err.Error())
	}
}

func (t *traffic) progress() progress {
	p := progress{OK: t.ok.Load(), LastOK: t.lastOK.Load()}
	now := time.Now().UnixNano()
	for i := range t.inflight {
		if s := t.inflight[i].Load(); s != 0 {
			p.Oldest = max(p.Oldest, (now-s)/1e6)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p.Failed = make(map[string]int64, len(t.failed))
	p.FirstErr = make(map[string]string, len(t.firstErr))
	for k, v := range t.failed {
		p.Failed[k] = v
	}
	for k, v := range t.firstErr {
		p.FirstErr[k] = v
	}
	return p
}

// failureKind sorts a failed request for the summary.
func failureKind(err error, resp *http.Response) string {
	var x *refresh.Error
	var ne net.Error
	switch {
	case resp != nil:
		return fmt.Sprintf("http %d", resp.StatusCode)
	case errors.Is(err, refresh.ErrReauthRequired):
		return "reauth required"
	case errors.Is(err, refresh.ErrClientConfig):
		return "client config"
	case errors.As(err, &x):
		msg := ""
		if x.Err != nil {
			msg = x.Err.Error()
		}
		switch {
		case strings.HasPrefix(msg, "panic in token store"):
			return "store panic (recovered)"
		case strings.HasPrefix(msg, "store "):
			kind, _, _ := strings.Cut(strings.TrimPrefix(msg, "store "), ":")
			return "store " + kind
		case x.Temporary() && x.StatusCode != 0:
			return fmt.Sprintf("token endpoint %d", x.StatusCode)
		case x.Temporary():
			return "token endpoint unreachable"
		}
		return "refresh failed"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
