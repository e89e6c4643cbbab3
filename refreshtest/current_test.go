package refreshtest_test

import (
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// TestCurrent: Current names the pair a client that followed every answer
// holds, whichever token of the grant it is given, and nothing for a token
// the server did not issue or a revoked grant.
func TestCurrent(t *testing.T) {
	c := newClock()
	srv := newServer(t, refreshtest.Options{Now: c.Now})
	login, other := srv.Token(), srv.Token()
	for _, tok := range []string{login.AccessToken, login.RefreshToken} {
		got := srv.Current(tok)
		if got == nil || got.AccessToken != login.AccessToken || got.RefreshToken != login.RefreshToken ||
			got.TokenType != "Bearer" || !got.Expiry.Equal(login.Expiry) || got.ExpiresIn != 3600 {
			t.Errorf("Current(%q) = %+v, want the login %+v", tok, got, login)
		}
	}
	c.Advance(time.Minute)
	at, rt := mustRefresh(t, srv, login.RefreshToken)
	for _, tok := range []string{login.AccessToken, login.RefreshToken, at, rt} {
		got := srv.Current(tok)
		if got == nil || got.AccessToken != at || got.RefreshToken != rt || !got.Expiry.Equal(c.Now().Add(time.Hour)) {
			t.Errorf("after a refresh, Current(%q) = %+v, want %s, %s", tok, got, at, rt)
		}
	}
	if got := srv.Current(other.RefreshToken); got == nil || got.AccessToken != other.AccessToken {
		t.Errorf("the other grant: got %+v, want its login", got)
	}
	if got := srv.Current("rt-1-0-guess"); got != nil {
		t.Errorf("unknown token: got %+v, want nil", got)
	}
	srv.Revoke(rt)
	if got := srv.Current(at); got != nil {
		t.Errorf("revoked grant: got %+v, want nil", got)
	}

	// RotateNever keeps the login's refresh token; no expiry without a
	// lifetime.
	never := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateNever, Lifetime: -1})
	tok := never.Token()
	at, _ = mustRefresh(t, never, tok.RefreshToken)
	if got := never.Current(tok.AccessToken); got == nil || got.AccessToken != at || got.RefreshToken != tok.RefreshToken ||
		!got.Expiry.IsZero() || got.ExpiresIn != 0 {
		t.Errorf("RotateNever: got %+v, want %s and the login's refresh token, no expiry", got, at)
	}
}
