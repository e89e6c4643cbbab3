package refresh

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// entry is the state of one key. It is kept small (64 bytes): a million
// keys hold a million of them. What only a key in trouble needs lives in
// x.
type entry struct {
	key string // set once, before the entry is in the table

	// cur is the token in use, nil until the key is first loaded. A
	// published snapshot's token never changes (only its due flag does); a
	// new token comes in a new snapshot, so pointer identity is the token's
	// generation.
	cur atomic.Pointer[snapshot]

	// stored is the key's token in the engine's own store (see ownStore),
	// used when Config.Store is nil; nil otherwise, or if it has none.
	stored atomic.Pointer[oauth2.Token]

	mu sync.Mutex // serializes refreshes, SetToken, saves and removal of this key

	// seen is the token last known to be in the store (nil: none), the
	// "old" of a compare-and-swap save; valid when seenOK. It is shared with
	// the snapshot of the same token: tokens are never modified once
	// published. Guarded by mu.
	seen *oauth2.Token

	// x holds what a key in trouble needs: a token whose save is pending,
	// a cooldown, a pause. Nil for a key that has none.
	x atomic.Pointer[trouble]

	// idle is set by the idle sweep and cleared by every use of the key
	// (see sweep.go): a key still idle at the next sweep is evicted.
	idle atomic.Bool

	seenOK bool // guarded by mu
	gone   bool // removed from the engine: callers look the key up again; guarded by mu
}

// trouble is the state of a key whose save failed, whose refresh failed
// moments ago, or whose refreshed tokens the API rejects.
type trouble struct {
	// pending is the newest token of the key while it is not known to be
	// in the store: set as soon as a refresh returns it (so that nothing
	// that fails afterwards can lose it), published once its save was
	// tried, and cleared when a save succeeds or the store turns out to
	// hold someone else's newer token. While it is set the store is behind
	// memory and must not be trusted for this key. Guarded by entry.mu.
	pending *snapshot

	// tried lists the tokens this engine tried to save since the store
	// last confirmed one (pending's is the last): a token of these found
	// in the store is ours, not a peer's newer one (see ours). Nil while
	// nothing is pending. Guarded by entry.mu.
	tried []*oauth2.Token

	// held is the unlock of the key's cross-process lock, kept from the
	// flight whose save failed until pending is saved, so that no other
	// process spends the store's older refresh token meanwhile. The next
	// flight of this engine takes it over (the store's locks are not
	// reentrant). Set only while pending is. Guarded by entry.mu.
	held func()

	// After a temporary failure, no refresh before coolUntil; coolErr is
	// the failure. Guarded by entry.mu.
	coolUntil time.Time
	coolErr   *Error

	// pausedUntil (Unix nanoseconds) and strikes: while refreshed tokens
	// of the key are rejected before the API ever accepts one, rejections
	// are not refreshed until pausedUntil (see pause.go).
	pausedUntil atomic.Int64
	strikes     atomic.Int32
}

// trouble returns ent.x, creating it if needed.
func (ent *entry) trouble() *trouble {
	if x := ent.x.Load(); x != nil {
		return x
	}
	ent.x.CompareAndSwap(nil, new(trouble))
	return ent.x.Load()
}

// pending returns the key's token whose save is pending, or nil. Called
// with ent.mu held.
func (ent *entry) pending() *snapshot {
	if x := ent.x.Load(); x != nil {
		return x.pending
	}
	return nil
}

// tidy drops ent.x once the key is out of trouble, so that a million keys
// that once had a failure do not keep its memory. A strike counted at the
// same moment may be lost: one more refresh before a pause. Called with
// ent.mu held.
func (ent *entry) tidy() {
	x := ent.x.Load()
	if x != nil && x.pending == nil && x.held == nil && !time.Now().Before(x.coolUntil) &&
		x.strikes.Load() == 0 && x.pausedUntil.Load() == 0 {
		ent.x.CompareAndSwap(x, nil)
	}
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
	// until the key gets a new token; the store is read again at
	// refreshAt.
	latched
	// closed: the engine is closed.
	closed
)

// What a snapshot's due flag says.
const (
	notDue  uint32 = iota // the token is not due for refresh yet
	due                   // it is: the next request starts an early refresh
	renewed               // an early refresh of it has been started
)

// snapshot is one published token of a key with what the hot path needs.
// It is kept small (64 bytes), one per key.
type snapshot struct {
	// tok is a private copy, nil only when latched without a token. Its
	// AccessToken shares the bytes of hdr[0]. It is never modified.
	tok *oauth2.Token

	// hdr holds the Authorization header value, shared read-only by all
	// requests; set only when sendable.
	hdr [1]string

	// why says why the token cannot be sent when latched (the latch) or
	// unsendable or unusable (ErrInvalidToken).
	why *Error

	// refreshAt (monotonic, see mono) is when to refresh a sendable token
	// proactively, 0 for only on a 401; when a latched key may read the
	// store again.
	refreshAt atomic.Int64

	// refreshed is when a refresh of this engine returned tok (monotonic;
	// 0 for a token from the store or SetToken), and mark what the API
	// made of it (untested, accepted, struck): a refreshed token that the
	// API rejects before it ever accepted it says refreshing does not help
	// (see pause.go).
	refreshed int64
	mark      atomic.Uint32

	// due is set by the engine's schedule at refreshAt, so that the hot
	// path reads a flag instead of the clock (notDue, due, renewed).
	due  atomic.Uint32
	slot int32 // 1 + index in the schedule's heap, 0 if not in it; guarded by schedule.mu

	state state
}

