package pgstore

import "context"

// Delete implements [refresh.Deleter] with one DELETE of key's row, which
// holds the token and its extras. PostgreSQL orders it with the
// statements of Save and CompareAndSwap on that row: a CompareAndSwap's
// UPDATE that waited for it finds no row and writes nothing
// ([refresh.ErrConflict]), and one that committed first is deleted with
// the row. A key without a row is not an error.
//
// The key's advisory lock is not a row and is not touched: a session that
// holds it keeps it.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkText("delete", s.ident, key, nil, nil); err != nil {
		return err
	}
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, s.deleteSQL, key)
		return err
	})
	if err != nil {
		return newError(ctx, "delete", s.ident, err)
	}
	return nil
}
