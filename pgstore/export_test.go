package pgstore

import (
	"context"

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
