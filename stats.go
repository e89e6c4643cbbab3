package refresh

import (
	"errors"
	"sync/atomic"
)

// Stats is a snapshot of what an [Engine] holds, for gauges.
type Stats struct {
	// Keys is the number of keys with a token (or a failure) in memory.
	Keys int
	// ReauthRequired is the number of keys awaiting re-authentication.
	ReauthRequired int
	// PendingSaves is the number of keys whose newest token is not in the
	// store yet: it lives only in this process's memory while the save is
	// retried, and the key's cross-process lock is kept meanwhile. The
	// gauge to alert on.
	PendingSaves int
	// EventsDropped counts the events not delivered because
	// [Config.OnEvent] fell too far behind.
	EventsDropped uint64
}

// Stats returns the engine's current counts. It takes no lock and costs the
// same for any number of keys.
func (e *Engine) Stats() Stats {
	return Stats{
		Keys:           int(e.stats.keys.Load()),
		ReauthRequired: int(e.stats.reauth.Load()),
		PendingSaves:   int(e.stats.pending.Load()),
		EventsDropped:  e.events.dropped.Load(),
	}
}

// gauges are the counts behind Stats, kept as snapshots are published and
// tokens become pending.
type gauges struct {
	keys, reauth, pending atomic.Int64
}

// published counts the replacement of old by s as the key's snapshot.
func (g *gauges) published(old, s *snapshot) {
	if old == nil {
		g.keys.Add(1)
	}
	if s == nil {
		g.keys.Add(-1) // removed
	}
	if awaitsLogin(old) != awaitsLogin(s) {
		if awaitsLogin(s) {
			g.reauth.Add(1)
		} else {
			g.reauth.Add(-1)
		}
	}
}

func awaitsLogin(s *snapshot) bool {
	return s != nil && s.state == latched && errors.Is(s.why, ErrReauthRequired)
}
