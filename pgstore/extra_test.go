package pgstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/pgstore"
)

// The table and the statements of the release before token extras, frozen
// (git show main:pgstore/migrate.go and main:pgstore/pgstore.go when the
// extras were added): what a process of that release, during a rolling
// deploy or after a rollback, creates, reads and writes. Never edit them to
// make a test pass. %s is the table.
const (
	v1CreateTable = `CREATE TABLE IF NOT EXISTS %s (
	key           text COLLATE "C" PRIMARY KEY,
	access_token  text COLLATE "C" NOT NULL,
	token_type    text NOT NULL,
	refresh_token text COLLATE "C" NOT NULL,
	expiry        timestamptz NULL,
	expires_in    bigint NOT NULL,
	version       bigint NOT NULL,
	updated_at    timestamptz NOT NULL DEFAULT now()
)`
	v1Cols    = "access_token, token_type, refresh_token, expiry, expires_in"
	v1LoadSQL = "SELECT key, " + v1Cols + " FROM %s WHERE key = $1"
	v1SaveSQL = "INSERT INTO %s AS t (key, " + v1Cols + ", version, updated_at)" +
		" VALUES ($1, $2, $3, $4, $5, $6, 1, now())" +
		" ON CONFLICT (key) DO UPDATE SET access_token = EXCLUDED.access_token," +
		" token_type = EXCLUDED.token_type, refresh_token = EXCLUDED.refresh_token," +
		" expiry = EXCLUDED.expiry, expires_in = EXCLUDED.expires_in," +
		" version = t.version + 1, updated_at = now()"
	v1UpdateSQL = "UPDATE %s SET access_token = $2, token_type = $3, refresh_token = $4," +
		" expiry = $5, expires_in = $6, version = version + 1, updated_at = now()" +
		" WHERE key = $1 AND access_token = $7 AND refresh_token = $8"
)

func sql(format, ident string) string { return strings.ReplaceAll(format, "%s", ident) }

// v1Args are the parameters of v1SaveSQL for tok.
func v1Args(key string, tok *oauth2.Token) []any {
	var expiry *time.Time
	if !tok.Expiry.IsZero() {
		expiry = &tok.Expiry
	}
	return []any{key, tok.AccessToken, tok.TokenType, tok.RefreshToken, expiry, tok.ExpiresIn}
}

func withExtra(tok *oauth2.Token, scope string) *oauth2.Token {
	return tok.WithExtra(map[string]any{"scope": scope, "id_token": "id-" + scope, "refresh_expires_in": 60.0})
}

// v1Table creates the previous release's table in a schema of its own and
// returns its name and the options of a store over it.
func v1Table(t *testing.T, pool *pgxpool.Pool) (string, pgstore.Options) {
	t.Helper()
	schema := testSchema(t)
	ident := pgx.Identifier{schema, pgstore.DefaultTable}.Sanitize()
	if _, err := pool.Exec(ctx5s(t), sql(v1CreateTable, ident)); err != nil {
		t.Fatal(err)
	}
	return ident, pgstore.Options{Schema: schema}
}

// expectExtra reports a failure unless key loads as the token whose access
// token is at, with scope as its Extra("scope").
func expectExtra(t *testing.T, s *pgstore.Store, what, key, at string, scope any) {
	t.Helper()
	got, err := s.Load(ctx5s(t), key)
	switch {
	case err != nil:
		t.Fatalf("%s: Load: %v", what, err)
	case got.AccessToken != at:
		t.Fatalf("%s: Load returned another token", what)
	case got.Extra("scope") != scope:
		t.Fatalf("%s: Extra(scope) = %v, want %v", what, got.Extra("scope"), scope)
	}
}

// TestMigrateAddsExtra: Migrate adds the extra column to a table of the
// previous release, idempotently, and that release's rows read as they
// were, without extras.
func TestMigrateAddsExtra(t *testing.T) {
	pool := testPool(t)
	ctx := ctx5s(t)
	ident, opts := v1Table(t, pool)
	old := testToken("old")
	if _, err := pool.Exec(ctx, sql(v1SaveSQL, ident), v1Args("old", old)...); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := pgstore.Migrate(ctx, pool, opts); err != nil {
			t.Fatalf("Migrate over a table of the previous release: %v", err)
		}
	}
	s, err := pgstore.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	expectExtra(t, s, "a row of the previous release", "old", old.AccessToken, nil)
	if err := s.Save(ctx, "old", withExtra(old, "one")); err != nil {
		t.Fatal(err)
	}
	expectExtra(t, s, "the same row saved again", "old", old.AccessToken, "one")
}

