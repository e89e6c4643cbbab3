package refresh

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/oauthkit/refresh/internal/wwwauth"
)

// Transport is an [http.RoundTripper] that authorizes requests with the
// token of a key, refreshes the token through its [Engine] when the API
// rejects it, and retries the request once.
//
// A Transport is safe for concurrent use. It never modifies the request it is
// given.
type Transport struct {
	// Engine provides the tokens. Required.
	Engine *Engine

	// Base sends the requests. Optional: nil means http.DefaultTransport.
	Base http.RoundTripper

	// Key is the token key for every request through this transport.
	// Optional: if empty, each request's key comes from its context (see
	// [WithKey]), and is [DefaultKey] if the context names none.
	Key string
}

type keyContextKey struct{}

// WithKey returns a copy of ctx that makes requests through a [Transport]
// without a fixed Key use the token of key.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyContextKey{}, key)
}

// KeyFrom returns the key that [WithKey] put in ctx, or "" if none: the
// key a [Transport] without a fixed Key uses (an empty key is
// [DefaultKey]). Integrations that are not HTTP (gRPC) resolve keys with it.
func KeyFrom(ctx context.Context) string {
	k, _ := ctx.Value(keyContextKey{}).(string)
	return k
}

// maxDrain bounds how much of a discarded 401 body is read so that the
// connection can be reused; a longer body costs a new connection instead.
const maxDrain = 64 << 10

var errNoEngine = errors.New("refresh: Transport.Engine is nil")

// RoundTrip implements [http.RoundTripper].
//
// It sends req with the key's token. If the API answers 401 with a Bearer
// error "invalid_token" or no error code (or Engine's NeedsRefresh says so),
// it refreshes the token, unless another request already did, and sends req
// once more with the new token, provided its body can be replayed (nil,
// [http.NoBody] or GetBody set). Otherwise the 401 response is returned as
// it is, and the next request gets the new token. If the retry is rejected
// because the new token was itself replaced meanwhile (another process
// rotated it), the request follows the newest token once; it never causes a
// second refresh.
//
// A request redirected to another host, or from https to http, goes out
// without the token.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base()
	e := t.Engine
	if e == nil {
		closeBody(req)
		return nil, errNoEngine
	}
	if !sameOrigin(req) {
		return base.RoundTrip(req)
	}
	ctx, key := req.Context(), t.key(req)
	s, err := e.ticket(ctx, key)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := base.RoundTrip(authorize(req, s.auth()))
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	// Round 0 may refresh; round 1 may follow a token that replaced the
	// refreshed one meanwhile (another process rotated it: servers such as
	// gw2.me keep one access token per grant), never refreshing again;
	// round 2 only records the answer.
	for round := 0; err == nil; round++ {
		ns, aerr := e.answer(ctx, key, s, resp, round, replayable)
		switch {
		case ns == nil && aerr == nil:
			return resp, nil
		case !replayable:
			// The body is gone. The caller gets the 401 untouched; the
			// refresh (if it worked) serves the next request.
			return resp, nil
		case aerr != nil:
			discard(resp)
			return nil, aerr
		}
		var again *http.Response
		if again, err = resend(base, req, resp, ns); again == resp {
			return resp, err
		}
		resp, s = again, ns
	}
	return resp, err
}

// resend sends req again with the token of s and discards prev. If the body
// cannot be had again, it returns prev untouched.
func resend(base http.RoundTripper, req *http.Request, prev *http.Response, s *snapshot) (*http.Response, error) {
	r := authorize(req, s.auth())
	if req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return prev, nil
		}
		r.Body = body
	}
	discard(prev)
	return base.RoundTrip(r)
}

// rejects reports whether resp says the token is no good, so refreshing may
// help (RFC 6750 §3).
func (e *Engine) rejects(resp *http.Response) bool {
	if resp.StatusCode != http.StatusUnauthorized && e.needsRefresh == nil {
		return false // the common case, decided without parsing anything
	}
	code, hasCode := wwwauth.ErrorCode(resp.Header["Www-Authenticate"])
	if hasCode && code == "insufficient_scope" {
		return false // a new token would have the same scope
	}
	if resp.StatusCode == http.StatusUnauthorized && (!hasCode || code == "invalid_token") {
		return true
	}
	return e.needsRefresh != nil && e.consultNeedsRefresh(resp)
}

// CloseIdleConnections closes the idle connections of Base, if it can.
func (t *Transport) CloseIdleConnections() {
	if ci, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) key(req *http.Request) string {
	if t.Key != "" {
		return t.Key
	}
	if k, ok := req.Context().Value(keyContextKey{}).(string); ok && k != "" {
		return k
	}
	return DefaultKey
}

// authorize returns a shallow copy of req with the Authorization header set
// to auth. The header map is new; its other value slices are shared with
// req, which is safe because nothing below modifies them in place (the
// RoundTripper contract), and keeps the hot path at two allocations.
func authorize(req *http.Request, auth []string) *http.Request {
	r := new(http.Request)
	*r = *req
	var h http.Header
	if n := len(req.Header); n > 0 && n < 8 {
		// Cloning copies the map's one slot group at once, which is
		// cheaper than re-inserting; below 8 entries it has room for one
		// more without growing.
		h = maps.Clone(req.Header)
	} else {
		h = make(http.Header, n+1)
		for k, v := range req.Header {
			h[k] = v
		}
	}
	h["Authorization"] = auth
	r.Header = h
	return r
}

// sameOrigin reports whether req may carry the token: it is not a redirect,
// or it is redirected to the same host without leaving https. The client
// records the chain in req.Response.Request.
func sameOrigin(req *http.Request) bool {
	if req.Response == nil {
		return true
	}
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	if first == req || first.URL == nil || req.URL == nil {
		return false // a redirect whose origin is unknown: do not risk it
	}
	if first.URL.Scheme == "https" && req.URL.Scheme != "https" {
		return false
	}
	return strings.EqualFold(first.URL.Hostname(), req.URL.Hostname()) &&
		portOf(first.URL.Scheme, first.URL.Port()) == portOf(req.URL.Scheme, req.URL.Port())
}

func portOf(scheme, port string) string {
	if port != "" {
		return port
	}
	if scheme == "http" {
		return "80"
	}
	return "443"
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// discard drains a little of resp's body, so the connection can be reused,
// and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
}
