package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"golang.org/x/oauth2"
)

// Token types of RFC 8693 §3, for TokenExchange.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// TokenExchange is the token exchange grant (RFC 8693): a token of another
// party, the subject token, is exchanged for a token of this client, for
// example to call a downstream API on a user's behalf, or with a workload
// identity. Its FormEndpoint says how to reach and authenticate to the
// token endpoint, with its Scope and Params.
//
// SubjectToken is called for every request, so it can return a token that
// changes: the current token of another key ([Engine.Token], with the ctx
// it is given), or a workload identity file read anew. Keys whose subject
// tokens depend on each other in a cycle get an error wrapping
// [ErrClientConfig], not a deadlock.
type TokenExchange struct {
	FormEndpoint

	// SubjectToken returns the subject token for key and its type (one
	// of the TokenType constants, or another URI). Required.
	SubjectToken func(ctx context.Context, key string) (token, tokenType string, err error)

	// ActorToken returns the actor token for key and its type, or "" for
	// none. Optional.
	ActorToken func(ctx context.Context, key string) (token, tokenType string, err error)

	// RequestedTokenType, Audience and Resource are sent as the grant's
	// requested_token_type, audience and resource parameters. Optional.
	RequestedTokenType string
	Audience           []string
	Resource           []string
}

// Fetch implements [Fetcher]: it posts the token exchange grant.
func (x *TokenExchange) Fetch(ctx context.Context, key string) (*oauth2.Token, error) {
	f := &x.FormEndpoint
	if err := f.validate(); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %w", ErrClientConfig, err)}
	}
	if x.SubjectToken == nil {
		return nil, &Error{Err: fmt.Errorf("%w: TokenExchange.SubjectToken is nil", ErrClientConfig)}
	}
	form := url.Values{}
	for k, vs := range f.Params {
		form[k] = vs
	}
	form.Set("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
	secrets := []string{f.ClientSecret}
	if err := x.party(ctx, key, form, "subject", x.SubjectToken, &secrets); err != nil {
		return nil, err
	}
	if x.ActorToken != nil {
		if err := x.party(ctx, key, form, "actor", x.ActorToken, &secrets); err != nil {
			return nil, err
		}
	}
	if x.RequestedTokenType != "" {
		form.Set("requested_token_type", x.RequestedTokenType)
	}
	form["audience"], form["resource"] = x.Audience, x.Resource
	if f.Scope != "" {
		form.Set("scope", f.Scope)
	}
	for k, vs := range form {
		if len(vs) == 0 {
			delete(form, k)
		}
	}
	req, assertion, err := f.newRequest(ctx, f.TokenURL, form)
	if err != nil {
		return nil, requestFailed(err, "token request", false)
	}
	return send(httpClient(f.HTTPClient), req, keepNames(f.KeepExtra), append(secrets, assertion)...)
}

// party adds the subject's or the actor's token to form, from get.
func (x *TokenExchange) party(ctx context.Context, key string, form url.Values, role string,
	get func(context.Context, string) (string, string, error), secrets *[]string) error {
	tok, typ, err := get(ctx, key)
	switch {
	case err != nil:
		// The other key's error keeps what it says (temporary, or a
		// login needed there): errors.Is sees through.
		var ox *Error
		temporary := errors.As(err, &ox) && ox.Temporary() || isNetError(err)
		return &Error{Err: fmt.Errorf("%s token: %w", role, cleanErr(err, tok)), temporary: temporary}
	case tok == "" && role == "actor":
		return nil
	case tok == "" || typ == "":
		return &Error{Err: fmt.Errorf("%w: the %s token or its type is empty", ErrClientConfig, role)}
	}
	form.Set(role+"_token", tok)
	form.Set(role+"_token_type", typ)
	*secrets = append(*secrets, tok)
	return nil
}

// fetchChain is the chain of keys whose grants are being fetched in a
// context: a Fetch that asks an engine for the token of a key in its own
// chain would wait for itself.
type fetchChain struct {
	e      *Engine
	key    string
	parent *fetchChain
}

type fetchChainKey struct{}

// withFetch returns ctx for the Fetch of key.
func withFetch(ctx context.Context, e *Engine, key string) context.Context {
	parent, _ := ctx.Value(fetchChainKey{}).(*fetchChain)
	return context.WithValue(ctx, fetchChainKey{}, &fetchChain{e, key, parent})
}

// fetching reports whether ctx is within the Fetch of e's key.
func fetching(ctx context.Context, e *Engine, key string) bool {
	c, _ := ctx.Value(fetchChainKey{}).(*fetchChain)
	for ; c != nil; c = c.parent {
		if c.e == e && c.key == key {
			return true
		}
	}
	return false
}

// errGrantCycle is the error of a key whose grant needs its own token.
var errGrantCycle = fmt.Errorf("%w: the keys' grants depend on each other in a cycle", ErrClientConfig)
