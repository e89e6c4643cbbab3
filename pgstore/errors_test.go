package pgstore_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/pgstore"
)

// tokenForms returns the forms in which a token value could show up in an
// error: as it is, quoted, JSON-escaped, base64 (standard and URL, padded
// or not), URL-encoded and hex.
func tokenForms(v string) []string {
	j, _ := json.Marshal(v)
	forms := []string{v, strconv.Quote(v), string(j),
		base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)),
		neturl.QueryEscape(v), neturl.PathEscape(v), hex.EncodeToString([]byte(v))}
	return forms
}

// errorTree calls f with err and every error it wraps, through Unwrap()
// error and Unwrap() []error.
func errorTree(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		errorTree(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			errorTree(e, f)
		}
	}
}

// checkNoToken fails the test if err or any error it wraps holds one of
// the tokens in any form of tokenForms, in its message or in its fields,
// or is a *pgconn.PgError, whose Detail quotes a failing row.
func checkNoToken(t *testing.T, what string, err error, tokens ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: nil error, want one", what)
		return
	}
	t.Logf("%s: %v", what, err)
	errorTree(err, func(e error) {
		if pe, ok := e.(*pgconn.PgError); ok {
			t.Errorf("%s: the error wraps a *pgconn.PgError (detail %q)", what, pe.Detail)
		}
		for _, text := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
			for _, tok := range tokens {
				for _, form := range tokenForms(tok) {
					if strings.Contains(text, form) {
						t.Errorf("%s: error %T %q holds a token (as %q)", what, e, text, form)
						return
					}
				}
			}
		}
	})
}

