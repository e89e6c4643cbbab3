package refreshtest

import (
	"fmt"
	"net/http"
	"time"
)

// A TokenEventKind is what the token endpoint did with a request.
type TokenEventKind int

const (
	// TokenGranted is a granted request: new tokens were issued, or a
	// RotateGrace reuse was answered with the first answer again.
	TokenGranted TokenEventKind = iota + 1
	// TokenReuse is a spent refresh token presented again and refused:
	// a reuse outside any grace window (Stats.Reuses). It revokes the
	// grant unless Options.LenientReuse is set or the grant was revoked
	// already; TokenEvent.Revoked tells.
	TokenReuse
	// TokenRefused is any other refusal; TokenEvent.Code is its OAuth
	// error code: invalid_grant for a refresh or subject token that is
	// unknown, expired or of a revoked grant, invalid_request,
	// invalid_client…
	TokenRefused
	// TokenFault is a request answered with an injected fault (see
	// [Faults]) without being handled: its refresh token was not used,
	// nor were any tokens issued.
	TokenFault
)

func (k TokenEventKind) String() string {
	switch k {
	case TokenGranted:
		return "TokenGranted"
	case TokenReuse:
		return "TokenReuse"
	case TokenRefused:
		return "TokenRefused"
	case TokenFault:
		return "TokenFault"
	}
	return fmt.Sprintf("TokenEventKind(%d)", int(k))
}

// A TokenEvent tells what the token endpoint did with one request, for
// Options.OnTokenRequest: enough to follow each token family (which pair was
// presented, which one was issued, who asked) without any token value.
//
// Pairs are numbered within their grant as in token values
// ("rt-<grant>-<pair>-…"): 0 is the login's ([Server.Token]), n the pair the
// n-th granted refresh of the grant issued.
type TokenEvent struct {
	Kind TokenEventKind

	// GrantType is the grant_type the request named, as sent:
	// [GrantRefreshToken] (always in a JSON dialect),
	// [GrantClientCredentials], [GrantTokenExchange], another one the
	// server refused, or "" if none could be read.
	GrantType string

	// Time is when the server decided, on its clock (Options.Now): after
	// Faults.Latency, before the answer was written.
	Time time.Time

	// Grant and Pair name the token the request presented: the refresh
	// token of a refresh, the subject token of a token exchange. Grant is
	// 0 (and Pair too) when the request carried no such token the server
	// issued, as with every client-credentials request.
	Grant, Pair int

	// NewGrant and NewPair name the tokens a granted request returned: for
	// a refresh, Grant and its next pair (with RotateNever, the new access
	// token's; the refresh token stays); for a client-credentials grant
	// or a token exchange, the new grant it started, and pair 0. Both are
	// 0 unless Kind is TokenGranted.
	NewGrant, NewPair int

	// Actor names the grant of the actor token of a token exchange; 0
	// when there is none or the server did not issue it.
	Actor int

	// Scope, Audience and Resource are the scope, audience and resource
	// parameters of a client-credentials or token exchange request, as
	// sent (audience and resource may be repeated); empty for a refresh.
	Scope              string
	Audience, Resource []string

	// Reuse reports that the refresh token presented was spent already
	// (counted in Stats.Reuses): always for TokenReuse, and for a
	// TokenGranted within a grace window.
	Reuse bool

	// Revoked reports that this request revoked its grant (counted in
	// Stats.FamiliesRevoked).
	Revoked bool

	// Code is the OAuth error code of a refusal (TokenReuse,
	// TokenRefused); empty otherwise.
	Code string

	// Description is the error_description of a refusal, which says what
	// the server found wrong ("Parameter client_secret is repeated.",
	// "The scope must be \"PRODUCTION\"."), so that a test can report it;
	// empty otherwise. It never quotes a token or a client secret.
	Description string

	// Dropped reports that the request was handled (Kind is not
	// TokenFault) but its answer was replaced by the injected fault Fault
	// (Faults.AfterGrant): for a TokenGranted, the tokens were issued and
	// the refresh token spent, but the client never learns them.
	Dropped bool

	// Fault is the injected fault that answered the request; meaningful
	// only when Kind is TokenFault or Dropped is set.
	Fault Fault

	// Header is a copy of the request's header, for tests that tell their
	// clients apart by a header of their own.
	Header http.Header
}

// granted records a granted request that returned pair n of grant g.
func (ev *TokenEvent) granted(g, n int) {
	ev.Kind, ev.Code, ev.NewGrant, ev.NewPair = TokenGranted, "", g, n
}

// presented fills in the parts of ev that req tells on arrival: the grant
// type, what it asked for, and the grant and pair of the token it
// presented, or zeros if the server did not issue it. Called with mu held.
func (s *Server) presented(req tokenRequest, ev *TokenEvent) {
	ev.GrantType = req.grantType
	if o := req.other; o != nil {
		ev.Scope, ev.Audience, ev.Resource = o.scope, o.audience, o.resource
		if a := s.access[o.subject]; a != nil {
			ev.Grant, ev.Pair = a.g.id, a.n
		}
		if a := s.access[o.actor]; a != nil {
			ev.Actor = a.g.id
		}
		return
	}
	if r := s.refresh[req.rt]; r != nil {
		ev.Grant, ev.Pair = r.g.id, r.n
	}
}

// notify passes ev, for request r, to Options.OnTokenRequest. Called
// without mu held.
func (s *Server) notify(r *http.Request, ev TokenEvent) {
	if f := s.opts.OnTokenRequest; f != nil {
		ev.Header = r.Header.Clone()
		f(ev)
	}
}
