package pgstore_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/oauthkit/refresh/pgstore"
)

// FuzzTokenFromRow: whatever the row Load read holds, what Load makes of
// it is the token of the key it asked for, field for field, or an error;
// never a panic, never the token of a row whose key is not the one asked
// for, byte for byte, and never an error that depends on the row's token
// values (so it cannot quote them, in any form). It needs no server: it
// runs what Load does with the scanned columns.
//
//	go test -run='^$' -fuzz=FuzzTokenFromRow -fuzztime=10s .
func FuzzTokenFromRow(f *testing.F) {
	const micros = 1_956_000_000_123_456 // 2031-12-25T…Z
	for _, seed := range []struct {
		key, rowKey string
		infinity    int8 // expiry: 0 finite, 1 infinity, 2 -infinity
		null        bool // expiry NULL
	}{
		{key: "alice", rowKey: "alice"},
		{key: "alice", rowKey: "alice", null: true},
		{key: "alice  ", rowKey: fmt.Sprintf("%-40s", "alice")}, // char(40)
		{key: "Alice", rowKey: "alice"},                         // a case-insensitive collation
		{key: "e\u0301", rowKey: "\u00e9"},                      // é, decomposed and composed
		{key: "", rowKey: ""},
		{key: "k", rowKey: "k", infinity: 1},
		{key: "k", rowKey: "k", infinity: 2},
	} {
		f.Add(seed.key, seed.rowKey, "AT-sEcReT-0123456789", "Bearer", "RT-sEcReT-9876543210", int64(micros), seed.infinity, !seed.null, int64(3600))
	}
	f.Add("k", "k", "", "", "", int64(-micros), int8(0), true, int64(-1))
	f.Add("k", "k", "a", "", "r", time.Time{}.UnixMicro(), int8(0), true, int64(0)) // reads as no expiry
	table := `"s"."refresh_tokens"`
	f.Fuzz(func(t *testing.T, key, rowKey, access, tokenType, refresh string, micros int64, infinity int8, valid bool, expiresIn int64) {
		expiry := pgtype.Timestamptz{Time: time.UnixMicro(micros), Valid: valid}
		switch infinity % 3 {
		case 1, -1:
			expiry.InfinityModifier = pgtype.Infinity
		case 2, -2:
			expiry.InfinityModifier = pgtype.NegativeInfinity
		}
		tok, err := pgstore.TokenFromRow(table, key, rowKey, access, tokenType, refresh, expiry, expiresIn)
		if err != nil {
			if tok != nil {
				t.Fatalf("a token with the error %q", err)
			}
			if rowKey != key && !errors.Is(err, pgstore.ErrBadTable) {
				t.Fatalf("the row of another key: %q, want an error wrapping ErrBadTable", err)
			}
			// The same row with other token values fails the same way.
			_, other := pgstore.TokenFromRow(table, key, rowKey, "", "", "", expiry, expiresIn)
			if other == nil || other.Error() != err.Error() {
				t.Fatalf("error %q, and %q with other token values: the error depends on them", err, other)
			}
			return
		}
		switch {
		case rowKey != key:
			t.Fatalf("Load(%q) returned the token of the row of %q", key, rowKey)
		case tok.AccessToken != access || tok.TokenType != tokenType || tok.RefreshToken != refresh || tok.ExpiresIn != expiresIn:
			t.Fatalf("the token's fields differ from the row's")
		case !valid && !tok.Expiry.IsZero():
			t.Fatalf("a NULL expiry loaded as %v", tok.Expiry)
		case valid && (expiry.InfinityModifier != pgtype.Finite || !tok.Expiry.Equal(expiry.Time)):
			t.Fatalf("the expiry %v (%v) loaded as %v", expiry.Time, expiry.InfinityModifier, tok.Expiry)
		case valid && tok.Expiry.IsZero():
			t.Fatalf("the expiry %v loaded as no expiry", expiry.Time)
		}
	})
}
