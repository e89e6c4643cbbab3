package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// An Engine keeps the tokens of any number of keys working: it loads them
// from the store, refreshes them when they expire or are rejected, once per
// key at a time, and saves every new token before anyone uses it.
//
// An Engine is safe for concurrent use. Create it with [New]; use it through
// [Engine.Client], a [Transport], [Engine.Token] or [Engine.TokenSource].
type Engine struct {
	endpoint     Endpoint
	fetcher      Fetcher // endpoint, if it is one
	store        TokenStore
	skew         time.Duration
	timeout      time.Duration
	attempts     int
	needsRefresh func(*http.Response) bool
	log          *slog.Logger
	events       dispatcher // delivers to Config.OnEvent and Hooks
	stats        gauges

	def     atomic.Pointer[entry] // DefaultKey's entry, found without hashing
	keys    *keyTable             // the entries of other keys
	sched   *schedule             // refresh times
	own     bool                  // the store is the engine's own (see ownStore)
	idle    time.Duration         // Config.IdleTimeout
	sweeper *time.Timer           // the idle sweep, if idle > 0
	flights group                 // one refresh per key at a time
	adopts  group                 // one re-read of the store per key at a time (Engine.adopt)

	done   chan struct{}  // closed by Close: background saves stop
	closed atomic.Bool    // set by Close
	bg     sync.WaitGroup // background saves (retrySave)
}

// Client returns a copy of base whose requests carry the token of the key in
// their context (see [WithKey]), or of [DefaultKey]. The copy keeps base's
// Timeout, Jar and CheckRedirect; base's Transport becomes the new
// transport's Base. A nil base means [http.DefaultClient].
func (e *Engine) Client(base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.Transport = &Transport{Engine: e, Base: base.Transport}
	return &c
}

// SetToken makes tok the current token of key, for example after the user
// logged in again. It saves tok to the store first and returns the store's
// error, if any, without changing anything. It lifts the re-authentication
// latch of the key, and replaces a token whose save failed.
func (e *Engine) SetToken(ctx context.Context, key string, tok *oauth2.Token) error {
	key = normalizeKey(key)
	if tok == nil || tok.AccessToken == "" && tok.RefreshToken == "" {
		return &Error{Key: key, Err: errors.New("SetToken: token has neither access nor refresh token")}
	}
	if e.closed.Load() {
		return &Error{Key: key, Err: ErrClosed}
	}
	t := copyToken(tok)
	ns := e.newSnapshot(key, t) // before t is shared with the store
	ent := e.lockEntry(key)
	defer ent.mu.Unlock()
	if err := e.storeSave(ctx, key, t); err != nil {
		return &Error{Key: key, Err: fmt.Errorf("store save: %w", cleanErr(err, ent.secrets(t)...))}
	}
	e.saved(ent, t)
	e.publish(ent, ns)
	ent.unpause()
	return nil
}

// Token returns a valid token for key, loading it from the store or
// refreshing it if needed. The returned token is a copy, with its extras
// (oauth2.Token.Extra: the id_token and scope of the response that issued
// it, or of an earlier one if that response had none).
func (e *Engine) Token(ctx context.Context, key string) (*oauth2.Token, error) {
	_, s, err := e.current(ctx, normalizeKey(key))
	if err != nil {
		return nil, err
	}
	return copyToken(s.tok), nil
}

// Refresh reports that the API rejected a token of key and returns the
// token to use instead: the current one if it is no longer the rejected one
// (another caller already refreshed), or a new one. Use it where the
// transport is not in the path, for example with gRPC.
//
// If rejected is a token that a refresh had just returned, refreshing does
// not seem to help (a wrong audience, a misconfigured gateway): Refresh then
// returns an error wrapping [ErrRefreshPaused] for a while instead of
// calling the token endpoint, unless the store holds a newer token. A nil
// rejected asks for a refresh of the current token in any case.
func (e *Engine) Refresh(ctx context.Context, key string, rejected *oauth2.Token) (*oauth2.Token, error) {
	key = normalizeKey(key)
	ent, cur, err := e.current(ctx, key)
	if err != nil {
		return nil, err
	}
	var s *snapshot
	switch {
	case rejected == nil:
		s, err = e.await(ctx, key, ent, cur, TriggerRejected)
	case cur.tok.AccessToken != rejected.AccessToken:
		return copyToken(cur.tok), nil
	default:
		s, _, err = e.reject(ctx, key, ent, cur, 0, nil)
	}
	if err != nil {
		return nil, err
	}
	return copyToken(s.tok), nil
}

// TokenSource returns an [oauth2.TokenSource] for key backed by the engine,
// for libraries that take one. Unlike the sources of golang.org/x/oauth2 it
// captures no context: every refresh runs with the engine's own timeout.
func (e *Engine) TokenSource(key string) oauth2.TokenSource {
	return tokenSource{e, normalizeKey(key)}
}

type tokenSource struct {
	e   *Engine
	key string
}

func (ts tokenSource) Token() (*oauth2.Token, error) {
	return ts.e.Token(context.Background(), ts.key)
}

func normalizeKey(key string) string {
	if key == "" {
		return DefaultKey
	}
	return key
}

// lookup returns the entry of key, or nil if the engine holds none. It
// takes no lock: the hot path's.
func (e *Engine) lookup(key string) *entry {
	if key == DefaultKey {
		return e.def.Load()
	}
	return e.keys.load(key)
}

// entry returns the entry of key, creating it if there is none.
func (e *Engine) entry(key string) *entry {
	if key == DefaultKey {
		return e.def.Load()
	}
	if ent := e.keys.load(key); ent != nil {
		return ent
	}
	return e.keys.loadOrStore(key, new(entry))
}

// lockEntry returns the entry of key with its mu held, one that is not
// gone.
func (e *Engine) lockEntry(key string) *entry {
	for {
		ent := e.entry(key)
		ent.mu.Lock()
		if !ent.gone {
			return ent
		}
		ent.mu.Unlock()
	}
}