// usable reports whether the published snapshot s can be sent as is. It is
// the whole cost of the hot path: no lock, no clock, no allocation.
func (s *snapshot) usable() bool {
	return s != nil && s.state == sendable && s.due.Load() == notDue
}

// auth is the Authorization header's value slice; it shares s.hdr.
func (s *snapshot) auth() []string { return s.hdr[:] }

// valid reports whether s can still be sent at now: it is sendable and
// not expired. A due token is valid until its expiry.
func (s *snapshot) valid(now time.Time) bool {
	return s != nil && s.state == sendable && (s.tok.Expiry.IsZero() || now.Before(s.tok.Expiry))
}

// fresh is usable for a snapshot that is not published yet.
func (s *snapshot) fresh() bool {
	return s.state == sendable && (s.refreshAt.Load() == 0 || mono() < s.refreshAt.Load())
}

// holds reports whether s is a latch that still holds.
func (s *snapshot) holds() bool {
	return s != nil && s.state == latched && mono() < s.refreshAt.Load()
}

// err is why s cannot be sent, for a snapshot that is not sendable.
func (s *snapshot) err(key string) *Error {
	switch {
	case s.why != nil:
		return s.why
	case s.state == closed:
		return &Error{Key: key, Err: ErrClosed}
	}
	return &Error{Key: key, Err: ErrInvalidToken}
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

// publish makes s the current snapshot of ent and schedules its refresh.
// Called with ent.mu held.
func (e *Engine) publish(ent *entry, s *snapshot) {
	old := ent.cur.Swap(s)
	if old != nil {
		e.sched.remove(old)
	}
	if s.refreshAt.Load() != 0 && s.state == sendable {
		e.sched.add(s)
	}
	e.stats.published(old, s)
}

// postpone schedules the refresh of the current snapshot s again after an
// early refresh that failed or found another process refreshing: halfway
// to its expiry, at most earlyRetry ahead. Called with ent.mu held.
func (e *Engine) postpone(s *snapshot) {
	e.sched.remove(s)
	d := min(time.Until(s.tok.Expiry)/2, earlyRetry)
	s.refreshAt.Store(mono() + int64(max(d, time.Millisecond)))
	s.due.Store(notDue)
	e.sched.add(s)
}

// newSnapshot prepares t, a private copy from the store or SetToken that
// nobody else sees yet, for the hot path. An access token that cannot be
// sent leaves the snapshot unsendable: its refresh token may mend it.
func (e *Engine) newSnapshot(key string, t *oauth2.Token) *snapshot {
	s := &snapshot{tok: t}
	if !t.Expiry.IsZero() {
		// Jitter: up to half the skew earlier, so that the keys of a
		// fleet, and its processes, do not all refresh at once; never
		// before half the lifetime.
		life, skew := e.skewOf(t)
		lead := min(skew+rand.N(skew/2+1), max(life/2, skew))
		s.refreshAt.Store(max(mono()+int64(time.Until(t.Expiry)-lead), 1))
	}
	typ := t.Type()
	if t.AccessToken == "" || !headerSafe(t.AccessToken) || !headerSafe(typ) {
		s.state, s.why = unsendable, &Error{Key: key, Err: ErrInvalidToken}
		return s
	}
	// One copy of the access token: the header value's.
	s.hdr[0] = typ + " " + t.AccessToken
	t.AccessToken = s.hdr[0][len(typ)+1:]
	return s
}

// refreshTime is when the engine refreshes t before its expiry, without
// the jitter: its expiry minus the skew. Zero for never.
func (e *Engine) refreshTime(t *oauth2.Token) time.Time {
	if t.Expiry.IsZero() {
		return time.Time{}
	}
	_, skew := e.skewOf(t)
	return t.Expiry.Add(-skew)
}

// skewOf returns t's lifetime and the configured skew clamped to half of
// it. When the lifetime is not known (a stored token without expires_in),
// the time left is a lower bound of it.
func (e *Engine) skewOf(t *oauth2.Token) (life, skew time.Duration) {
	life = time.Duration(t.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Until(t.Expiry)
	}
	return life, max(min(e.skew, life/2), 0)
}

// refreshedSnapshot is newSnapshot for t, which a refresh just returned.
func (e *Engine) refreshedSnapshot(key string, t *oauth2.Token) *snapshot {
	s := e.newSnapshot(key, t)
	s.refreshed = mono()
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

// monoBase is the origin of mono.
var monoBase = time.Now()

// mono returns the monotonic clock's time in nanoseconds, since monoBase
// plus monoOffset: refresh times do not move when the wall clock is set,
// and 0 can mean "none". The offset keeps it positive where time.Now is
// earlier than monoBase: in a testing/synctest bubble, whose clock starts
// in 2000.
func mono() int64 { return int64(time.Since(monoBase)) + monoOffset }

const monoOffset = 1 << 62 // 146 years