// sqlState returns the SQLSTATE that err reports, "" if none.
func sqlState(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

// secretToken returns a token whose values are long and unlike any word
// of an error message.
func secretToken(tag string) *oauth2.Token {
	n := randomKey(tag)
	return &oauth2.Token{AccessToken: "AT-sEcReT-" + n + "-0123456789abcdef", TokenType: "Bearer",
		RefreshToken: "RT-sEcReT-" + n + "-fedcba9876543210", Expiry: time.Now().Add(time.Hour).Round(time.Microsecond), ExpiresIn: 3600}
}

// TestErrorsHoldNoTokens: whatever PostgreSQL or pgx says of a failed
// statement, the store's error holds no token value, in any form, in its
// message or in any error it wraps: PostgreSQL's detail of a constraint
// violation quotes the whole failing row, and a value of the wrong type is
// quoted in the message itself. The error still tells the SQLSTATE and the
// constraint or column, and still wraps the context's error.
func TestErrorsHoldNoTokens(t *testing.T) {
	pool := testPool(t)
	admin := testPool(t)
	newTable := func(t *testing.T, alter ...string) *pgstore.Store {
		t.Helper()
		s := migrated(t, pool, pgstore.Options{Schema: testSchema(t)})
		for _, a := range alter {
			if _, err := admin.Exec(ctx5s(t), "ALTER TABLE "+s.Table()+" "+a); err != nil {
				t.Fatalf("ALTER TABLE %s: %v", a, err)
			}
		}
		return s
	}
	old := secretToken("old")
	tok := secretToken("new")
	tokens := []string{old.AccessToken, old.RefreshToken, tok.AccessToken, tok.RefreshToken}

	t.Run("check violation", func(t *testing.T) {
		s := newTable(t)
		ctx := ctx5s(t)
		if err := s.Save(ctx, "k", old); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(ctx, "ALTER TABLE "+s.Table()+" ADD CONSTRAINT short_tokens CHECK (length(access_token) < 60 OR access_token LIKE 'AT-sEcReT-old%') NOT VALID"); err != nil {
			t.Fatal(err)
		}
		long := *tok
		long.AccessToken += strings.Repeat("x", 60)
		for what, err := range map[string]error{
			"Save":                  s.Save(ctx, "k", &long),
			"CompareAndSwap insert": s.CompareAndSwap(ctx, "other", nil, &long),
			"CompareAndSwap update": s.CompareAndSwap(ctx, "k", old, &long),
		} {
			checkNoToken(t, what, err, append(tokens, long.AccessToken)...)
			if got := sqlState(err); got != "23514" {
				t.Errorf("%s: SQLSTATE %q, want 23514 (check_violation)", what, got)
			}
			if err != nil && !strings.Contains(err.Error(), "short_tokens") {
				t.Errorf("%s: %q, want it to name the constraint", what, err)
			}
		}
	})

	t.Run("not-null violation", func(t *testing.T) {
		s := newTable(t, "ADD COLUMN tenant text NOT NULL DEFAULT 'x'", "ALTER COLUMN tenant DROP DEFAULT")
		err := s.Save(ctx5s(t), "k", tok)
		checkNoToken(t, "Save", err, tokens...)
		if got := sqlState(err); got != "23502" {
			t.Errorf("Save: SQLSTATE %q, want 23502 (not_null_violation)", got)
		}
		if err != nil && !strings.Contains(err.Error(), "tenant") {
			t.Errorf("Save: %q, want it to name the column", err)
		}
	})

	t.Run("type error on write", func(t *testing.T) {
		s := newTable(t, "ALTER COLUMN refresh_token TYPE uuid USING refresh_token::uuid")
		ctx := ctx5s(t)
		for what, err := range map[string]error{
			"Save":           s.Save(ctx, "k", tok),
			"CompareAndSwap": s.CompareAndSwap(ctx, "k", old, tok),
		} {
			checkNoToken(t, what, err, tokens...)
			if got := sqlState(err); got != "22P02" {
				t.Errorf("%s: SQLSTATE %q, want 22P02 (invalid_text_representation)", what, got)
			}
		}
	})

	t.Run("type error on read", func(t *testing.T) {
		s := newTable(t)
		ctx := ctx5s(t)
		if err := s.Save(ctx, "k", tok); err != nil {
			t.Fatal(err)
		}
		// An enum is a type pgx does not know: it reads it as text, and
		// quotes what it cannot parse as a number.
		enum := strings.TrimSuffix(s.Table(), `"refresh_tokens"`) + "anything"
		stmts := []string{
			"CREATE TYPE " + enum + " AS ENUM ('" + tok.AccessToken + "')",
			"ALTER TABLE " + s.Table() + " ALTER COLUMN expires_in TYPE " + enum + " USING access_token::" + enum,
		}
		for _, q := range stmts {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err := s.Load(ctx, "k")
		checkNoToken(t, "Load", err, tokens...)
		if err != nil && !strings.Contains(err.Error(), "expires_in") {
			t.Errorf("Load: %q, want it to name the column", err)
		}
	})

	t.Run("invalid UTF-8", func(t *testing.T) {
		s := newTable(t)
		bad := *tok
		bad.AccessToken = "\xff\xfe" + tok.AccessToken
		err := s.Save(ctx5s(t), "k", &bad)
		checkNoToken(t, "Save", err, tokens...)
		if err != nil && (strings.Contains(err.Error(), "0xff") || !strings.Contains(err.Error(), "access token")) {
			t.Errorf("Save: %q, want it to name the access token and not to quote its bytes", err)
		}
	})

	t.Run("context ends", func(t *testing.T) {
		s := newTable(t)
		ctx := ctx5s(t)
		if err := s.Save(ctx, "k", tok); err != nil {
			t.Fatal(err)
		}
		// A transaction holding the table makes every statement wait.
		tx, err := admin.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, "LOCK TABLE "+s.Table()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err = s.Load(dctx, "k")
		checkNoToken(t, "Load past its deadline", err, tokens...)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Load past its deadline: %v, want an error wrapping context.DeadlineExceeded", err)
		}
		cctx, cancel2 := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel2)
		err = s.CompareAndSwap(cctx, "k", tok, old)
		checkNoToken(t, "CompareAndSwap cancelled", err, tokens...)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CompareAndSwap cancelled: %v, want an error wrapping context.Canceled", err)
		}
	})
}

