package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrate creates the table named by opts if it does not exist, with the
// columns a [Store] needs (see the package documentation), and checks that
// an existing table is one the store can keep its promises with: the
// types, collations and nullability of its columns and the unique index
// of its key (the package documentation lists what is checked, and why).
// It refuses another table, without changing it, with an error wrapping
// [ErrBadTable] that names each column at fault, what it is and what the
// store needs. It is idempotent: run it at deployment or at every
// start-up; concurrent runs, from any number of processes, wait for each
// other. It needs the CREATE privilege on the schema the first time, and
// does not create the schema itself. Nothing else creates or checks the
// table: not [New], not importing the package.
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
		return newError(ctx, "migrate", ident, err)
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
	updated_at    timestamptz NOT NULL DEFAULT now(),
	extra         text NULL
)`,
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return newError(ctx, "migrate", ident, err)
		}
	}
	if err := addExtra(ctx, tx, ident); err != nil {
		return newError(ctx, "migrate", ident, err)
	}
	// An existing table made by hand or by another program must be one
	// the store can keep its promises with, not only one that has the
	// columns.
	switch err := checkTable(ctx, tx, ident); {
	case errors.Is(err, ErrBadTable):
		return fmt.Errorf("pgstore: migrate %s: %w", ident, err)
	case err != nil:
		return newError(ctx, "migrate", ident, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return newError(ctx, "migrate", ident, err)
	}
	return nil
}

// addExtra adds the column extra, which came after the others, to a table
// made before it (by Migrate of an earlier release), as NULL in every row:
// no extras. Only when it is missing, so that a table that has it needs no
// privilege beyond what the store uses (ALTER TABLE needs the table's
// owner). Adding a nullable column without a default rewrites nothing and
// holds the table's lock for an instant; the previous release, which
// names its columns, goes on reading and writing the table.
func addExtra(ctx context.Context, tx pgx.Tx, ident string) error {
	var kind string
	var has bool
	err := tx.QueryRow(ctx, `SELECT c.relkind::text, EXISTS (SELECT FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = c.oid AND a.attname = 'extra' AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)`, ident).Scan(&kind, &has)
	if err != nil || has || kind != "r" && kind != "p" {
		return err // not a table: checkTable says what it is
	}
	_, err = tx.Exec(ctx, "ALTER TABLE "+ident+" ADD COLUMN IF NOT EXISTS extra text NULL")
	return err
}
