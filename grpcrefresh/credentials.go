package grpcrefresh

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options configure [Credentials].
type Options struct {
	// Key is the token key of every call. Optional: if empty, each call's
	// key comes from its context ([refresh.WithKey]), and is
	// [refresh.DefaultKey] if the context names none.
	Key string
	// Insecure lets the token go over a connection without transport
	// security: for loopback tests only.
	Insecure bool
	// NoUnaryRetry turns off the retry of a unary call whose token the
	// server rejected (the token is still refreshed for the next call):
	// for calls that must not run twice.
	NoUnaryRetry bool
}

// Credentials are gRPC per-RPC credentials backed by an engine, and the
// interceptors that refresh on Unauthenticated. Use [Credentials.DialOptions]
// for both.
type Credentials struct {
	engine *refresh.Engine
	opts   Options
}

// New returns the credentials of engine.
func New(engine *refresh.Engine, o Options) *Credentials {
	return &Credentials{engine: engine, opts: o}
}

// DialOptions returns the options that install c: the per-RPC credentials
// and the unary and stream interceptors, chained after any others.
func (c *Credentials) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithPerRPCCredentials(c),
		grpc.WithChainUnaryInterceptor(c.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(c.StreamClientInterceptor()),
	}
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: true
// unless Options.Insecure.
func (c *Credentials) RequireTransportSecurity() bool { return !c.opts.Insecure }

// GetRequestMetadata implements credentials.PerRPCCredentials: the
// authorization header of the call's token. Under the interceptors, that
// is the token they obtained; without them, the key's current token,
// obtained with the call's context (its error then reaches the caller only
// as the text of an Unauthenticated status: use the interceptors).
func (c *Credentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	a, ok := ctx.Value(attemptKey{}).(*attempt)
	if !ok {
		tok, err := c.engine.Token(ctx, c.key(ctx))
		if err != nil {
			return nil, err
		}
		a = &attempt{tok: tok}
	}
	a.sent.Store(true)
	return map[string]string{"authorization": "Bearer " + a.tok.AccessToken}, nil
}

func (c *Credentials) key(ctx context.Context) string {
	if c.opts.Key != "" {
		return c.opts.Key
	}
	return refresh.KeyFrom(ctx)
}

// An attempt is one sending of a call with a token: sent records whether
// the credentials put the token into the call, so that only the server's
// Unauthenticated (not a local one) counts as its rejection.
type attempt struct {
	tok  *oauth2.Token
	sent atomic.Bool
}

type attemptKey struct{}

// start obtains the key's token for an attempt of a call: the engine's
// error, if any, is returned as it is.
func (c *Credentials) start(ctx context.Context, key string) (context.Context, *attempt, error) {
	tok, err := c.engine.Token(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	a := &attempt{tok: tok}
	return context.WithValue(ctx, attemptKey{}, a), a, nil
}

// rejected reports whether err is the server's rejection of a's token.
func (a *attempt) rejected(err error) bool {
	return a.sent.Load() && status.Code(err) == codes.Unauthenticated
}

// renew reports a's rejection (err) to the engine and returns the context
// of an attempt with the token that replaces it: a newer token if another
// call already replaced it, else a refreshed one. If there is none, it
// returns the error for the caller: err itself when refreshing the key is
// paused, else err joined with the engine's error (re-authentication
// required, ...), which errors.Is and status.Code both see.
func (c *Credentials) renew(ctx context.Context, key string, a *attempt, err error) (context.Context, *attempt, error) {
	tok, rerr := c.engine.Refresh(ctx, key, a.tok)
	switch {
	case errors.Is(rerr, refresh.ErrRefreshPaused):
		return nil, nil, err
	case rerr != nil:
		return nil, nil, &RejectedError{Status: status.Convert(err), Err: rerr}
	}
	b := &attempt{tok: tok}
	return context.WithValue(ctx, attemptKey{}, b), b, nil
}

// RejectedError is the error of a call whose token the server rejected
// (codes.Unauthenticated) and that the engine could not replace: Err is
// the engine's error (for errors.Is(err, refresh.ErrReauthRequired)) and
// Status the server's (for status.Code and status.FromError).
type RejectedError struct {
	Status *status.Status
	Err    error
}

func (e *RejectedError) Error() string {
	return e.Status.Err().Error() + "; " + e.Err.Error()
}

func (e *RejectedError) Unwrap() error { return e.Err }

// GRPCStatus lets status.FromError and status.Code see the server's status.
func (e *RejectedError) GRPCStatus() *status.Status { return e.Status }
