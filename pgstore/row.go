package pgstore

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/tokenjson"
)

// row is a row of the table as Load reads it: the columns of loadSQL.
type row struct {
	key, accessToken, tokenType, refreshToken string
	expiry                                    pgtype.Timestamptz // not Valid: NULL, no expiry
	expiresIn                                 int64
	extra                                     pgtype.Text // not Valid: NULL, no extras
}

// dest returns where Scan puts the columns of loadSQL.
func (r *row) dest() []any {
	return []any{&r.key, &r.accessToken, &r.tokenType, &r.refreshToken, &r.expiry, &r.expiresIn, &r.extra}
}

// The extra column holds the token's extras (oauth2.Token.Extra) as a
// tokenjson extras record, or NULL if it has none. It came after the other
// columns: the previous release selects and writes its own columns by
// name, so it reads and writes a table that has it (Migrate of either
// release accepts it), and this release reads that release's rows (NULL:
// no extras). A row that release updates keeps the extra column it had;
// the record's entries are bound to their token, so that token's extras
// are not taken for the new one's.

// token returns the token of the row that Load read for key from table, or
// an error that holds no value of the row.
func (r *row) token(table, key string) (*oauth2.Token, error) {
	if r.key != key {
		// A key column that compares loosely (char(n), a
		// nondeterministic collation) found another key's row.
		return nil, fmt.Errorf("pgstore: load in %s: %w: the row found holds another key (run pgstore.Migrate to check the table)", table, ErrBadTable)
	}
	tok := &oauth2.Token{AccessToken: r.accessToken, TokenType: r.tokenType, RefreshToken: r.refreshToken, ExpiresIn: r.expiresIn}
	switch {
	case !r.expiry.Valid:
	case r.expiry.InfinityModifier != pgtype.Finite:
		// The store never writes one. As an expiry, infinity would be
		// a guess ("never", or "always expired" for -infinity).
		return nil, fmt.Errorf("pgstore: load in %s: the row's expiry is %s, which the store never writes", table, r.expiry.InfinityModifier)
	case r.expiry.Time.IsZero():
		// The store writes NULL for no expiry. Year 1 would read as
		// "never expires", an expired token as a valid one.
		return nil, fmt.Errorf("pgstore: load in %s: the row's expiry is the zero time, which the store never writes (NULL means none)", table)
	default:
		tok.Expiry = r.expiry.Time
	}
	if r.extra.Valid {
		var err error
		if tok, err = tokenjson.DecodeExtra(key, tok, []byte(r.extra.String)); err != nil {
			return nil, fmt.Errorf("pgstore: load in %s: the row's extra column is not one the store writes: %v", table, err)
		}
	}
	return tok, nil
}
