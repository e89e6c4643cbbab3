package pgstore

import "context"

// LockIDForTest returns the advisory lock id of key, so that tests can find
// the lock in pg_locks.
func (s *Store) LockIDForTest(ctx context.Context, key string) (int64, error) {
	ns, err := s.namespace(ctx)
	if err != nil {
		return 0, err
	}
	return lockID(ns, key), nil
}
