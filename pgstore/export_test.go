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

// NewErrorForTest returns the error of op on table that failed with err.
func NewErrorForTest(ctx context.Context, op, table string, err error) error {
	return newError(ctx, op, table, err)
}
