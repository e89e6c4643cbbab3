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
	"golang.org/x/sync/singleflight"
)

// DefaultKey is the token key of requests that name none: the only key a
// single-user program needs. Engine methods treat the key "" as DefaultKey.
const DefaultKey = "default"

const (
	defaultExpirySkew     = 60 * time.Second
	defaultRefreshTimeout = 30 * time.Second
	defaultAttempts       = 3

	// Backoff between attempts of one refresh: retryBase, doubled each
	// time, up to retryMax, with up to 50 % jitter; Retry-After wins when
	// longer. After a refresh failed temporarily, the key waits as long
	// again before the next refresh (cooldown), so an outage does not turn
	// every request into a token-endpoint call.
	retryBase = 500 * time.Millisecond
	retryMax  = 5 * time.Second

	// reauthRecheck is how often a key that needs re-authentication looks
	// at the store again, in case another process stored a new login.
	// Reading the store is cheap; calling the token endpoint is what the
	// latch forbids.
	reauthRecheck = 5 * time.Second

	// earlyRetry bounds how long a token that is due for refresh but not
	// expired is used after a failed refresh before the next attempt.
	earlyRetry = 5 * time.Second

	// earlyLockWait bounds how long a refresh of a token that is due but
	// still valid waits for the store's cross-process lock.
	earlyLockWait = time.Second

	// A token whose save failed is saved again in the background after
	// saveBackoff, doubled each time up to saveMaxDelay, until it is saved
	// or the engine is closed; every later flight of the key tries too.
	saveBackoff  = time.Second
	saveMaxDelay = time.Minute
)

// An Endpoint exchanges a refresh token for a new token: the seam through
// which the engine talks to a token endpoint.
//
// Refresh is called at most once at a time per key, with a token whose
// RefreshToken is not empty, and with a context that carries the refresh
// timeout. It must send that refresh token at most once: after a server may
// have seen it, trying it again (for example with another client
// authentication style) is a reuse that rotating servers punish by revoking
// the whole token family.
//
// The returned token replaces the old one. If its RefreshToken is empty the
// engine keeps the old refresh token. A rejection should be returned as an
// *[Error] with Code set (Code "invalid_grant" means the user must log in
// again) or wrap [ErrReauthRequired].
type Endpoint interface {
	Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)
}

// EndpointFunc adapts a function to the [Endpoint] interface.
type EndpointFunc func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)

// Refresh calls f(ctx, tok).
func (f EndpointFunc) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	return f(ctx, tok)
}

// Hooks are called when something happens to a key's token. Every field is
// optional. Hooks run on the goroutine that refreshed, after the key's
// internal lock is released, before the callers waiting for the refresh get
// its result (SaveFailed also from the background saves); they should return
// quickly. They may call the engine. They are never given a token value. A
// hook that panics is recovered and logged; the others still run.
type Hooks struct {
	// Refreshed is called after a new token was obtained and saved (or its
	// save failed; SaveFailed tells).
	Refreshed func(key string)
	// RefreshFailed is called when a refresh failed for any reason,
	// including those that need re-authentication.
	RefreshFailed func(key string, err error)
	// ReauthRequired is called when the key needs a new login: its refresh
	// token was rejected or there is none.
	ReauthRequired func(key string, err error)
	// SaveFailed is called when the store could not save a new token. The
	// engine keeps using the token from memory and tries to save it again,
	// in the background and at every refresh, until it succeeds or the
	// engine is closed. Meanwhile it keeps the key's cross-process lock (if
	// the store has one), so that no other process spends the store's older
	// refresh token: they wait, and fail temporarily after their refresh
	// timeout.
	SaveFailed func(key string, err error)
}

// Config configures an [Engine]. Either OAuth2 or Endpoint is required; all
// other fields are optional and their zero values are sensible.
type Config struct {
	// OAuth2 is the client configuration used for the standard
	// refresh_token grant (RFC 6749 §6). Required unless Endpoint is set.
	// Its Endpoint.AuthStyle must be oauth2.AuthStyleInParams or
	// oauth2.AuthStyleInHeader: auto-detection sends the same refresh token
	// a second time after a failure, which rotating servers treat as reuse.
	OAuth2 *oauth2.Config

	// Endpoint overrides OAuth2 as the way tokens are refreshed: a
	// *FormEndpoint for options oauth2.Config lacks (raw Basic
	// credentials, scope, extra parameters or headers), a *JSONEndpoint,
	// or your own implementation. Optional.
	Endpoint Endpoint

	// HTTPClient is the client used to call the token endpoint configured
	// by OAuth2. Optional: nil means a client over http.DefaultTransport.
	// Redirects are never followed (they would carry the refresh token and
	// the client secret elsewhere). It must not use this package's
	// Transport.
	HTTPClient *http.Client

	// Store keeps tokens across restarts and processes. Optional: nil
	// means a new, empty [MemoryStore].
	Store TokenStore

	// ExpirySkew is how long before its expiry a token is refreshed.
	// Optional: zero means 60 seconds; negative means at expiry. It is
	// clamped to half the token's lifetime, so short-lived tokens are not
	// refreshed on every request.
	ExpirySkew time.Duration

	// RefreshAttempts is how many times one refresh may call the token
	// endpoint when it fails temporarily (408, 429, 5xx without an OAuth
	// error code, network errors), with exponential backoff and jitter,
	// honouring Retry-After, within RefreshTimeout. Optional: zero means 3;
	// 1 or less means no retry. Other failures are never retried with the
	// same refresh token.
	RefreshAttempts int

	// RefreshTimeout bounds one refresh (store reads, the token endpoint
	// call, the save). Optional: zero means 30 seconds. The refresh does
	// not end when the caller that started it gives up: other callers may
	// be waiting for it.
	RefreshTimeout time.Duration

	// NeedsRefresh widens when a response means "the token is no longer
	// good", for APIs that signal it other than with a 401. Optional. It is
	// consulted for responses the built-in rule does not already treat as
	// such (a 401 with an "invalid_token" error or no error code), never for
	// an "insufficient_scope" answer. It must not read or close the body.
	NeedsRefresh func(resp *http.Response) bool

	// Logger receives one record per refresh, failure and re-authentication.
	// Optional: nil means no logging. Records carry the key and at most a
	// [Fingerprint] of a token.
	Logger *slog.Logger

	// Hooks are called on refresh events. Optional.
	Hooks Hooks
}

