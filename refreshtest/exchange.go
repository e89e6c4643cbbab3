package refreshtest

import (
	"cmp"
	"net/url"
)

// checkExchange checks the token parameters of a token exchange request
// (RFC 8693 §2.1); the tokens themselves are judged when it is handled.
func checkExchange(form url.Values) *oauthError {
	actor := form.Get("actor_token") != ""
	switch {
	case form.Get("subject_token") == "":
		return refuse("invalid_request", "Missing subject_token.")
	case form.Get("subject_token_type") == "":
		return refuse("invalid_request", "Missing subject_token_type.")
	case form.Get("subject_token_type") != TokenTypeAccessToken:
		return refuse("invalid_request", "subject_token_type must be %s: this server issues no other tokens.", TokenTypeAccessToken)
	case actor && form.Get("actor_token_type") == "":
		return refuse("invalid_request", "Missing actor_token_type: actor_token needs it.")
	case !actor && form.Has("actor_token_type"):
		return refuse("invalid_request", "actor_token_type without actor_token.")
	case actor && form.Get("actor_token_type") != TokenTypeAccessToken:
		return refuse("invalid_request", "actor_token_type must be %s: this server issues no other tokens.", TokenTypeAccessToken)
	case form.Has("requested_token_type") && form.Get("requested_token_type") != TokenTypeAccessToken:
		return refuse("invalid_request", "requested_token_type must be %s: this server issues no other tokens.", TokenTypeAccessToken)
	}
	return nil
}

// tokenExchange handles a well-formed token exchange request: a live
// subject token (and actor token, if any) of this server gets the access
// token of a new grant. The new grant does not descend from the subject's:
// revoking either leaves the other alone, as when the exchanged token is
// meant for another service. Called with mu held.
//
// RFC 8693 §2.2.2 asks for invalid_request when a presented token is
// invalid; the server answers invalid_grant, as most servers do (and as it
// answers a dead refresh token), so a client can tell a dead subject from a
// malformed request.
func (s *Server) tokenExchange(req tokenRequest, ev *TokenEvent) answer {
	now := s.opts.Now()
	subject := s.access[req.other.subject]
	why, what := subject.notLive(now), "subject"
	if why == "" && req.other.actor != "" {
		why, what = s.access[req.other.actor].notLive(now), "actor"
	}
	if why != "" {
		ev.Kind, ev.Code = TokenRefused, "invalid_grant"
		return s.refusal(req, refuse("invalid_grant", "The %s token %s.", what, why))
	}
	s.stats.TokenExchanges++
	t := tokenJSON{IssuedTokenType: TokenTypeAccessToken}
	return s.startGrant(cmp.Or(req.other.scope, subject.g.scope), s.opts.TokenExchange, t, ev)
}

// tokenExchangeParam reports whether the form parameter k belongs in a
// token exchange request (RFC 8693 §2.1).
func (s *Server) tokenExchangeParam(k string) bool {
	switch k {
	case "grant_type", "scope", "audience", "resource", "requested_token_type",
		"subject_token", "subject_token_type", "actor_token", "actor_token_type":
		return true
	}
	return s.credential(k)
}
