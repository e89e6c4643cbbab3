package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrate creates the table named by opts if it does not exist, with the
// columns a [Store] needs (see the package documentation), and checks that
// an existing table has them. It is idempotent: run it at deployment or at
// every start-up; concurrent runs, from any number of processes, wait for
// each other. It needs the CREATE privilege on the schema the first time,
// and does not create the schema itself. Nothing else creates the table:
// not [New], not importing the package.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts Options) error {
	if pool == nil {
		return errors.New("pgstore: nil pool")
	}
	ident, err := opts.ident()
	if err != nil {
		return err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: migrate %s: %w", ident, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // no-op after Commit
	// CREATE TABLE IF NOT EXISTS is not safe against itself: two sessions
	// can both find the table missing, and one then fails on a duplicate
	// catalog entry. A transaction-level advisory lock on the name
	// serializes migrations of the same table.
	stmts := []string{
		"SELECT pg_advisory_xact_lock(" + fmt.Sprint(lockID("migrate", ident)) + ")",
		"CREATE TABLE IF NOT EXISTS " + ident + ` (
	key           text COLLATE "C" PRIMARY KEY,
	access_token  text COLLATE "C" NOT NULL,
	token_type    text NOT NULL,
	refresh_token text COLLATE "C" NOT NULL,
	expiry        timestamptz NULL,
	expires_in    bigint NOT NULL,
	version       bigint NOT NULL,
	updated_at    timestamptz NOT NULL DEFAULT now()
)`,
		// An existing table made by hand or by another program must have
		// every column the store reads and writes.
		"SELECT key, access_token, token_type, refresh_token, expiry, expires_in, version, updated_at FROM " + ident + " LIMIT 0",
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("pgstore: migrate %s: %w", ident, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgstore: migrate %s: %w", ident, err)
	}
	return nil
}
