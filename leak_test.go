package refresh_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/leakscan"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
)

// leakRun collects what the engine hands out along its failure paths: log
// records, errors (also those given to hooks and events) and the tokens
// issued.
type leakRun struct {
	logs  refresh.SyncBuffer
	sink  io.Writer
	mu    sync.Mutex // guards seen and tokens
	seen  []string   // the text of every error, and of every error it wraps
	login []string   // every token issued by a login
}

func (r *leakRun) note(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ; err != nil; err = errors.Unwrap(err) {
		r.seen = append(r.seen, err.Error())
	}
}

// event notes the errors an event carries.
func (r *leakRun) event(ev refresh.Event) {
	r.note(ev.Err)
	r.note(ev.Store.Err)
	for _, req := range ev.Requests {
		r.note(req.Err)
	}
}

func (r *leakRun) hooks() refresh.Hooks {
	return refresh.Hooks{
		RefreshFailed:  func(_ string, err error) { r.note(err) },
		ReauthRequired: func(_ string, err error) { r.note(err) },
		SaveFailed:     func(_ string, err error) { r.note(err) },
	}
}

// TestLogsEveryFailurePath takes every failure path there is, with loggers
// at debug level, and checks that no token or secret, in any encoding,
// reaches a log record, an error or a hook. With REFRESH_LEAK_LOG set, the
// records are also written to that file, for CI's leak scan
// (internal/cmd/leakscan).
func TestLogsEveryFailurePath(t *testing.T) {
	r := &leakRun{}
	r.sink = &r.logs
	if path := os.Getenv("REFRESH_LEAK_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r.sink = io.MultiWriter(&r.logs, f)
	}
	t.Run("styles", func(t *testing.T) {
		for _, style := range []refreshtest.ErrorStyle{refreshtest.ErrorsRFC, refreshtest.Errors500, refreshtest.ErrorsHTML} {
			t.Run(style.String(), func(t *testing.T) {
				t.Parallel()
				r.failurePaths(t, style)
			})
		}
	})
	logs := r.logs.String()
	for _, want := range []string{"re-authentication required", "saving the new token failed", "store Load panicked",
		"closing without saving", "HTTP 503", "connection reset"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run did not take the path that logs %q:\n%s", want, logs)
		}
	}
	sc := leakscan.New(r.login...)
	for i, line := range strings.Split(logs+strings.Join(r.seen, "\n"), "\n") {
		for _, l := range sc.Scan(line) {
			t.Errorf("line %d: %s", i+1, l)
		}
	}
}

// failurePaths runs every scenario against a server that answers errors in
// style, one key per scenario so that no cooldown carries over.
func (r *leakRun) failurePaths(t *testing.T, style refreshtest.ErrorStyle) {
	ctx := t.Context()
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	logger := slog.New(slog.NewTextHandler(r.sink, opts))
	if style == refreshtest.Errors500 {
		logger = slog.New(slog.NewJSONHandler(r.sink, opts))
	}
	srv := newStrict(t, refreshtest.Options{Errors: style})
	var faults storetest.Faults
	e := newEng(t, srv, refresh.Config{Store: faults.Wrap(new(refresh.LockingStore)), Logger: logger, Hooks: r.hooks(), OnEvent: r.event,
		RefreshTimeout: 3 * time.Second, RefreshAttempts: 2})
	n := 0
	// cycle logs a new key in, runs then, and twice makes the API reject
	// the key's token and sends a request.
	cycle := func(then ...func()) {
		n++
		key := string(rune('a' + n))
		tok := srv.Token()
		r.mu.Lock()
		r.login = append(r.login, tok.AccessToken, tok.RefreshToken)
		r.mu.Unlock()
		if err := e.SetToken(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
		for _, f := range then {
			f()
		}
		for range 2 {
			srv.RevokeAccessTokens()
			req, _ := http.NewRequestWithContext(refresh.WithKey(ctx, key), http.MethodGet, srv.URL+"/x", nil)
			resp, err := e.Client(nil).Do(req)
			r.note(err)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	cycle() // refreshed
	// Saves that fail, panic or commit and panic; reads and locks that
	// fail or panic.
	for _, f := range []storetest.Fault{
		{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError, Err: errors.New("disk full")},
		{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanicAfter},
		{Op: storetest.OpLoad, Kind: storetest.FaultError},
		{Op: storetest.OpLoad, Kind: storetest.FaultPanic},
		{Op: storetest.OpLock, Kind: storetest.FaultError},
		{Op: storetest.OpUnlock, Kind: storetest.FaultPanic},
	} {
		cycle(func() { faults.Script(f) })
	}
	// The endpoint: temporary failures (with retries), an HTML page from a
	// proxy, a reset after the grant.
	for _, f := range []refreshtest.Faults{
		{Rate: 1, Kind: refreshtest.FaultUnavailable, RetryAfter: time.Second},
		{Rate: 1, Kind: refreshtest.FaultHTML},
		{Rate: 1, Kind: refreshtest.FaultReset, AfterGrant: true},
	} {
		cycle(func() { srv.SetFaults(f) })
		srv.SetFaults(refreshtest.Faults{})
	}
	cycle(srv.RevokeGrants) // invalid_grant: re-authentication
	// A save that never works: Close reports the key.
	cycle(func() {
		faults.SetRandom(storetest.Random{Ops: []storetest.Op{storetest.OpCompareAndSwap}, Error: 1})
	})
	r.note(e.Close(ctx))
}
