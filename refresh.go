package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
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

	// saveRetries bounds the background attempts to persist a token whose
	// Save failed (about 6 minutes with the backoff below); every later
	// refresh of the key tries again too.
	// earlyRetry bounds how long a token that is due for refresh but not
	// expired is used after a failed refresh before the next attempt.
	earlyRetry = 5 * time.Second

	saveRetries  = 8
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
// its result; they should return quickly. They may call the engine. They are
// never given a token value.
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
	// engine keeps using the token from memory and tries to save it again.
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
}

// entry is the state of one key.
type entry struct {
	// cur is the token in use, nil until the key is first loaded. A
	// published snapshot's token never changes (only its due flag and
	// timer do); a new token comes in a new snapshot, so pointer identity
	// is the token's generation.
	cur atomic.Pointer[snapshot]

	mu sync.Mutex // serializes refreshes, SetToken and saves of this key

	// pending is a published snapshot whose Save failed, so the store is
	// behind memory and must not be trusted for this key. Guarded by mu.
	pending *snapshot

	// After a temporary failure, no refresh before coolUntil; coolErr is
	// the failure. Guarded by mu.
	coolUntil time.Time
	coolErr   *Error

	// seen is the token last known to be in the store (nil: none), the
	// "old" of a compare-and-swap save; valid when seenOK. Guarded by mu.
	seen   *oauth2.Token
	seenOK bool
}

// snapshot is one published token of a key with what the hot path needs.
type snapshot struct {
	tok *oauth2.Token // private copy; nil only when latched without a token

	// auth is the Authorization header value, shared read-only by all
	// requests; nil when the token cannot be sent (see bad and latch).
	auth []string

	refreshAt time.Time // when to refresh proactively; zero: only on 401

	// due is set by timer at refreshAt, so that the hot path reads a flag
	// instead of the clock. The timer runs on the monotonic clock: after
	// a machine's sleep it may fire late, and the API's 401 then triggers
	// the refresh instead.
	due   atomic.Bool
	timer *time.Timer // guarded by entry.mu; stopped when s is replaced

	bad       error     // tok cannot be put in a header (ErrInvalidToken)
	latch     error     // refreshing cannot help (ErrReauthRequired)
	recheckAt time.Time // latched: when the store may be read again
}

// usable reports whether the published snapshot s can be sent as is. It is
// the whole cost of the hot path: no lock, no clock, no allocation.
func (s *snapshot) usable() bool {
	return s != nil && s.auth != nil && !s.due.Load()
}

// fresh is usable for a snapshot that is not published yet.
func (s *snapshot) fresh() bool {
	return s.auth != nil && (s.refreshAt.IsZero() || time.Now().Before(s.refreshAt))
}

// postpone re-arms the refresh timer of the current snapshot s after a
// failed early refresh: halfway to its expiry, at most earlyRetry ahead.
// Called with ent.mu held.
func (ent *entry) postpone(s *snapshot) {
	d := min(time.Until(s.tok.Expiry)/2, earlyRetry)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.due.Store(false)
	s.timer = time.AfterFunc(d, func() { s.due.Store(true) })
}

