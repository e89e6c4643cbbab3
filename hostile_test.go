package refresh

// Fields that come from a server or a store never reach an error, a log
// line or a hook unvalidated, and no encoding of a known secret survives.

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// secretEncodings returns sec as it may appear in text: raw, URL-encoded,
// JSON-escaped, base64 in its four alphabets (also inside a longer base64
// text, at each alignment) and hex.
func secretEncodings(sec string) map[string]string {
	forms := map[string]string{
		"raw":        sec,
		"query":      url.QueryEscape(sec),
		"path":       url.PathEscape(sec),
		"json":       strings.ReplaceAll(sec, "/", `\/`),
		"hex":        hex.EncodeToString([]byte(sec)),
		"HEX":        strings.ToUpper(hex.EncodeToString([]byte(sec))),
		"base64":     base64.StdEncoding.EncodeToString([]byte(sec)),
		"base64url":  base64.URLEncoding.EncodeToString([]byte(sec)),
		"base64raw":  base64.RawStdEncoding.EncodeToString([]byte(sec)),
		"base64rawu": base64.RawURLEncoding.EncodeToString([]byte(sec)),
	}
	for k := 1; k <= 2; k++ {
		// As in a Basic header: base64("id:" + secret).
		forms[fmt.Sprintf("base64+%d", k)] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", k) + sec))
	}
	return forms
}

// leaks returns the names of the encodings of any secret found in s.
func leaks(s string, secrets ...string) []string {
	var found []string
	for _, sec := range secrets {
		for name, form := range secretEncodings(sec) {
			if strings.HasPrefix(name, "base64+") {
				// The first characters depend on the prefix: look for
				// the part that only the secret determines.
				form = form[4 : len(form)-4]
			}
			if strings.Contains(s, form) {
				found = append(found, fmt.Sprintf("%s of %.6s…", name, sec))
			}
		}
	}
	return found
}

// errorText is the text of err and of every error it wraps.
func errorText(err error) string {
	var b strings.Builder
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		b.WriteString(err.Error())
		b.WriteByte('\n')
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return b.String()
}

// TestHostileErrorFields: the token endpoint's error code, description and
// URI are validated, capped and redacted before they reach an *Error, its
// text, a log line or a hook. (Before the fix, the code went out raw, with
// newlines and no cap; the description was redacted only for the exact
// secret; the URI as received; the old access token not at all.)
func TestHostileErrorFields(t *testing.T) {
	const at, rt, secret = "at-OLD+/access=token?1234", "rt-SECRET/refresh+token=&5678", "client/secret+value=="
	long := strings.Repeat("A", 5000)
	var all []string
	for _, sec := range []string{at, rt, secret} {
		for _, f := range secretEncodings(sec) {
			all = append(all, f)
		}
	}
	cases := []struct {
		name, body string
		check      func(t *testing.T, x *Error)
	}{{
		name: "forged log line in the code",
		body: `{"error":"invalid_grant\nlevel=ERROR msg=\"forged\" ` + long + `"}`,
		check: func(t *testing.T, x *Error) {
			if x.Code != "" || x.Temporary() || errors.Is(x, ErrReauthRequired) {
				t.Errorf("Code %q, temporary %v: want the malformed code dropped, not retried", x.Code, x.Temporary())
			}
		},
	}, {
		name: "secrets in every encoding in the description",
		body: `{"error":"server_error","error_description":` + jsonString(strings.Join(all, " | ")) + `}`,
	}, {
		name: "secrets in the URI",
		body: `{"error":"invalid_request","error_uri":"https://docs.example/errors/` + url.PathEscape(rt) + `?token=` + url.QueryEscape(rt) + `#` + at + `"}`,
		check: func(t *testing.T, x *Error) {
			if strings.ContainsAny(x.URI, "?#") {
				t.Errorf("URI %q kept its query or fragment", x.URI)
			}
		},
	}, {
		name: "the refresh token as the code",
		body: `{"error":` + jsonString(rt) + `}`,
		check: func(t *testing.T, x *Error) {
			if x.Code != "" {
				t.Errorf("Code %q: want a code holding a secret dropped", x.Code)
			}
		},
	}, {
		name: "a code with a quote and a backslash",
		body: `{"error":"bad\"code\\x"}`,
	}, {
		name: "long description",
		body: `{"error":"server_error","error_description":"` + long + `"}`,
	}, {
		name: "secrets in an HTML page",
		body: "<html><body>" + strings.Join(all, "<br>") + "</body></html>",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hookErrs []error
			logs := new(syncBuffer)
			hc := &http.Client{Transport: stubRT(func(r *http.Request) (*http.Response, error) {
				return response(r, 400, http.Header{"Content-Type": {"application/json"}}, c.body), nil
			})}
			e, err := New(Config{
				Endpoint: &FormEndpoint{TokenURL: "https://auth.test/token", ClientID: "id", ClientSecret: secret, Auth: AuthBasic, HTTPClient: hc},
				Logger:   slog.New(slog.NewTextHandler(logs, nil)),
				Hooks:    Hooks{RefreshFailed: func(_ string, err error) { hookErrs = append(hookErrs, err) }},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: at, RefreshToken: rt}); err != nil {
				t.Fatal(err)
			}
			_, err = e.Refresh(t.Context(), "", nil)
			var x *Error
			if !errors.As(err, &x) {
				t.Fatalf("got %v, want an *Error", err)
			}
			FlushEvents(e) // hooks run on the event goroutine
			out := errorText(err) + x.Code + "\n" + x.Description + "\n" + x.URI + "\n" + x.BodySnippet + "\n" + logs.String()
			for _, h := range hookErrs {
				out += errorText(h)
			}
			if l := leaks(out, at, rt, secret); len(l) > 0 {
				t.Errorf("secrets leaked: %v", l)
			}
			if strings.ContainsAny(errorText(err), "\r\n") && strings.Count(errorText(err), "\n") > strings.Count(errorText(err), "\n\n")+3 {
				t.Errorf("error text holds line breaks: %q", errorText(err))
			}
			if strings.Contains(err.Error(), "\n") || len(err.Error()) > 1200 {
				t.Errorf("Error() is %d bytes or holds a newline: %.200q", len(err.Error()), err.Error())
			}
			if strings.Contains(logs.String(), "forged") && strings.Count(logs.String(), "level=") != strings.Count(logs.String(), "\n") {
				t.Errorf("a forged log line: %s", logs)
			}
			if c.check != nil {
				c.check(t, x)
			}
		})
	}
}

