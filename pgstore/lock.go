package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// unlockTimeout bounds an unlock: the pg_advisory_unlock, and closing the
// connection if that fails.
const unlockTimeout = 2 * time.Second

// Lock implements [refresh.Locker] with a session-level advisory lock
// (pg_try_advisory_lock) whose 64-bit id is a hash of the table's schema
// and name and of key. It works whether or not key has a row.
//
// Lock takes a connection from the pool for itself and keeps it, out of
// the pool, until unlock: advisory locks belong to the session that took
// them. unlock releases the lock, notifies its waiters, in every process
// (pg_notify), and returns the connection; if it cannot (the connection
// broke, the server does not answer within 2 seconds) it closes the
// connection, and the server releases the lock when the session ends. If
// the process dies, the server sees its connection close and releases the
// lock too.
//
// While another session holds the lock, Lock waits for the holder's
// notification, received by the Store's listener (see the package
// documentation), and tries again when it comes, without holding a
// connection between tries. It also tries again after a pause, about a
// second (or [Options.LockPoll] if longer) while the listener is
// listening, up to [Options.LockPoll] while it is not: a holder that dies
// sends no notification. It returns when it gets the lock or ctx ends. At
// most MaxConns-1 locks of one Store are held or being tried at a time, so
// that holders always leave a connection for their own Load and
// CompareAndSwap; more wait for a turn.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	ns, err := s.namespace(ctx)
	if err != nil {
		return nil, err
	}
	id := lockID(ns, key)
	if err := s.takeSlot(ctx, true); err != nil {
		return nil, err
	}
	conn, err := s.tryLock(ctx, "lock", id)
	if err != nil || conn != nil {
		return s.unlocker(conn, ns, id), err
	}
	return s.wait(ctx, ns, id)
}

// wait waits for the lock id of the table ns, which another session
// holds: see Lock. Its waiter is registered with the listener before each
// try, so that a notification sent after a try failed wakes it.
func (s *Store) wait(ctx context.Context, ns string, id int64) (func(), error) {
	l := s.listener(ns)
	w := l.add(id)
	defer l.remove(w)
	delay := min(2*time.Millisecond, s.poll)
	for {
		listening := l.isListening()
		if err := s.takeSlot(ctx, true); err != nil {
			return nil, err
		}
		conn, err := s.tryLock(ctx, "lock", id)
		if err != nil || conn != nil {
			return s.unlocker(conn, ns, id), err
		}
		pause := max(s.poll, slowPoll) // a notification will come
		if !listening {
			pause, delay = delay, min(2*delay, s.poll)
		}
		// Jitter, so that waiters do not poll in step; never below the
		// floor, so that waiting never becomes a busy loop.
		t := time.NewTimer(max(minLockPoll, pause/2+rand.N(pause/2+1)))
		select {
		case <-w.wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("pgstore: lock in %s: %w", s.ident, ctx.Err())
		}
		t.Stop()
	}
}

// TryLock implements [refresh.TryLocker]: one pg_try_advisory_lock of the
// lock Lock takes. If another session (of this Store or any other) holds
// it, TryLock returns nil, false and a nil error.
//
// If the Store already holds or is taking as many locks as it may
// (MaxConns-1, see Lock), TryLock does not wait for one of them to end: it
// returns an error, as it cannot tell whether the lock is free.
func (s *Store) TryLock(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	ns, err := s.namespace(ctx)
	if err != nil {
		return nil, false, err
	}
	id := lockID(ns, key)
	if err := s.takeSlot(ctx, false); err != nil {
		return nil, false, err
	}
	conn, err := s.tryLock(ctx, "try-lock", id)
	if err != nil || conn == nil {
		return nil, false, err
	}
	return s.unlocker(conn, ns, id), true, nil
}

// takeSlot takes one of the slots that bound the connections the Store's
// locks hold, waiting for one until ctx ends if wait is true, else
// failing at once if none is free.
func (s *Store) takeSlot(ctx context.Context, wait bool) error {
	if !wait {
		select {
		case s.slots <- struct{}{}:
			return nil
		default:
			return fmt.Errorf("pgstore: try-lock in %s: the store holds or is taking %d locks, all its pool allows", s.ident, cap(s.slots))
		}
	}
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pgstore: lock in %s: %w", s.ident, ctx.Err())
	}
}

