package redisstore

import (
	"time"

	"golang.org/x/oauth2"
)

// PauseRenewal makes the lease renewals of s skip their turns while paused
// is true, so that a test can let a held lease expire as it would in a
// paused process.
func PauseRenewal(s *Store, paused bool) { s.renewPaused.Store(paused) }

// TokenKey and LockKey return the Redis keys of key's token and lock.
func TokenKey(s *Store, key string) string { return s.tokenKey(key) }
func LockKey(s *Store, key string) string  { return s.lockKey(key) }

// FromHash returns what Load returns for key when its Redis hash holds the
// fields m, without Redis.
func FromHash(s *Store, key string, m map[string]string) (*oauth2.Token, error) {
	return fromHash(s.tokenKey(key), key, m)
}

// Hash returns the fields that Save stores for key's token.
func Hash(key string, tok *oauth2.Token) (map[string]string, error) {
	data, extra, err := encode(key, tok)
	if err != nil {
		return nil, err
	}
	m := map[string]string{fieldJSON: string(data), fieldCAS: fingerprint(tok)}
	if extra != "" {
		m[fieldExtra] = extra
	}
	return m, nil
}

// WakeStats tells what the pub/sub side of a Store holds now.
type WakeStats struct {
	Conns    int   // pub/sub connections open
	Channels int   // channels in the table (with waiters, or replies due)
	Live     int   // channels with waiters whose subscription is confirmed
	Opened   int64 // pub/sub connections opened, ever
	Woken    int64 // release messages heard, ever
}

// Wake returns s's WakeStats.
func Wake(s *Store) WakeStats {
	h := &s.wakes
	h.mu.Lock()
	defer h.mu.Unlock()
	st := WakeStats{Conns: len(h.conns), Channels: len(h.subs), Opened: h.opened.Load(), Woken: h.woken.Load()}
	for _, sub := range h.subs {
		if sub.live && sub.refs > 0 {
			st.Live++
		}
	}
	return st
}

// DropPublish makes the releases of s announce nothing while drop is true,
// as if every wake-up were lost.
func DropPublish(s *Store, drop bool) { s.dropPublish.Store(drop) }

// SetWakeLinger sets how long a pub/sub connection of s stays open after
// its last waiter left, for the connections opened from now on.
func SetWakeLinger(s *Store, d time.Duration) {
	s.wakes.mu.Lock()
	s.wakes.linger = d
	s.wakes.mu.Unlock()
}

// WakeChannel returns the pub/sub channel of key's lock.
func WakeChannel(s *Store, key string) string { return s.lockKey(key) + freeSuffix }

// Prefix returns the prefix of s's Redis keys.
func Prefix(s *Store) string { return s.prefix }
