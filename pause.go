package refresh

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// ErrRefreshPaused means the API rejected tokens of the key that a refresh
// had just returned, before it accepted any: refreshing does not help (a
// wrong audience, a misconfigured gateway), and each refresh would only
// spend a token-endpoint call and rotate the lineage. From the second such
// token in a row on, the engine does not refresh the key for a pause of 5
// seconds, doubled after each such token up to 10 minutes, and reset once the API accepts a token of the
// key or on [Engine.SetToken]. Meanwhile requests still go out with the
// current token (through a [Transport], the API's 401 is returned as it is)
// and a newer token in memory or in the store is still adopted. An
// [EventPaused] event reports each rejection handed back.
var ErrRefreshPaused = errors.New("refresh: the API rejects freshly refreshed tokens; refreshing is paused")

const (
	// A token a refresh returned counts as rejected at once when the API
	// rejects it within freshWindow, before accepting it.
	freshWindow = time.Minute
	pauseBase   = 5 * time.Second
	pauseMax    = 10 * time.Minute
)

// What the API made of a snapshot's token (snapshot.mark).
const (
	untested uint32 = iota
	accepted
	struck // rejected at once; counted in entry.strikes
)

// accepted records that the API accepted a request with s, the first time
// it did: the key's pause, if any, ends.
func (e *Engine) accepted(key string, s *snapshot) {
	if s.mark.Swap(accepted) != accepted {
		if ent := e.lookup(key); ent != nil {
			if x := ent.x.Load(); x != nil && x.strikes.Load() != 0 {
				ent.unpause()
			}
		}
	}
}

// unpause ends the key's pause, and forgets its strikes.
func (ent *entry) unpause() {
	if x := ent.x.Load(); x != nil {
		x.strikes.Store(0)
		x.pausedUntil.Store(0)
	}
}

// strike counts a rejection of s, a token a refresh of this engine returned
// moments ago, before the API accepted any request with it. From the
// second such token in a row on, refreshing the key is paused: one refresh
// is always tried, for a token revoked right after it was issued (the
// refresh then tells, with invalid_grant). It reports whether s started a
// pause.
func (e *Engine) strike(ctx context.Context, key string, ent *entry, s *snapshot, resp *http.Response) bool {
	if s.refreshed == 0 || mono()-s.refreshed > int64(freshWindow) || !s.mark.CompareAndSwap(untested, struck) {
		return false
	}
	x := ent.trouble()
	n := x.strikes.Add(1)
	if n < 2 {
		return false
	}
	d := min(pauseBase<<min(n-2, 8), pauseMax) // 5 s << 7 passes pauseMax
	x.pausedUntil.Store(time.Now().Add(d).UnixNano())
	e.logWarn("the API rejected the tokens that refreshes had just returned; refreshing this key is paused", key, s.tok, nil)
	e.emitPaused(ctx, key, s, resp, d)
	return true
}

// paused returns how long refreshing the key stays paused, or 0.
func (ent *entry) paused() time.Duration {
	x := ent.x.Load()
	if x == nil {
		return 0
	}
	until := x.pausedUntil.Load()
	if until == 0 {
		return 0
	}
	return max(time.Until(time.Unix(0, until)), 0)
}

// emitPaused reports a rejection of s handed back without a refresh.
func (e *Engine) emitPaused(ctx context.Context, key string, s *snapshot, resp *http.Response, d time.Duration) {
	ev := e.startEvent(EventPaused, key, TriggerRejected, s)
	ev.Context, ev.Pause, ev.Err = ctx, d, &Error{Key: key, Err: ErrRefreshPaused}
	if resp != nil {
		ev.StatusCode = resp.StatusCode
	}
	e.emit(ev)
}
