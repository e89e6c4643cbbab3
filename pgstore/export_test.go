package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/oauth2"
)

// LockIDForTest returns the advisory lock id of key, so that tests can find
// the lock in pg_locks.
func (s *Store) LockIDForTest(ctx context.Context, key string) (int64, error) {
	ns, err := s.namespace(ctx)
	if err != nil {
		return 0, err
	}
	return lockID(ns, key), nil
}

// NewErrorForTest returns the error of op on table that failed with err.
func NewErrorForTest(ctx context.Context, op, table string, err error) error {
	return newError(ctx, op, table, err)
}

// TokenFromRow returns what Load returns for key from table when the row
// it read holds these columns.
func TokenFromRow(table, key, rowKey, accessToken, tokenType, refreshToken string, expiry pgtype.Timestamptz, expiresIn int64) (*oauth2.Token, error) {
	r := row{key: rowKey, accessToken: accessToken, tokenType: tokenType, refreshToken: refreshToken, expiry: expiry, expiresIn: expiresIn}
	return r.token(table, key)
}

// TokenFromRowExtra is TokenFromRow for a row whose extra column holds
// extra (NULL if nil).
func TokenFromRowExtra(table, key, accessToken, refreshToken string, extra *string) (*oauth2.Token, error) {
	r := row{key: key, accessToken: accessToken, refreshToken: refreshToken}
	if extra != nil {
		r.extra = pgtype.Text{String: *extra, Valid: true}
	}
	return r.token(table, key)
}

// SilenceUnlockForTest makes the unlocks of s send no notification, as a
// holder that dies, or one of an earlier release, sends none.
func SilenceUnlockForTest(s *Store) { s.silent.Store(true) }

// DeafListenerForTest makes the listener of s LISTEN to another channel,
// so that it never hears a notification, as behind a transaction pooler.
// It must be called before s waits for a lock.
func DeafListenerForTest(s *Store) {
	s.mu.Lock()
	s.deaf = true
	s.mu.Unlock()
}

// SetListenIdleForTest sets how long the listener of s goes on without
// waiters. It must be called before s waits for a lock.
func SetListenIdleForTest(s *Store, d time.Duration) {
	s.mu.Lock()
	s.listenIdle = d
	s.mu.Unlock()
}

// ListenerState is what ListenerForTest reports of a Store's listener.
type ListenerState struct {
	Running   bool   // its goroutine runs
	Listening bool   // it listens, and heard its probe
	PID       uint32 // its backend, if listening
	Sessions  int    // connections that have listened
	Failures  int    // sessions that failed (lost, or never heard their probe)
	Waiters   int    // Locks waiting
}

// ListenerForTest returns the state of the listener of s; the zero state
// if s never waited.
func ListenerForTest(s *Store) ListenerState {
	s.mu.Lock()
	l := s.lis
	s.mu.Unlock()
	if l == nil {
		return ListenerState{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return ListenerState{Running: l.running, Listening: l.listening, PID: l.pid, Sessions: l.sessions, Failures: l.failures, Waiters: l.n}
}

// ListenChannelForTest returns the notification channel of the locks of
// s's table.
func ListenChannelForTest(ctx context.Context, s *Store) (string, error) {
	ns, err := s.namespace(ctx)
	return channelName(ns), err
}