// TestErrorKeepsNoText: every kind of error pgx returns becomes an *Error
// that keeps the SQLSTATE, the names and the errors worth wrapping, and
// none of the texts, even of kinds a real server is hard to make produce.
func TestErrorKeepsNoText(t *testing.T) {
	const secret = "AT-sEcReT-0123456789abcdef"
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	netErr := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want []error  // wrapped
		text []string // in the message
	}{
		{name: "check violation", err: fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "23514", Message: "violates check constraint \"c\"",
			Detail: "Failing row contains (k, " + secret + ")", ConstraintName: "c", TableName: "t"}),
			text: []string{"23514", "check_violation", `constraint "c"`}},
		{name: "undefined table", err: &pgconn.PgError{Code: "42P01", Message: `relation "x" does not exist`},
			want: []error{pgstore.ErrNoTable}, text: []string{"42P01", "pgstore.Migrate"}},
		{name: "input syntax", err: &pgconn.PgError{Code: "22P02", Message: "invalid input syntax for type uuid: \"" + secret + "\""},
			text: []string{"22P02"}},
		{name: "connect", err: &pgconn.ConnectError{Config: &pgconn.Config{}}, text: []string{"cannot connect"}},
		{name: "scan", err: pgx.ScanArgError{ColumnIndex: 5, FieldName: "expires_in", Err: &strconv.NumError{Func: "ParseInt", Num: secret, Err: strconv.ErrSyntax}},
			text: []string{`"expires_in"`}},
		{name: "encode", err: fmt.Errorf("failed to encode args[1]: unable to encode %q into binary format for uuid (OID 2950)", secret)},
		{name: "network", err: fmt.Errorf("failed to receive message: %w", netErr), want: []error{syscall.ECONNRESET}, text: []string{"connection reset"}},
		{name: "EOF", err: fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), want: []error{io.ErrUnexpectedEOF}},
		{name: "closed", err: fmt.Errorf("x: %w", pgconn.ErrConnClosed), want: []error{pgconn.ErrConnClosed}},
		{name: "ended context", ctx: cancelled, err: &pgconn.PgError{Code: "57014", Message: "canceling statement due to user request"},
			want: []error{context.Canceled}, text: []string{"57014", "context canceled"}},
		{name: "deadline", err: fmt.Errorf("timeout: %w", context.DeadlineExceeded), want: []error{context.DeadlineExceeded}},
	} {
		ctx := tc.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		err := pgstore.NewErrorForTest(ctx, "save", `"s"."t"`, tc.err)
		checkNoToken(t, tc.name, err, secret)
		var pe *pgstore.Error
		if !errors.As(err, &pe) || pe.Op != "save" || pe.Table != `"s"."t"` {
			t.Errorf("%s: %#v, want a *pgstore.Error of save in \"s\".\"t\"", tc.name, err)
		}
		if !strings.HasPrefix(err.Error(), `pgstore: save in "s"."t": `) {
			t.Errorf("%s: %q, want it to start with the operation and the table", tc.name, err)
		}
		for _, w := range tc.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v does not wrap %v", tc.name, err, w)
			}
		}
		for _, w := range tc.text {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q, want it to contain %q", tc.name, err, w)
			}
		}
	}
}

// TestErrorOfUnreachableServer: an error of connecting keeps what went
// wrong, in its message and for errors.Is.
func TestErrorOfUnreachableServer(t *testing.T) {
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := pgstore.New(pool, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(ctx5s(t), "k")
	var pe *pgstore.Error
	if !errors.As(err, &pe) || !errors.Is(err, syscall.ECONNREFUSED) ||
		!strings.Contains(err.Error(), "cannot connect") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Load from a closed port: %v, want a *pgstore.Error that says it cannot connect and wraps ECONNREFUSED", err)
	}
	t.Log(err)
}