func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// leakyStore puts the tokens it is given or holds into its error texts, as
// a database error that quotes the failing row does.
type leakyStore struct {
	MemoryStore
	failLoad, failSave bool
}

func (s *leakyStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	t, err := s.MemoryStore.Load(ctx, key)
	if s.failLoad && t != nil {
		return nil, fmt.Errorf("row (%s, %s) is bad: %s", t.AccessToken, t.RefreshToken, base64.StdEncoding.EncodeToString([]byte(t.RefreshToken)))
	}
	return t, err
}

func (s *leakyStore) Save(ctx context.Context, key string, t *oauth2.Token) error {
	if s.failSave {
		return fmt.Errorf("failing row contains (%s, %s)", t.AccessToken, url.QueryEscape(t.RefreshToken))
	}
	return s.MemoryStore.Save(ctx, key, t)
}

func (s *leakyStore) CompareAndSwap(ctx context.Context, key string, old, t *oauth2.Token) error {
	if s.failSave {
		return fmt.Errorf("failing row contains (%s, %s), was (%s)", t.AccessToken, t.RefreshToken, old.RefreshToken)
	}
	return s.MemoryStore.CompareAndSwap(ctx, key, old, t)
}

// TestStoreErrorsRedacted: a store whose errors quote tokens cannot put
// them into the engine's errors, logs or hooks.
func TestStoreErrorsRedacted(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(leakyStore)
	logs := new(syncBuffer)
	var hookErrs []error
	e := newEngine(t, as, Config{Store: store, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Hooks: Hooks{SaveFailed: func(_ string, err error) { hookErrs = append(hookErrs, err) },
			RefreshFailed: func(_ string, err error) { hookErrs = append(hookErrs, err) }}})
	defer e.Close(context.Background())
	ctx := t.Context()
	first := as.token()
	if _, err := e.Token(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// A store's errors are cleaned of every token the engine knows; one it
	// never had cannot be told from other text (a store must not quote
	// tokens: pgstore, redisstore and filestore do not).
	store.failLoad = true
	var out strings.Builder
	_, err := e.Refresh(ctx, "", nil) // the Load fails, quoting the row
	if err == nil {
		t.Fatal("Refresh with a failing store: no error")
	}
	out.WriteString(errorText(err))
	store.failLoad = false
	waitFor(t, "a refresh works again, after the cooldown", func() bool { _, err := e.Refresh(ctx, "", nil); return err == nil })
	second := as.token()
	store.failSave = true
	as.RevokeAccessTokens()
	if _, err := e.Refresh(ctx, "", nil); err != nil { // the save fails, quoting the new token
		t.Fatalf("refresh with a failing save: %v", err)
	}
	newTok := as.token()
	out.WriteString(errorText(e.SetToken(ctx, "", &oauth2.Token{AccessToken: "at-login-0000", RefreshToken: "rt-login-0000"})))
	FlushEvents(e) // hooks run on the event goroutine
	for _, h := range hookErrs {
		out.WriteString(errorText(h))
	}
	out.WriteString(logs.String())
	if len(hookErrs) == 0 {
		t.Errorf("no SaveFailed or RefreshFailed hook was called")
	}
	if l := leaks(out.String(), first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken, newTok.AccessToken, newTok.RefreshToken, "at-login-0000", "rt-login-0000"); len(l) > 0 {
		t.Errorf("store errors leaked tokens: %v\n%s", l, out.String())
	}
	store.failSave = false
}

// FuzzEndpointResponse: whatever a token endpoint answers, FormEndpoint and
// JSONEndpoint never panic, return either a token or an *Error, and put no
// secret of the request into the error.
func FuzzEndpointResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"AT","token_type":"bearer","refresh_token":"RT2","expires_in":3600}`), false)
	f.Add(400, "application/json", []byte(`{"error":"invalid_grant","error_description":"rt-secret-refresh-token is spent"}`), true)
	f.Add(500, "application/json", []byte(`{"error":"invalid_grant\n","error_uri":"https://x/?t=rt-secret-refresh-token"}`), false)
	f.Add(502, "text/html", []byte(`<html><p>client-secret-value at-secret-access-token</p></html>`), true)
	f.Add(429, "text/plain", []byte(`slow down`), false)
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=A&refresh_token=B`), false)
	f.Add(302, "", []byte(``), true)
	f.Add(200, "application/json", []byte(`{"access_token":"`+base64.StdEncoding.EncodeToString([]byte("rt-secret-refresh-token"))+`"}`), false)
	const at, rt, secret = "at-secret-access-token", "rt-secret-refresh-token", "client-secret-value"
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte, useJSON bool) {
		if status < 100 || status > 999 {
			status = 200 + status%300
			if status < 100 {
				status = 500
			}
		}
		hc := &http.Client{Transport: stubRT(func(r *http.Request) (*http.Response, error) {
			resp := response(r, status, http.Header{"Content-Type": {contentType}, "Retry-After": {string(body[:min(len(body), 8)])}}, "")
			resp.Body = io.NopCloser(strings.NewReader(string(body)))
			return resp, nil
		})}
		var ep Endpoint = &FormEndpoint{TokenURL: "https://auth.test/token", ClientID: "id", ClientSecret: secret, Auth: AuthBasic, HTTPClient: hc}
		if useJSON {
			ep = &JSONEndpoint{URL: "https://auth.test/token", HTTPClient: hc}
		}
		tok, err := ep.Refresh(context.Background(), &oauth2.Token{AccessToken: at, RefreshToken: rt})
		if (tok == nil) == (err == nil) {
			t.Fatalf("got %v and %v; want a token or an error", tok, err)
		}
		if err == nil {
			if tok.AccessToken == "" || !headerSafe(tok.AccessToken) {
				t.Fatalf("got an unusable access token")
			}
			return
		}
		var x *Error
		if !errors.As(err, &x) {
			t.Fatalf("got %T, want *Error", err)
		}
		x = classify("k", err, &oauth2.Token{AccessToken: at, RefreshToken: rt})
		text := errorText(x) + x.Code + x.Description + x.URI + x.BodySnippet
		secrets := []string{at, rt, secret}
		if useJSON {
			secrets = secrets[:2] // a JSONEndpoint has no client secret
		}
		if l := leaks(text, secrets...); len(l) > 0 {
			t.Fatalf("secrets leaked: %v in %q", l, text)
		}
		if strings.ContainsAny(x.Error(), "\r\n\x00") {
			t.Fatalf("Error() holds control characters: %q", x.Error())
		}
	})
}
