package procs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
)

// out writes protocol lines, whole, one at a time.
type out struct {
	w  io.Writer
	mu sync.Mutex // serializes the writes to w
}

func (o *out) line(format string, args ...any) {
	b := fmt.Appendf([]byte(prefix), format+"\n", args...)
	o.mu.Lock()
	o.w.Write(b)
	o.mu.Unlock()
}

// worker is the state of a worker process.
type worker struct {
	spec  Spec
	out   *out
	pause *pauser

	reauth atomic.Bool // its line was written

	mu     sync.Mutex // protects the fields below
	rep    Report
	served map[string]string // goroutine → fingerprint of its last 200
}

// Work runs a worker over store, which must be a refresh.Locker, until
// the parent closes stdin or spec.Duration passes, and returns the
// process's exit code. Its output is the protocol's (see the package
// documentation).
func Work(spec Spec, store refresh.TokenStore) int {
	w := &worker{spec: spec, out: &out{w: os.Stdout}, served: map[string]string{}}
	w.rep.Served, w.rep.StoreEvents, w.rep.Flights = map[string]int64{}, map[string]int64{}, map[string]int64{}
	if spec.Grant == GrantXOAuth2 {
		return w.xoauth2()
	}
	l, ok := store.(refresh.Locker)
	if !ok {
		fmt.Fprintf(os.Stderr, "procs: worker %s: the store (%T) is not a refresh.Locker\n", spec.ID, store)
		return 2
	}
	w.pause = newPauser(l, spec.PauseSave, w.out)
	eng, err := refresh.New(w.config())
	if err != nil {
		fmt.Fprintf(os.Stderr, "procs: worker %s: %v\n", spec.ID, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.Duration)
	defer cancel()
	go w.readStdin(cancel)
	w.out.line("ready")
	w.run(ctx, eng.Client(&http.Client{Timeout: 30 * time.Second, Transport: tracker{w}}))
	// A refresh may still be saving a rotated token: wait for it, or the
	// others spend the old one once this process has exited.
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	if err := eng.Close(cctx); err != nil {
		w.fail(err)
	}
	w.mu.Lock()
	w.rep.Saved = w.pause.outcome()
	b, _ := json.Marshal(&w.rep)
	w.mu.Unlock()
	w.out.line("report %s", b)
	return 0
}

func (w *worker) config() refresh.Config {
	attempts, timeout := w.spec.Attempts, w.spec.Timeout
	if attempts == 0 {
		attempts = 1
	}
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	form := refresh.FormEndpoint{
		TokenURL: w.spec.TokenURL, ClientID: w.spec.ClientID, ClientSecret: w.spec.ClientSecret,
		Auth: w.spec.Auth, Header: http.Header{w.spec.header(): {w.spec.ID}},
	}
	var ep refresh.Endpoint = &form
	if w.spec.Grant == GrantClientCredentials {
		ep = &refresh.ClientCredentials{FormEndpoint: form}
	}
	return refresh.Config{
		Store:           w.pause.wrap(),
		Endpoint:        ep,
		RefreshAttempts: attempts,
		RefreshTimeout:  timeout,
		OnEvent:         w.event,
	}
}

// readStdin resumes the paused save on "resume", and at EOF stops the
// requests (and resumes the save, if it is still paused).
func (w *worker) readStdin(stop context.CancelFunc) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "resume" {
			w.pause.release()
		}
	}
	stop()
	w.pause.release()
}

// run sends requests from spec.Goroutines goroutines until ctx ends.
func (w *worker) run(ctx context.Context, client *http.Client) {
	var wg sync.WaitGroup
	for g := range w.spec.Goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				w.request(ctx, client, strconv.Itoa(g))
				if w.spec.Pace > 0 {
					select {
					case <-time.After(w.spec.Pace):
					case <-ctx.Done():
					}
				}
			}
		})
	}
	wg.Wait()
}

// request sends one request and counts its outcome.
func (w *worker) request(ctx context.Context, client *http.Client, g string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.spec.APIURL, nil)
	req.Header.Set(goroutineHeader, g)
	resp, err := client.Do(req)
	if ctx.Err() != nil {
		return // stopping; not a failure
	}
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("API answered %d", resp.StatusCode)
		}
	}
	after := w.pause.done()
	w.mu.Lock()
	w.rep.Requests++
	if after {
		w.rep.AfterSave++
	}
	if err != nil && after {
		w.rep.FailedAfterSave++
	}
	w.mu.Unlock()
	if err != nil {
		w.fail(err)
		time.Sleep(20 * time.Millisecond) // no busy loop on a broken key
	}
}

// fail counts a failed request.
func (w *worker) fail(err error) {
	reauth := errors.Is(err, refresh.ErrReauthRequired)
	w.mu.Lock()
	w.rep.Failures++
	if reauth {
		w.rep.Reauth++
	}
	if w.rep.FirstErr == "" {
		w.rep.FirstErr = err.Error()
	}
	w.mu.Unlock()
	if reauth && w.reauth.CompareAndSwap(false, true) {
		w.out.line("reauth")
	}
}

// event counts the engine's refresh flights and what the store reported.
func (w *worker) event(ev refresh.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev.Kind {
	case refresh.EventStore:
		w.rep.StoreEvents[ev.Store.Op+": "+ev.Store.What]++
	case refresh.EventResend:
		w.rep.Flights[ev.Kind.String()]++
	default:
		w.rep.Flights[ev.Kind.String()+" "+ev.Trigger.String()+" → "+ev.Outcome.String()]++
	}
}

// servedWith records a 200 to goroutine g with the access token of
// fingerprint fp.
func (w *worker) servedWith(g, fp string) {
	w.mu.Lock()
	w.rep.Served[fp]++
	changed := w.served[g] != fp
	w.served[g] = fp
	w.mu.Unlock()
	if changed {
		w.out.line("served %s %s", g, fp)
	}
}

// tracker is the transport under the engine: it sees the access token
// each API request carried, and the answer.
type tracker struct{ w *worker }

func (tr tracker) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tr.w.servedWith(r.Header.Get(goroutineHeader), refresh.Fingerprint(tok))
	}
	return resp, nil
}
