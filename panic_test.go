package refresh_test

// A store, endpoint, hook, logger or NeedsRefresh that panics: an error,
// never a crash (part of the first promise; helpers in promise_test.go).

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
	"golang.org/x/oauth2"
)

// TestPanicsNeverCrash: a store, endpoint, hook, logger or NeedsRefresh that
// panics makes an error (without the panic's value), never a crash, and
// the key keeps working. (Before the fix, panics on the adopt path and in
// hooks, including those of background saves, ended the program.)
func TestPanicsNeverCrash(t *testing.T) {
	const secret = "panic-value-holds-a-token"
	boom := func() { panic(secret) }
	hooks := refresh.Hooks{
		Refreshed:      func(string) { boom() },
		RefreshFailed:  func(string, error) { boom() },
		ReauthRequired: func(string, error) { boom() },
		SaveFailed:     func(string, error) { boom() },
	}
	type env struct {
		srv    *refreshtest.Server
		faults *storetest.Faults
		e      *refresh.Engine
		reject atomic.Bool // whether the stub API rejects every token
	}
	setup := func(t *testing.T, c refresh.Config) *env {
		v := &env{srv: newStrict(t, refreshtest.Options{}), faults: new(storetest.Faults)}
		c.Store = v.faults.Wrap(new(refresh.LockingStore))
		c.Hooks = hooks
		v.e = newEng(t, v.srv, c)
		if err := v.e.SetToken(t.Context(), "", v.srv.Token()); err != nil {
			t.Fatal(err)
		}
		return v
	}
	client := func(v *env, code int) *http.Client {
		return &http.Client{Transport: &refresh.Transport{Engine: v.e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
			if v.reject.Load() {
				return reply(r, http.StatusUnauthorized), nil
			}
			return reply(r, code), nil
		})}}
	}
	noSecret := func(t *testing.T, what string, err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the panic's value: %v", what, err)
		}
	}
	works := func(t *testing.T, v *env) {
		t.Helper()
		refresh.WaitFor(t, "the key works after the panic, once its cooldown passed", func() bool {
			_, err := v.e.Refresh(t.Context(), "", nil)
			return err == nil
		})
		noReuse(t, v.srv)
	}
	for _, op := range []storetest.Op{storetest.OpLoad, storetest.OpLock, storetest.OpUnlock, storetest.OpCompareAndSwap} {
		t.Run(op.String(), func(t *testing.T) {
			v := setup(t, refresh.Config{})
			v.faults.Script(storetest.Fault{Op: op, Kind: storetest.FaultPanic})
			_, err := v.e.Refresh(t.Context(), "", nil)
			noSecret(t, op.String(), err)
			if err != nil && !errors.Is(err, refresh.ErrPanic) {
				t.Errorf("%v panics: got %v, want nil or ErrPanic", op, err)
			}
			works(t, v)
		})
	}
	t.Run("AdoptLoad", func(t *testing.T) {
		// The API rejects the refreshed token too; re-reading the store
		// for a newer one then panics.
		v := setup(t, refresh.Config{})
		v.reject.Store(true)
		v.faults.Script(storetest.Fault{Op: storetest.OpLoad}, storetest.Fault{Op: storetest.OpLoad, Kind: storetest.FaultPanic})
		code, err := status(client(v, 200), t.Context(), "https://api.test/")
		noSecret(t, "adopt", err)
		if code != 401 {
			t.Errorf("adopt Load panics: %d, %v; want the API's 401", code, err)
		}
		v.reject.Store(false)
		works(t, v)
	})
	t.Run("BackgroundSave", func(t *testing.T) {
		// A save panics, and so does its first retry in the background,
		// whose SaveFailed hook panics on a goroutine of its own.
		v := setup(t, refresh.Config{})
		v.faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanic},
			storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanic})
		if _, err := v.e.Refresh(t.Context(), "", nil); err != nil {
			t.Errorf("refresh with a panicking save: %v; want the new token from memory", err)
		}
		refresh.WaitFor(t, "the save is retried in the background", func() bool { return v.faults.Pending() == 0 })
		if err := v.e.Close(t.Context()); err != nil {
			t.Errorf("Close: %v", err)
		}
		noReuse(t, v.srv)
	})
	t.Run("HooksOnReauth", func(t *testing.T) {
		v := setup(t, refresh.Config{})
		v.srv.RevokeGrants()
		_, err := v.e.Refresh(t.Context(), "", nil)
		if !errors.Is(err, refresh.ErrReauthRequired) {
			t.Errorf("got %v, want ErrReauthRequired", err)
		}
	})
	t.Run("Logger", func(t *testing.T) {
		// Every record's handler panics: refreshes, failures, saves.
		v := setup(t, refresh.Config{Logger: slog.New(panicHandler{})})
		v.faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError})
		if _, err := v.e.Refresh(t.Context(), "", nil); err != nil {
			t.Errorf("refresh: %v", err)
		}
		v.srv.RevokeGrants()
		if _, err := v.e.Refresh(t.Context(), "", nil); !errors.Is(err, refresh.ErrReauthRequired) {
			t.Errorf("got %v, want ErrReauthRequired", err)
		}
	})
	t.Run("NeedsRefresh", func(t *testing.T) {
		v := setup(t, refresh.Config{NeedsRefresh: func(*http.Response) bool { boom(); return true }})
		if code, err := status(client(v, 403), t.Context(), "https://api.test/"); code != 403 {
			t.Errorf("NeedsRefresh panics: %d, %v; want the 403", code, err)
		}
	})
	t.Run("Endpoint", func(t *testing.T) {
		// An error wrapping ErrPanic, and the refresh token is not sent
		// again: the endpoint may have sent it before panicking.
		var calls atomic.Int64
		v := setup(t, refresh.Config{Endpoint: refresh.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			calls.Add(1)
			boom()
			return nil, nil
		})})
		for range 2 {
			_, err := v.e.Refresh(t.Context(), "", nil)
			if !errors.Is(err, refresh.ErrPanic) {
				t.Errorf("endpoint panics: got %v, want ErrPanic", err)
			}
			noSecret(t, "endpoint", err)
		}
		if calls.Load() != 1 {
			t.Errorf("endpoint called %d times after panicking; want 1", calls.Load())
		}
	})
}

// panicHandler is a slog.Handler that panics on every record.
type panicHandler struct{}

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("log handler") }
func (h panicHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h panicHandler) WithGroup(string) slog.Handler           { return h }
