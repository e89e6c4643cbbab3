package pgstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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

// TestMigrateAddsExtra: Migrate adds the extra column to a table of the
// previous release, idempotently, and its rows read as they were, without
// extras; the previous release reads the new rows, extras and all, and a
// token it writes over one does not get the extras of the token it
// replaced.
func TestMigrateAddsExtra(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	opts := pgstore.Options{Schema: schema}
	ident := pgx.Identifier{schema, pgstore.DefaultTable}.Sanitize()
	if _, err := pool.Exec(ctx, sql(v1CreateTable, ident)); err != nil {
		t.Fatal(err)
	}
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
	got, err := s.Load(ctx, "old")
	if err != nil || got.AccessToken != old.AccessToken || got.Extra("scope") != nil {
		t.Fatalf("a row of the previous release: %v, scope %v; want the token, no extras", err, got.Extra("scope"))
	}

	// The previous release reads a row with extras.
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
	if got, err := s.Load(ctx, "k"); err != nil || got.Extra("scope") != "one" || got.Extra("refresh_expires_in") != 60.0 {
		t.Fatalf("Load: %v, scope %v", err, got.Extra("scope"))
	}

	// It writes over it, with its Save and its CompareAndSwap: the extra
	// column stays as it was, and must not be taken for the new token's.
	next := testToken("next")
	if _, err := pool.Exec(ctx, sql(v1SaveSQL, ident), v1Args("k", next)...); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || got.AccessToken != next.AccessToken || got.Extra("scope") != nil {
		t.Fatalf("after a Save of the previous release: %v, scope %v; want its token without extras", err, got.Extra("scope"))
	}
	if err := s.Save(ctx, "k", withExtra(next, "two")); err != nil {
		t.Fatal(err)
	}
	last := testToken("last")
	tag, err := pool.Exec(ctx, sql(v1UpdateSQL, ident), append(v1Args("k", last), next.AccessToken, next.RefreshToken)...)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("compare-and-swap of the previous release: %v, %d rows", err, tag.RowsAffected())
	}
	if got, err := s.Load(ctx, "k"); err != nil || got.AccessToken != last.AccessToken || got.Extra("scope") != nil {
		t.Fatalf("after a compare-and-swap of the previous release: %v, scope %v; want its token without extras", err, got.Extra("scope"))
	}
}

// TestExtraUnmigrated: a store over a table of the previous release that
// Migrate has not seen fails with an error saying to run it.
func TestExtraUnmigrated(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	ident := pgx.Identifier{schema, pgstore.DefaultTable}.Sanitize()
	if _, err := pool.Exec(ctx, sql(v1CreateTable, ident)); err != nil {
		t.Fatal(err)
	}
	s, err := pgstore.New(pool, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "k", testToken("k")); err == nil || !strings.Contains(err.Error(), "pgstore.Migrate") {
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