// TestExtraPreviousRelease: the previous release reads the new rows, and a
// token it writes over one, with its Save or its CompareAndSwap, which
// leave the extra column as it was, does not get the extras of the token
// it replaced.
func TestExtraPreviousRelease(t *testing.T) {
	pool := testPool(t)
	ctx := ctx5s(t)
	ident, opts := v1Table(t, pool)
	s := migrated(t, pool, opts)
	tok := withExtra(testToken("new"), "one")
	if err := s.Save(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}
	var r struct {
		key, at, tt, rt string
		expiry          pgtype.Timestamptz
		expiresIn       int64
	}
	if err := pool.QueryRow(ctx, sql(v1LoadSQL, ident), "k").Scan(&r.key, &r.at, &r.tt, &r.rt, &r.expiry, &r.expiresIn); err != nil {
		t.Fatalf("the previous release cannot read a row with extras: %v", err)
	}
	if r.at != tok.AccessToken || r.rt != tok.RefreshToken {
		t.Errorf("the previous release reads another token")
	}
	expectExtra(t, s, "a row with extras", "k", tok.AccessToken, "one")

	next := testToken("next")
	if _, err := pool.Exec(ctx, sql(v1SaveSQL, ident), v1Args("k", next)...); err != nil {
		t.Fatal(err)
	}
	expectExtra(t, s, "after a Save of the previous release", "k", next.AccessToken, nil)

	if err := s.Save(ctx, "k", withExtra(next, "two")); err != nil {
		t.Fatal(err)
	}
	last := testToken("last")
	tag, err := pool.Exec(ctx, sql(v1UpdateSQL, ident), append(v1Args("k", last), next.AccessToken, next.RefreshToken)...)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("compare-and-swap of the previous release: %v, %d rows", err, tag.RowsAffected())
	}
	expectExtra(t, s, "after a compare-and-swap of the previous release", "k", last.AccessToken, nil)
}

// TestExtraUnmigrated: a store over a table of the previous release that
// Migrate has not seen fails with an error saying to run it.
func TestExtraUnmigrated(t *testing.T) {
	pool := testPool(t)
	_, opts := v1Table(t, pool)
	s, err := pgstore.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx5s(t), "k", testToken("k")); err == nil || !strings.Contains(err.Error(), "pgstore.Migrate") {
		t.Fatalf("Save over an unmigrated table: %v; want an error saying to run Migrate", err)
	}
}

// TestExtraMigrateRefusesWrongType: an extra column of another type, or
// NOT NULL, is refused like any other column at fault.
func TestExtraMigrateRefusesWrongType(t *testing.T) {
	for _, def := range []string{"integer NULL", "text NOT NULL", "jsonb NULL"} {
		schema := testSchema(t)
		pool := testPool(t)
		ident := pgx.Identifier{schema, pgstore.DefaultTable}.Sanitize()
		createTable(t, pool, ident, column{"extra", def})
		err := pgstore.Migrate(ctx5s(t), pool, pgstore.Options{Schema: schema})
		if !errors.Is(err, pgstore.ErrBadTable) || !strings.Contains(err.Error(), `"extra"`) {
			t.Errorf("extra %s: Migrate: %v; want ErrBadTable naming the column", def, err)
		}
	}
}

// TestExtraCorruptColumn: an extra column that is not a record the store
// writes makes Load fail, quoting nothing; NULL is no extras.
func TestExtraCorruptColumn(t *testing.T) {
	bad := `{"version":1,"tokens":"SECRET-VALUE"}`
	if _, err := pgstore.TokenFromRowExtra(`"t"`, "k", "a", "r", &bad); err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("corrupt extra: %v; want an error quoting nothing", err)
	}
	if tok, err := pgstore.TokenFromRowExtra(`"t"`, "k", "a", "r", nil); err != nil || tok.Extra("scope") != nil {
		t.Errorf("NULL extra: %v, %v", tok, err)
	}
}
