package refresh_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// TestClientErrorWrapsRefreshError: an error of the engine starts with
// "refresh:", but through an http.Client it comes wrapped in a *url.Error,
// whose text reads `Get "…": refresh: …`; errors.As and errors.Is still
// find what the engine returned. An error of the request itself (the base
// transport's) passes through as it is.
func TestClientErrorWrapsRefreshError(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	eng, err := refresh.New(refresh.Config{OAuth2: srv.Config()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	tok := srv.Token()
	if err := eng.SetToken(context.Background(), refresh.DefaultKey, tok); err != nil {
		t.Fatal(err)
	}
	srv.RevokeGrants() // the refresh token is rejected: invalid_grant

	_, err = eng.Client(nil).Get(srv.URL + "/v2/account")
	var uerr *url.Error
	var rerr *refresh.Error
	switch {
	case err == nil:
		t.Fatal("Get: got no error, want the refresh's")
	case !errors.As(err, &uerr):
		t.Errorf("Get: got %T %q, want a *url.Error", err, err)
	case !errors.As(err, &rerr) || !errors.Is(err, refresh.ErrReauthRequired):
		t.Errorf("Get: got %q, want one wrapping a *refresh.Error and ErrReauthRequired", err)
	}
	want := `Get "` + srv.URL + `/v2/account": refresh: `
	if err != nil && !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Get: got error %q, want it to start with %q", err, want)
	}
	if rerr != nil && !strings.HasPrefix(rerr.Error(), "refresh: ") {
		t.Errorf("*refresh.Error: got %q, want it to start with %q", rerr, "refresh: ")
	}
	if err != nil && (strings.Contains(err.Error(), tok.RefreshToken) || strings.Contains(err.Error(), tok.AccessToken)) {
		t.Errorf("Get: the error holds a token")
	}

	// The API's own failure is not the engine's.
	down := errors.New("api unreachable")
	c := eng.Client(&http.Client{Transport: failingBase{down}})
	eng.SetToken(context.Background(), refresh.DefaultKey, srv.Token())
	_, err = c.Get(srv.URL + "/v2/account")
	if !errors.Is(err, down) || errors.As(err, &rerr) || strings.Contains(err.Error(), "refresh:") {
		t.Errorf("Get through a failing base transport: got %v, want the base's error as it is", err)
	}
}

// failingBase is a base transport that fails every request with err.
type failingBase struct{ err error }

func (b failingBase) RoundTrip(r *http.Request) (*http.Response, error) { return nil, b.err }