// publish makes s the current snapshot of ent and arms its refresh timer.
// Called with ent.mu held.
func (ent *entry) publish(s *snapshot) {
	if !s.refreshAt.IsZero() && s.auth != nil {
		if d := time.Until(s.refreshAt); d > 0 {
			s.timer = time.AfterFunc(d, func() { s.due.Store(true) })
		} else {
			s.due.Store(true)
		}
	}
	if old := ent.cur.Swap(s); old != nil && old.timer != nil {
		old.timer.Stop()
	}
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
// latch of the key.
func (e *Engine) SetToken(ctx context.Context, key string, tok *oauth2.Token) error {
	key = normalizeKey(key)
	if tok == nil || tok.AccessToken == "" && tok.RefreshToken == "" {
		return &Error{Key: key, Err: errors.New("SetToken: token has neither access nor refresh token")}
	}
	t := copyToken(tok)
	ent := e.entry(key)
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if err := e.store.Save(ctx, key, t); err != nil {
		return &Error{Key: key, Err: fmt.Errorf("store save: %w", err)}
	}
	ent.pending = nil
	ent.seen, ent.seenOK = copyToken(t), true
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

// acquire returns a usable snapshot for a key whose current one, s, is not:
// missing, expired, latched or unsendable.
func (e *Engine) acquire(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if s != nil {
		if s.latch != nil && time.Now().Before(s.recheckAt) {
			return nil, s.latch
		}
		// An unsendable token is refreshed unless there is nothing to
		// refresh it with, or it came from a refresh (see unsendable).
		if s.bad != nil && (s.tok.RefreshToken == "" || s.refreshAt.IsZero() || time.Now().Before(s.refreshAt)) {
			return nil, s.bad
		}
	}
	return e.await(ctx, key, ent, s, s != nil && s.auth != nil)
}

// rejected returns the snapshot to retry with after the API rejected s: the
// current one if another caller already replaced s, else a refreshed one.
func (e *Engine) rejected(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if cur := ent.cur.Load(); cur != s && cur.usable() {
		return cur, nil
	}
	return e.await(ctx, key, ent, s, false)
}

// adopt returns a token newer than s, from memory or from the store, for a
// request whose retry with s was rejected too. It never calls the token
// endpoint; without a newer token it returns s.
func (e *Engine) adopt(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if cur := ent.cur.Load(); cur != s && cur.usable() {
		return cur, nil
	}
	ch := e.flights.DoChan(key+"\x00adopt", func() (any, error) {
		return e.adoptFlight(ctx, key, ent, s)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*snapshot), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// adoptFlight is step 2 of flight alone: under the key's locks, re-read
// the store and publish a newer usable token if it holds one.
func (e *Engine) adoptFlight(callerCtx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if cur := ent.cur.Load(); cur != s {
		if cur.usable() {
			return cur, nil
		}
		return s, nil
	}
	if ent.pending != nil {
		return s, nil // the store is behind memory
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	defer cancel()
	if l, ok := e.store.(Locker); ok {
		unlock, err := l.Lock(ctx, key)
		if err != nil {
			return s, nil
		}
		defer unlock()
	}
	stored, err := e.store.Load(ctx, key)
	if err != nil || stored == nil || SameToken(stored, s.tok) {
		return s, nil
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	ns := unsendable(e.newSnapshot(key, copyToken(stored)))
	if !ns.fresh() {
		return s, nil
	}
	ent.publish(ns)
	e.logInfo("adopted stored token", key, ns.tok)
	return ns, nil
}

// await joins the key's refresh flight, or starts one, to replace s. The
// flight runs detached from ctx; if ctx ends first, await returns ctx.Err()
// and the flight goes on for the others. early means s is still valid and
// only due for refresh (see flight).
func (e *Engine) await(ctx context.Context, key string, ent *entry, s *snapshot, early bool) (*snapshot, error) {
	for attempt := 0; ; attempt++ {
		ch := e.flights.DoChan(key, func() (any, error) {
			return e.flight(ctx, key, ent, s, early)
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
			got := r.Val.(*snapshot)
			// A flight started for an older token may publish the very
			// token this caller found rejected; then one more is needed.
			// (An early flight returns s itself when it keeps using it.)
			if got == s && s != nil && !early && attempt == 0 {
				continue
			}
			return got, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// flight is the refresh protocol for one key. It runs under the key's
// singleflight, so once per key at a time in this process, on a context
// detached from the caller's.
//
// early means the flight was started because rejected is due for refresh
// (within the skew of its expiry), not because the API refused it.
func (e *Engine) flight(callerCtx context.Context, key string, ent *entry, rejected *snapshot, early bool) (res *snapshot, err error) {
	var after []func() // hooks, run once the key is unlocked
	ent.mu.Lock()
	defer func() {
		if r := recover(); r != nil {
			// A panicking store or endpoint must not take down every
			// goroutine waiting on this flight. The value may hold a
			// token, so it is not printed.
			res, err = nil, &Error{Key: key, Err: errors.New("panic in token store or endpoint")}
			e.logError("refresh panicked", key, nil)
		}
		ent.mu.Unlock()
		if len(after) > 0 {
			// Let a hook that asks the engine for this key start a new
			// flight instead of joining (and waiting for) this one.
			e.flights.Forget(key)
		}
		for _, f := range after {
			f()
		}
	}()

	now := time.Now()
	cur := ent.cur.Load()
	// Step 1: the generation check. Someone (another flight, SetToken)
	// may have replaced the rejected token while this one waited.
	if cur != rejected && cur.usable() {
		return cur, nil
	}
	if cur != nil && cur.latch != nil && now.Before(cur.recheckAt) {
		return nil, cur.latch
	}
	if now.Before(ent.coolUntil) {
		// A refresh failed temporarily moments ago: do not call again yet.
		if early && cur == rejected && cur.auth != nil && now.Before(cur.tok.Expiry) {
			return cur, nil
		}
		return nil, ent.coolErr
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	defer cancel()

	// With a store that can lock across processes, hold the key's lock
	// from the re-read to the save: one process refreshes, the others wait
	// and then adopt its token in step 2.
	if l, ok := e.store.(Locker); ok {
		unlock, lerr := l.Lock(ctx, key)
		if lerr != nil {
			x := &Error{Key: key, Err: fmt.Errorf("store lock: %w", lerr), temporary: true}
			e.failed(key, x, &after)
			return nil, x
		}
		defer unlock() // deferred after the unlock of ent.mu, so it runs first
	}

	var mem *oauth2.Token // the newest token this process knows
	if cur != nil {
		mem = cur.tok
	}
	if ent.pending != nil {
		e.savePending(ctx, key, ent, &after)
	}

	// Step 2: re-read the store, unless it is known to be behind memory.
	// Another process, or the user after a login, may have stored a newer
	// token; then it is adopted without calling the endpoint.
	base := mem
	if ent.pending == nil {
		stored, lerr := e.store.Load(ctx, key)
		if lerr == nil && stored != nil {
			ent.seen, ent.seenOK = copyToken(stored), true
		} else if errors.Is(lerr, ErrNotFound) {
			ent.seen, ent.seenOK = nil, true
		}
		switch {
		case errors.Is(lerr, ErrNotFound):
			if mem == nil {
				return e.latch(ent, key, nil, errors.New("no token stored for this key"), &after)
			}
		case lerr != nil:
			rerr := &Error{Key: key, Err: fmt.Errorf("store load: %w", lerr), temporary: true}
			e.failed(key, rerr, &after)
			return nil, rerr
		case stored == nil:
			rerr := &Error{Key: key, Err: errors.New("store load: store returned no token and no error")}
			e.failed(key, rerr, &after)
			return nil, rerr
		case mem == nil || stored.AccessToken != mem.AccessToken || stored.RefreshToken != mem.RefreshToken:
			ns := unsendable(e.newSnapshot(key, copyToken(stored)))
			if ns.fresh() {
				ent.publish(ns)
				e.logInfo("adopted stored token", key, ns.tok)
				return ns, nil
			}
			base = ns.tok // expired: refresh with the newest refresh token
		default: // the store holds what we hold
			if cur != nil && cur.latch != nil {
				return e.latch(ent, key, cur.tok, cur.latch, &after)
			}
		}
	}
	if cur != nil && cur.latch != nil && base == cur.tok {
		return e.latch(ent, key, cur.tok, cur.latch, &after)
	}
	if base.RefreshToken == "" {
		return e.latch(ent, key, base, errors.New("token has no refresh token"), &after)
	}

	// Step 3: call the token endpoint. Only temporary failures are tried
	// again with the same refresh token, a bounded number of times.
	nt, x := e.call(ctx, key, base)
	if x != nil && x.Code == "invalid_request" {
		// ory/fosite answers the loser of two concurrent refreshes this
		// way: a peer may have won. Its token, once stored, is adopted;
		// the refresh token that lost is never sent again.
		if stored := e.awaitPeer(ctx, key, base); stored != nil {
			ent.seen, ent.seenOK = copyToken(stored), true
			ns := unsendable(e.newSnapshot(key, stored))
			if ns.fresh() {
				ent.publish(ns)
				e.logInfo("adopted the token of a concurrent refresh", key, ns.tok)
				return ns, nil
			}
			base = stored
			nt, x = e.call(ctx, key, base)
		}
	}
	if x != nil {
		if !x.Temporary() {
			// Sending this refresh token again cannot help and may be a
			// reuse: nothing more until the key gets a new token.
			if x.Code == "invalid_request" && x.Err == nil {
				x.Err = ErrReauthRequired
			}
			return e.latch(ent, key, base, x, &after)
		}
		e.failed(key, x, &after)
		ent.coolUntil, ent.coolErr = time.Now().Add(cooldown(x)), x
		if early && cur == rejected && cur.auth != nil && time.Now().Before(cur.tok.Expiry) {
			// The token has not expired yet: keep using it, and try
			// again later rather than on every request.
			ent.postpone(cur)
			return cur, nil
		}
		return nil, x
	}
	nt = copyToken(nt)
	if nt.RefreshToken == "" {
		nt.RefreshToken = base.RefreshToken // RFC 6749 §6: the old one stays valid
	}
	if !nt.Expiry.IsZero() && !nt.Expiry.After(time.Now()) {
		// A non-positive expires_in: refreshing again at once would loop,
		// so the token is used until the API rejects it.
		nt.Expiry, nt.ExpiresIn = time.Time{}, 0
	}

	// Step 4: persist before publish. If the save fails the new token is
	// still the only valid one (the server may have invalidated the old
	// refresh token), so it is used from memory and saved again later.
	ns := e.newSnapshot(key, nt)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	serr := e.save(sctx, key, ent, nt)
	scancel()
	switch {
	case errors.Is(serr, ErrConflict):
		// Someone saved a newer token while this refresh ran (a holder
		// whose lease expired, or a store without a lock). The stored
		// token wins; ours is dropped rather than overwrite it.
		return e.adoptAfterConflict(ctx, key, ent, &after)
	case serr != nil:
		ent.pending = ns
		e.saveFailed(key, serr, &after)
		go e.retrySave(key, ent, ns)
	default:
		ent.pending = nil
	}
	// Step 5: publish.
	ent.publish(ns)
	e.logInfo("token refreshed", key, nt)
	if h := e.hooks.Refreshed; h != nil {
		after = append(after, func() { h(key) })
	}
	if ns.auth == nil {
		// Saved, so its refresh token is not lost, but not sendable; it is
		// not refreshed again before its expiry, which would loop.
		e.failed(key, ns.bad, &after)
		return nil, ns.bad
	}
	return ns, nil
}

// latch publishes that refreshing key cannot help, usually because the
// user must log in again: no token-endpoint call until SetToken or a new
// token in the store. A cause that is not an *Error means re-authentication.
func (e *Engine) latch(ent *entry, key string, tok *oauth2.Token, cause error, after *[]func()) (*snapshot, error) {
	x, ok := cause.(*Error)
	if !ok {
		x = &Error{Key: key, Err: fmt.Errorf("%w: %v", ErrReauthRequired, cause)}
	}
	cur := ent.cur.Load()
	ent.publish(&snapshot{tok: tok, latch: x, recheckAt: time.Now().Add(reauthRecheck)})
	if cur != nil && cur.latch != nil {
		return nil, x // still latched: already reported
	}
	if errors.Is(x, ErrReauthRequired) {
		e.logError("re-authentication required", key, x)
	} else {
		e.logError("refresh failed; not retrying with this refresh token", key, x)
	}
	if h := e.hooks.RefreshFailed; h != nil {
		*after = append(*after, func() { h(key, x) })
	}
	if h := e.hooks.ReauthRequired; h != nil && errors.Is(x, ErrReauthRequired) {
		*after = append(*after, func() { h(key, x) })
	}
	return nil, x
}

// call calls the endpoint with base's refresh token, again after a
// temporary failure, up to e.attempts times within ctx's deadline.
func (e *Engine) call(ctx context.Context, key string, base *oauth2.Token) (*oauth2.Token, *Error) {
	delay := retryBase
	for attempt := 1; ; attempt++ {
		nt, err := e.endpoint.Refresh(ctx, copyToken(base))
		if err == nil && (nt == nil || nt.AccessToken == "") {
			err = fmt.Errorf("%w: token endpoint returned no access token", ErrReauthRequired)
		}
		if err == nil {
			return nt, nil
		}
		x := classify(key, err, base)
		if !x.Temporary() || attempt >= e.attempts {
			return nil, x
		}
		wait := max(delay/2+rand.N(delay/2+1), x.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return nil, x // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, x
		}
		delay = min(2*delay, retryMax)
	}
}

// cooldown is how long a key waits after a temporary failure.
func cooldown(x *Error) time.Duration {
	return max(retryBase, x.RetryAfter)
}

// awaitPeer re-reads the store, a few times over about a second, for a
// token newer than base that a concurrent refresh may be about to save.
func (e *Engine) awaitPeer(ctx context.Context, key string, base *oauth2.Token) *oauth2.Token {
	wait := 100 * time.Millisecond
	for range 4 {
		if t, err := e.store.Load(ctx, key); err == nil && t != nil && t.RefreshToken != "" && t.RefreshToken != base.RefreshToken {
			return copyToken(t)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait *= 2
	}
	return nil
}

func (e *Engine) failed(key string, err error, after *[]func()) {
	e.logError("refresh failed", key, err)
	if h := e.hooks.RefreshFailed; h != nil {
		*after = append(*after, func() { h(key, err) })
	}
}

func (e *Engine) saveFailed(key string, cause error, after *[]func()) {
	err := &Error{Key: key, Err: fmt.Errorf("store save: %w", cause)}
	if e.log != nil {
		e.log.Warn("refresh: saving the new token failed; using it from memory and retrying",
			slog.String("key", key), slog.String("error", err.Error()))
	}
	if h := e.hooks.SaveFailed; h != nil {
		*after = append(*after, func() { h(key, err) })
	}
}

// save stores tok for key: with compare-and-swap against the token last
// seen in the store when the store can, else with Save. Called with ent.mu
// held.
func (e *Engine) save(ctx context.Context, key string, ent *entry, tok *oauth2.Token) error {
	var err error
	if cas, ok := e.store.(CompareAndSwapper); ok && ent.seenOK {
		err = cas.CompareAndSwap(ctx, key, ent.seen, tok)
	} else {
		err = e.store.Save(ctx, key, tok)
	}
	if err == nil {
		ent.seen, ent.seenOK = copyToken(tok), true
	}
	return err
}

// adoptAfterConflict publishes the token a compare-and-swap lost to.
func (e *Engine) adoptAfterConflict(ctx context.Context, key string, ent *entry, after *[]func()) (*snapshot, error) {
	ent.pending = nil
	stored, err := e.store.Load(ctx, key)
	if err != nil || stored == nil {
		x := &Error{Key: key, Err: fmt.Errorf("store load after a conflicting save: %w", err), temporary: true}
		ent.seenOK = false
		e.failed(key, x, after)
		return nil, x
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	ns := unsendable(e.newSnapshot(key, copyToken(stored)))
	ent.publish(ns)
	if e.log != nil {
		e.log.Warn("refresh: a newer token was saved during this refresh; adopting it and dropping ours",
			slog.String("key", key), slog.String("access_token", Fingerprint(stored.AccessToken)))
	}
	if ns.auth == nil {
		return nil, ns.bad
	}
	return ns, nil
}

// savePending tries again to save the token whose save failed. Called with
// ent.mu held. If the store meanwhile got a newer token from elsewhere,
// the pending one is dropped and the next refresh adopts the stored one.
func (e *Engine) savePending(ctx context.Context, key string, ent *entry, after *[]func()) {
	err := e.save(ctx, key, ent, ent.pending.tok)
	switch {
	case errors.Is(err, ErrConflict):
		ent.pending, ent.seenOK = nil, false
	case err != nil:
		e.saveFailed(key, err, after)
	default:
		e.logInfo("saved token after earlier failure", key, ent.pending.tok)
		ent.pending = nil
	}
}

// retrySave keeps trying to save s while it is the pending token of the key,
// with exponential backoff, a bounded number of times.
func (e *Engine) retrySave(key string, ent *entry, s *snapshot) {
	delay := saveBackoff
	for range saveRetries {
		time.Sleep(delay)
		delay = min(2*delay, saveMaxDelay)
		var after []func()
		ent.mu.Lock()
		if ent.pending == s {
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			e.savePending(ctx, key, ent, &after)
			cancel()
		}
		done := ent.pending != s
		ent.mu.Unlock()
		for _, f := range after {
			f()
		}
		if done {
			return
		}
	}
}

// newSnapshot prepares t for the hot path.
func (e *Engine) newSnapshot(key string, t *oauth2.Token) *snapshot {
	s := &snapshot{tok: t}
	if !t.Expiry.IsZero() {
		// Clamp the skew to half the lifetime. When the lifetime is not
		// known (a stored token without expires_in), the time left is a
		// lower bound of it.
		life := time.Duration(t.ExpiresIn) * time.Second
		if life <= 0 {
			life = time.Until(t.Expiry)
		}
		skew := min(e.skew, life/2)
		s.refreshAt = t.Expiry.Add(-max(skew, 0))
	}
	typ := t.Type()
	if t.AccessToken == "" || !headerSafe(t.AccessToken) || !headerSafe(typ) {
		s.bad = &Error{Key: key, Err: ErrInvalidToken}
		return s
	}
	s.auth = []string{typ + " " + t.AccessToken}
	return s
}

// unsendable marks a snapshot whose access token is missing or unsafe as due
// for refresh at once: its refresh token may still be good. Not used for a
// token that a refresh just returned, which would refresh in a loop.
func unsendable(s *snapshot) *snapshot {
	if s.bad != nil {
		s.refreshAt = time.Unix(0, 0)
	}
	return s
}

// headerSafe reports whether v can be sent in a header field without
// changing its meaning: no control characters (CR, LF, NUL and the others).
func headerSafe(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// classify turns an endpoint's error into an *Error for key: which failures
// need a new login, which are the client's configuration, which are
// temporary. The response body decides first, then the status.
func classify(key string, err error, base *oauth2.Token) *Error {
	var x *Error
	var ne net.Error
	if errors.As(err, &x) {
		c := *x
		x = &c
	} else {
		x = &Error{Err: err}
	}
	x.Key = key
	x.Description = sanitizeDescription(x.Description, base.AccessToken, base.RefreshToken)
	if x.Err == nil {
		switch x.Code {
		case "invalid_grant":
			x.Err = ErrReauthRequired
		case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
			x.Err = ErrClientConfig
		case "":
			switch {
			case x.StatusCode == http.StatusBadRequest:
				// A 400 without an OAuth code is what some servers
				// (WSO2's HTML error page) send for an expired refresh
				// token; it will not be sent again either way.
				x.Err = ErrReauthRequired
			case x.StatusCode == http.StatusUnauthorized, x.StatusCode == http.StatusForbidden,
				x.StatusCode == http.StatusNotFound, x.StatusCode == http.StatusMethodNotAllowed,
				x.StatusCode >= 300 && x.StatusCode <= 399:
				// The client is refused, or the URL is wrong.
				x.Err = ErrClientConfig
			}
		}
	}
	x.temporary = x.Code == "" && !errors.Is(x, ErrReauthRequired) && !errors.Is(x, ErrClientConfig) &&
		(x.temporary || temporaryStatus(x.StatusCode) ||
			x.StatusCode == 0 && (errors.As(x.Err, &ne) || errors.Is(x.Err, context.DeadlineExceeded)))
	return x
}

func (e *Engine) logInfo(msg, key string, t *oauth2.Token) {
	if e.log == nil {
		return
	}
	e.log.Info("refresh: "+msg, slog.String("key", key),
		slog.String("access_token", Fingerprint(t.AccessToken)),
		slog.Time("expiry", t.Expiry))
}

func (e *Engine) logError(msg, key string, err error) {
	if e.log == nil {
		return
	}
	attrs := []any{slog.String("key", key)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.log.Error("refresh: "+msg, attrs...)
}
