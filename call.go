package refresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/oauth2"
)

// call calls the endpoint with base's refresh token, again after a
// temporary failure, up to e.attempts times within ctx's deadline. Before
// each new attempt it asks peer, if set, for a token someone else saved
// meanwhile (a process that took the lock after ours expired): if there is
// one, it returns it as newer instead of sending base's refresh token again,
// which may be spent by now.
//
// Each attempt is recorded in ev.Requests.
func (e *Engine) call(ctx context.Context, key string, base *oauth2.Token, ev *Event, peer func() *oauth2.Token) (nt, newer *oauth2.Token, x *Error) {
	return e.calls(ctx, key, base, ev, peer, func(ctx context.Context) (*oauth2.Token, error) {
		return e.endpointRefresh(ctx, copyToken(base))
	})
}

// fetch is call for a Fetcher's grant: the key has no refresh token.
func (e *Engine) fetch(ctx context.Context, key string, ev *Event) (*oauth2.Token, *Error) {
	nt, _, x := e.calls(ctx, key, nil, ev, nil, func(ctx context.Context) (*oauth2.Token, error) {
		return e.endpointFetch(ctx, key)
	})
	if x != nil && x.StatusCode != 0 && errors.Is(x, ErrReauthRequired) {
		// Nobody's login can mend a grant the server refused: the client
		// must be configured anew (see Fetcher). An error of the grant's
		// own inputs (the subject token of another key) stays as it is.
		c := *x
		c.Err = errGrantRefused
		x = &c
	}
	return nt, x
}

// errGrantRefused is the error of a Fetcher's grant that the token endpoint
// refused.
var errGrantRefused = fmt.Errorf("%w: the token endpoint refused the grant", ErrClientConfig)

// calls makes the token request req on behalf of call and fetch.
func (e *Engine) calls(ctx context.Context, key string, base *oauth2.Token, ev *Event, peer func() *oauth2.Token, req func(context.Context) (*oauth2.Token, error)) (nt, newer *oauth2.Token, x *Error) {
	delay := retryBase
	for attempt := 1; ; attempt++ {
		nt, x := e.attempt(ctx, key, base, ev, req)
		if x == nil {
			return nt, nil, nil
		}
		if !x.Temporary() || attempt >= e.attempts {
			return nil, nil, x
		}
		wait := max(delay/2+rand.N(delay/2+1), x.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return nil, nil, x // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, nil, x
		}
		if peer != nil {
			if t := peer(); t != nil {
				return nil, t, nil
			}
		}
		delay = min(2*delay, retryMax)
	}
}

// attempt calls the endpoint once, through call, and records the call in ev.
func (e *Engine) attempt(ctx context.Context, key string, base *oauth2.Token, ev *Event, call func(context.Context) (*oauth2.Token, error)) (*oauth2.Token, *Error) {
	req := TokenRequest{Start: time.Now()}
	nt, err := call(ctx)
	req.Duration = time.Since(req.Start)
	if err == nil && (nt == nil || nt.AccessToken == "") {
		err = fmt.Errorf("%w: token endpoint returned no access token", ErrReauthRequired)
	}
	var x *Error
	if err != nil {
		x = classify(key, err, base)
		req.StatusCode, req.Code, req.Err = x.StatusCode, x.Code, x
	}
	if len(ev.Requests) < maxEventRequests {
		ev.Requests = append(ev.Requests, req)
	}
	return nt, x
}

// maxEventRequests bounds Event.Requests, for a RefreshAttempts set high.
const maxEventRequests = 16

// cooldown is how long a key waits after a temporary failure.
func cooldown(x *Error) time.Duration {
	return max(retryBase, x.RetryAfter)
}

// awaitPeer re-reads the store, a few times over about a second, for a
// token that a concurrent refresh may be about to save (see peerToken).
func (e *Engine) awaitPeer(ctx context.Context, key string, ent *entry, base *oauth2.Token) *oauth2.Token {
	wait := 100 * time.Millisecond
	for range 4 {
		if t := e.peerToken(ctx, key, ent, base); t != nil {
			return t
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait *= 2
	}
	return nil
}

// peerToken reads the store once for a token someone else saved: one with
// a refresh token other than base's, and not one of this engine's own (the
// older token a failed save left in the store is not a peer's, and its
// refresh token is spent). Called with ent.mu held.
func (e *Engine) peerToken(ctx context.Context, key string, ent *entry, base *oauth2.Token) *oauth2.Token {
	t, err := e.storeLoad(ctx, key)
	if err == nil && t != nil && t.RefreshToken != "" && t.RefreshToken != base.RefreshToken && !ent.ours(t) {
		return copyToken(t)
	}
	return nil
}
