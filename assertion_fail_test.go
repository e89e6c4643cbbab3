package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/oauthkit/refresh/internal/leakscan"
	"github.com/oauthkit/refresh/internal/testkeys"
	"golang.org/x/oauth2"
)

// TestAssertionFails: an Assertion that fails, panics or returns nothing
// sends nothing, to either endpoint, and its error says so: a final
// ErrClientConfig (with ErrPanic for a panic, whose value is never shown),
// or a temporary error for a remote signer's timeout or network failure.
func TestAssertionFails(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Net: "tcp", Err: errTimeout{}}
	for _, c := range []struct {
		name      string
		assertion func(context.Context) (string, error)
		temporary bool
		panicked  bool
	}{
		{"error", func(context.Context) (string, error) { return "", errors.New("the HSM refused: PIN locked") }, false, false},
		{"panic", func(context.Context) (string, error) { panic("panic value client-secret-value") }, false, true},
		{"empty", func(context.Context) (string, error) { return "", nil }, false, false},
		{"deadline", func(ctx context.Context) (string, error) { return "", context.DeadlineExceeded }, true, false},
		{"network", func(context.Context) (string, error) { return "", fmt.Errorf("KMS: %w", timeout) }, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := fixed(http.StatusOK, nil, `{"access_token":"at","token_type":"bearer"}`)
			ep := &FormEndpoint{TokenURL: "https://as.test/token", RevocationURL: "https://as.test/revoke", ClientID: "id",
				Assertion: c.assertion, HTTPClient: srv.client()}
			tok := &oauth2.Token{AccessToken: "at-1-0-0123456789abcdef", RefreshToken: "rt-1-0-0123456789abcdef"}
			e, err := New(Config{Endpoint: ep, RefreshAttempts: -1})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.SetToken(t.Context(), DefaultKey, tok); err != nil {
				t.Fatal(err)
			}
			_, errEngine := e.Refresh(t.Context(), DefaultKey, tok)
			_, errRefresh := ep.Refresh(t.Context(), tok)
			for what, err := range map[string]error{"engine": errEngine, "Refresh": errRefresh, "Revoke": ep.Revoke(t.Context(), tok)} {
				var x *Error
				switch {
				case !errors.As(err, &x):
					t.Errorf("%s: %v, want an *Error", what, err)
				case x.Temporary() != c.temporary || errors.Is(err, ErrClientConfig) == c.temporary || errors.Is(err, ErrPanic) != c.panicked:
					t.Errorf("%s: %v: temporary %v, ErrClientConfig %v, ErrPanic %v; want temporary %v", what, err,
						x.Temporary(), errors.Is(err, ErrClientConfig), errors.Is(err, ErrPanic), c.temporary)
				case !strings.Contains(err.Error(), "client assertion could not be made") || strings.Contains(err.Error(), "panic value"):
					t.Errorf("%s: %q does not say the assertion failed, or shows a panic's value", what, err)
				}
			}
			if n := srv.count(); n != 0 {
				t.Errorf("%d requests sent, want none", n)
			}
		})
	}
}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

// TestAssertionNotInErrors: servers that quote the assertion they were sent
// in their error descriptions, URIs and pages never get it into an error,
// an event or a log record, in any encoding, from a refresh or a
// revocation.
func TestAssertionNotInErrors(t *testing.T) {
	var mu sync.Mutex
	var seen []string // the assertions sent
	echo := func(status int, contentType, body string) *scripted {
		return &scripted{answer: func(r *http.Request, _ int) *http.Response {
			r.ParseForm()
			a := r.PostForm.Get("client_assertion")
			mu.Lock()
			seen = append(seen, a)
			mu.Unlock()
			b := strings.NewReplacer("A", a, "Q", url.QueryEscape(a)).Replace(body)
			return response(r, status, http.Header{"Content-Type": {contentType}}, b)
		}}
	}
	var logs syncBuffer
	var texts []string
	note := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		for ; err != nil; err = errors.Unwrap(err) {
			texts = append(texts, err.Error())
		}
	}
	a, err := PrivateKeyJWT("id", "https://as.test/token", testkeys.RSA(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, srv := range []*scripted{
		echo(400, "application/json", `{"error":"invalid_scope","error_description":"bad A","error_uri":"https://as.test/e?a=Q"}`),
		echo(401, "application/json", `{"error":"invalid_client","error_description":"client_assertion=Q"}`),
		echo(400, "application/json", `{"error":"A"}`),
		echo(500, "text/html", `<html><body><p>We could not read A</p></body></html>`),
		echo(418, "text/plain", `client_assertion=Q&x=A`),
	} {
		ep := &FormEndpoint{TokenURL: "https://as.test/token", RevocationURL: "https://as.test/revoke", ClientID: "id",
			Assertion: a, HTTPClient: srv.client()}
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		e, err := New(Config{Endpoint: ep, Logger: log, RefreshAttempts: -1, OnEvent: func(ev Event) {
			note(ev.Err)
			for _, r := range ev.Requests {
				note(r.Err)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		tok := &oauth2.Token{AccessToken: fmt.Sprintf("at-%d-0-0123456789abcdef", i), RefreshToken: fmt.Sprintf("rt-%d-0-0123456789abcdef", i)}
		e.SetToken(t.Context(), DefaultKey, tok)
		_, err = e.Refresh(t.Context(), DefaultKey, tok)
		note(err)
		for _, err := range []error{ep.Revoke(t.Context(), tok), func() error { _, err := ep.Refresh(t.Context(), tok); return err }()} {
			note(err)
			var x *Error
			if errors.As(err, &x) {
				texts = append(texts, x.Description, x.URI, x.BodySnippet)
			}
		}
		e.Close(t.Context())
	}
	if len(seen) != 15 {
		t.Fatalf("%d requests, want 15", len(seen))
	}
	sc := leakscan.New(seen...)
	for _, text := range append(texts, strings.Split(logs.String(), "\n")...) {
		for _, l := range sc.Scan(text) {
			t.Errorf("%s in %q", l, text)
		}
	}
}
