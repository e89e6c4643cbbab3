package refresh

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"golang.org/x/oauth2"
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

// Config configures an [Engine]. Either OAuth2 or Endpoint is required; all
// other fields are optional and their zero values are sensible.
type Config struct {
	// OAuth2 is the client configuration used for the standard
	// refresh_token grant (RFC 6749 §6). Required unless Endpoint is set.
	// Its Endpoint.AuthStyle must be oauth2.AuthStyleInParams or
	// oauth2.AuthStyleInHeader: auto-detection sends the same refresh token
	// a second time after a failure, which rotating servers treat as reuse.
	// Like x/oauth2's own refresh, it keeps every scalar member of the
	// token response in the new token's Extra, within the limits that
	// FormEndpoint.KeepExtra describes; a FormEndpoint keeps fewer.
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
	// means the engine keeps them in its own memory, as a [MemoryStore]
	// would but without a second copy of each token; they are lost when the
	// process exits.
	Store TokenStore

	// IdleTimeout, for servers with many users, frees the memory of keys
	// that no request, Token or Refresh used for that long (between
	// IdleTimeout and 1.5 times it): their next use reloads them from the
	// store. A key whose newest token is not saved yet is kept. Optional:
	// zero means keys stay in memory until [Engine.Forget],
	// [Engine.Logout] or [Engine.Close]. With the engine's own store (Store
	// nil) memory is the store, and idle keys are kept.
	IdleTimeout time.Duration

	// ExpirySkew is how long before its expiry a token is refreshed.
	// Optional: zero means 60 seconds; negative means at expiry. It is
	// clamped to half the token's lifetime, so short-lived tokens are not
	// refreshed on every request. Each token's refresh comes up to half the
	// skew earlier still, at random (but not before half its lifetime), so
	// that many keys, and the processes that share them, do not refresh at
	// the same instant. The refresh runs in the background: requests keep
	// using the token, still valid, meanwhile.
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

	// OnEvent receives one Event per refresh flight, adoption, resend,
	// pause and save failure, and what stores report (see [Event]).
	// Optional. It is called on a goroutine of the engine, one event at a
	// time, in the order the events happened, shortly after each: never
	// on the goroutine of a request or of a refresh, so an OnEvent that is
	// slow, blocks or panics cannot stall or break either. While it is
	// busy, up to 4096 events queue up; beyond that they are dropped and
	// counted in [Stats].EventsDropped. A panic is recovered and logged.
	// It may call the engine.
	OnEvent func(Event)

	// Hooks are called on some of the events, after OnEvent, in the same
	// way. Optional.
	Hooks Hooks
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
		done:         make(chan struct{}),
		keys:         newKeyTable(),
		sched:        new(schedule),
		idle:         c.IdleTimeout,
	}
	e.events.fn = e.withHooks(c.OnEvent, c.Hooks)
	e.def.Store(&entry{key: DefaultKey})
	if e.endpoint == nil {
		ep, err := oauth2Endpoint(c.OAuth2, c.HTTPClient)
		if err != nil {
			return nil, err
		}
		e.endpoint = ep
	}
	e.fetcher, _ = e.endpoint.(Fetcher)
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
		e.store, e.own = ownStore{e}, true
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
	if e.idle > 0 {
		e.startSweep()
	}
	return e, nil
}
