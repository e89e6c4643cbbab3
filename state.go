package refresh

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// entry is the state of one key.
type entry struct {
	// cur is the token in use, nil until the key is first loaded. A
	// published snapshot's token never changes (only its due flag and
	// timer do); a new token comes in a new snapshot, so pointer identity
	// is the token's generation.
	cur atomic.Pointer[snapshot]

	mu sync.Mutex // serializes refreshes, SetToken and saves of this key

	// pending is the newest token of the key while it is not known to be
	// in the store: set as soon as a refresh returns it (so that nothing
	// that fails afterwards can lose it), published once its save was
	// tried, and cleared when a save succeeds or the store turns out to
	// hold someone else's newer token. While it is set the store is behind
	// memory and must not be trusted for this key. Guarded by mu.
	pending *snapshot

	// tried lists the tokens this engine tried to save since the store
	// last confirmed one (pending's is the last): a token of these found
	// in the store is ours, not a peer's newer one (see ours). Nil while
	// nothing is pending. Guarded by mu.
	tried []*oauth2.Token

	// held is the unlock of the key's cross-process lock, kept from the
	// flight whose save failed until pending is saved, so that no other
	// process spends the store's older refresh token meanwhile. The next
	// flight of this engine takes it over (the store's locks are not
	// reentrant). Set only while pending is. Guarded by mu.
	held func()

	// After a temporary failure, no refresh before coolUntil; coolErr is
	// the failure. Guarded by mu.
	coolUntil time.Time
	coolErr   *Error

	// seen is the token last known to be in the store (nil: none), the
	// "old" of a compare-and-swap save; valid when seenOK. Guarded by mu.
	seen   *oauth2.Token
	seenOK bool

	// pausedUntil (Unix nanoseconds) and strikes: while refreshed tokens
	// of the key are rejected before the API ever accepts one, rejections
	// are not refreshed until pausedUntil (see pause.go).
	pausedUntil atomic.Int64
	strikes     atomic.Int32

	stats *gauges // the engine's
}

// state is what a snapshot's token can be used for.
type state uint8

const (
	// sendable: the token goes in requests as it is, until it is due.
	sendable state = iota
	// unsendable: the access token cannot go in a header (it is missing or
	// unsafe), but its refresh token may still get a good one, at once. A
	// token from the store or from SetToken.
	unsendable
	// unusable: as unsendable, but the token came from a refresh: it is not
	// refreshed again before its expiry, which would loop.
	unusable
	// latched: refreshing cannot help (ErrReauthRequired, ErrClientConfig)
	// until the key gets a new token; the store is read again at recheckAt.
	latched
)

// snapshot is one published token of a key with what the hot path needs.
type snapshot struct {
	tok   *oauth2.Token // private copy; nil only when latched without a token
	state state

	// auth is the Authorization header value, shared read-only by all
	// requests; set only when sendable.
	auth []string

	// err says why the token cannot be sent: ErrInvalidToken when
	// unsendable or unusable, the latch when latched.
	err error

	refreshAt time.Time // sendable: when to refresh proactively; zero: only on 401
	recheckAt time.Time // latched: when the store may be read again

	// due is set by timer at refreshAt, so that the hot path reads a flag
	// instead of the clock. The timer runs on the monotonic clock: after
	// a machine's sleep it may fire late, and the API's 401 then triggers
	// the refresh instead.
	due   atomic.Bool
	timer *time.Timer // guarded by entry.mu; stopped when s is replaced

	// refreshed is when a refresh of this engine returned tok (zero for a
	// token from the store or SetToken), and mark what the API made of it
	// (untested, accepted, struck): a refreshed token that the API rejects
	// before it ever accepted it says refreshing does not help (see
	// pause.go).
	refreshed time.Time
	mark      atomic.Uint32
}

// usable reports whether the published snapshot s can be sent as is. It is
// the whole cost of the hot path: no lock, no clock, no allocation.
func (s *snapshot) usable() bool {
	return s != nil && s.state == sendable && !s.due.Load()
}

// fresh is usable for a snapshot that is not published yet.
func (s *snapshot) fresh() bool {
	return s.state == sendable && (s.refreshAt.IsZero() || time.Now().Before(s.refreshAt))
}

// holds reports whether s is a latch that still holds at now.
func (s *snapshot) holds(now time.Time) bool {
	return s != nil && s.state == latched && now.Before(s.recheckAt)
}

// replaced returns the key's current snapshot if it replaced s and can be
// sent as it is, else nil: the generation check. A caller whose token was
// rejected uses the current one instead of refreshing again.
func (ent *entry) replaced(s *snapshot) *snapshot {
	if cur := ent.cur.Load(); cur != s && cur.usable() {
		return cur
	}
	return nil
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
	if !s.refreshAt.IsZero() && s.state == sendable {
		if d := time.Until(s.refreshAt); d > 0 {
			s.timer = time.AfterFunc(d, func() { s.due.Store(true) })
		} else {
			s.due.Store(true)
		}
	}
	old := ent.cur.Swap(s)
	if old != nil && old.timer != nil {
		old.timer.Stop()
	}
	ent.stats.published(old, s)
}

// newSnapshot prepares t, from the store or SetToken, for the hot path. An
// access token that cannot be sent leaves the snapshot unsendable: its
// refresh token may mend it.
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
		s.state, s.err = unsendable, &Error{Key: key, Err: ErrInvalidToken}
		return s
	}
	s.auth = []string{typ + " " + t.AccessToken}
	return s
}

// refreshedSnapshot is newSnapshot for t, which a refresh just returned.
func (e *Engine) refreshedSnapshot(key string, t *oauth2.Token) *snapshot {
	s := e.newSnapshot(key, t)
	s.refreshed = time.Now()
	if s.state == unsendable {
		s.state = unusable
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