// An Engine keeps the tokens of any number of keys working: it loads them
// from the store, refreshes them when they expire or are rejected, once per
// key at a time, and saves every new token before anyone uses it.
//
// An Engine is safe for concurrent use. Create it with [New]; use it through
// [Engine.Client], a [Transport], [Engine.Token] or [Engine.TokenSource].
type Engine struct {
	endpoint     Endpoint
	store        TokenStore
	skew         time.Duration
	timeout      time.Duration
	attempts     int
	needsRefresh func(*http.Response) bool
	log          *slog.Logger
	hooks        Hooks

	def     *entry             // DefaultKey's entry, found without hashing
	keys    sync.Map           // key → *entry for other keys; never removed
	flights singleflight.Group // one refresh per key at a time
	adopts  singleflight.Group // one re-read of the store per key at a time (Engine.adopt)

	done   chan struct{}  // closed by Close: background saves stop
	closed atomic.Bool    // set by Close
	bg     sync.WaitGroup // background saves (retrySave)
}

// New returns an engine for the configuration.
func New(c Config) (*Engine, error) {
	e := &Engine{
		endpoint:     c.Endpoint,
		store:        c.Store,
		skew:         c.ExpirySkew,
		timeout:      c.RefreshTimeout,
		needsRefresh: c.NeedsRefresh,
		log:          c.Logger,
		hooks:        c.Hooks,
		def:          new(entry),
		done:         make(chan struct{}),
	}
	if e.endpoint == nil {
		ep, err := oauth2Endpoint(c.OAuth2, c.HTTPClient)
		if err != nil {
			return nil, err
		}
		e.endpoint = ep
	}
	if v, ok := e.endpoint.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, errors.New("refresh: " + err.Error())
		}
	}
	switch {
	case c.RefreshAttempts == 0:
		e.attempts = defaultAttempts
	case c.RefreshAttempts < 0:
		e.attempts = 1
	default:
		e.attempts = c.RefreshAttempts
	}
	if e.store == nil {
		e.store = new(MemoryStore)
	}
	switch {
	case e.skew == 0:
		e.skew = defaultExpirySkew
	case e.skew < 0:
		e.skew = 0
	}
	if e.timeout <= 0 {
		e.timeout = defaultRefreshTimeout
	}
	return e, nil
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
	ent := e.entry(key)
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if err := e.storeSave(ctx, key, t); err != nil {
		return &Error{Key: key, Err: fmt.Errorf("store save: %w", cleanErr(err, ent.secrets(t)...))}
	}
	ent.saved(t)
	ent.publish(unsendable(e.newSnapshot(key, t)))
	return nil
}

// Token returns a valid token for key, loading it from the store or
// refreshing it if needed. The returned token is a copy.
func (e *Engine) Token(ctx context.Context, key string) (*oauth2.Token, error) {
	key = normalizeKey(key)
	ent := e.entry(key)
	s := ent.cur.Load()
	if !s.usable() {
		var err error
		if s, err = e.acquire(ctx, key, ent, s); err != nil {
			return nil, err
		}
	}
	return copyToken(s.tok), nil
}

// Refresh reports that the API rejected a token of key and returns the
// token to use instead: the current one if it is no longer the rejected one
// (another caller already refreshed), or a new one. A nil rejected means the
// current token. Use it where the transport is not in the path, for example
// with gRPC.
func (e *Engine) Refresh(ctx context.Context, key string, rejected *oauth2.Token) (*oauth2.Token, error) {
	key = normalizeKey(key)
	ent := e.entry(key)
	cur := ent.cur.Load()
	if !cur.usable() {
		var err error
		if cur, err = e.acquire(ctx, key, ent, cur); err != nil {
			return nil, err
		}
	}
	if rejected != nil && cur.tok.AccessToken != rejected.AccessToken {
		return copyToken(cur.tok), nil
	}
	s, err := e.await(ctx, key, ent, cur, false)
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

func (e *Engine) entry(key string) *entry {
	if key == DefaultKey {
		return e.def
	}
	if v, ok := e.keys.Load(key); ok {
		return v.(*entry)
	}
	v, _ := e.keys.LoadOrStore(key, new(entry))
	return v.(*entry)
}