// tryLock tries once to take the advisory lock id, with a slot the caller
// took. If it does, it returns the connection that holds it, which keeps
// the slot; otherwise it returns nil and gives the slot back. op names the
// operation in errors.
func (s *Store) tryLock(ctx context.Context, op string, id int64) (*pgxpool.Conn, error) {
	var (
		conn *pgxpool.Conn
		got  bool
	)
	err := s.retry(ctx, func() error {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", id).Scan(&got); err != nil {
			// The server may have granted the lock before the error (a
			// context that ended while the answer was on its way):
			// end the session, and with it any lock it holds.
			discard(ctx, c)
			return err
		}
		conn = c
		return nil
	})
	switch {
	case err != nil:
		<-s.slots
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pgstore: %s in %s: %w", op, s.ident, ctx.Err())
		}
		return nil, newError(ctx, op, s.ident, err)
	case !got:
		conn.Release()
		<-s.slots
		return nil, nil
	}
	return conn, nil
}

// unlocker returns the unlock func of the lock id of the table ns held by
// conn, or nil if conn is nil. The unlock notifies the waiters of the
// table's channel, with the lock id as the payload, when the lock is free.
func (s *Store) unlocker(conn *pgxpool.Conn, ns string, id int64) func() {
	if conn == nil {
		return nil
	}
	q, args := "SELECT pg_advisory_unlock($1) FROM pg_notify($2, $3)", []any{id, channelName(ns), strconv.FormatInt(id, 10)}
	if s.silent.Load() {
		q, args = "SELECT pg_advisory_unlock($1)", args[:1]
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			defer func() { <-s.slots }()
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			var released bool
			err := conn.QueryRow(ctx, q, args...).Scan(&released)
			if err != nil || !released {
				// The session is broken or no longer holds the lock
				// (terminated, or reset behind our back). Ending it
				// is the only sure way not to leave a lock behind,
				// and a broken connection must not go back to the
				// pool anyway.
				discard(ctx, conn)
				return
			}
			conn.Release()
		})
	}
}

// discard closes c and hands it back to the pool, which destroys closed
// connections instead of reusing them. Closing is bounded by ctx (an ended
// ctx still closes the socket).
func discard(ctx context.Context, c *pgxpool.Conn) {
	c.Conn().Close(ctx)
	c.Release()
}

// namespace returns "schema\x00table" of the store's table as the server
// resolves it, so that Stores configured with and without the schema (found
// through search_path) take the same locks. It is looked up once.
func (s *Store) namespace(ctx context.Context) (string, error) {
	s.mu.Lock()
	ns := s.lockNS
	s.mu.Unlock()
	if ns != "" {
		return ns, nil
	}
	var schema, table string
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx,
			"SELECT n.nspname, c.relname FROM pg_catalog.pg_class c"+
				" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"+
				" WHERE c.oid = pg_catalog.to_regclass($1)", s.ident).Scan(&schema, &table)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("pgstore: lock in %s: %w", s.ident, ErrNoTable)
	case err != nil:
		if ctx.Err() != nil {
			return "", fmt.Errorf("pgstore: lock in %s: %w", s.ident, ctx.Err())
		}
		return "", newError(ctx, "lock", s.ident, err)
	}
	ns = schema + "\x00" + table
	s.mu.Lock()
	s.lockNS = ns
	s.mu.Unlock()
	return ns, nil
}

// lockID is the advisory lock id of key in the table ns: the first 8 bytes
// of a SHA-256, so that ids of different keys and tables collide with
// probability 2⁻⁶⁴ (and a collision only makes two keys wait for each
// other).
func lockID(ns, key string) int64 {
	h := sha256.New()
	h.Write([]byte("oauthkit/refresh/pgstore\x00"))
	h.Write([]byte(ns))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// channelName is the LISTEN/NOTIFY channel of the locks of the table ns:
// "pgstore_" and 32 hex digits of a SHA-256, a lower-case name of 40
// bytes (channel names are identifiers, at most 63 bytes) whatever the
// table's name.
func channelName(ns string) string {
	h := sha256.Sum256([]byte("oauthkit/refresh/pgstore channel\x00" + ns))
	return "pgstore_" + hex.EncodeToString(h[:16])
}
