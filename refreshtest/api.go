package refreshtest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ScopeNeededPath is the path of the protected API that answers every bearer
// token, valid or not, with 403 and error="insufficient_scope": refreshing
// cannot help there (RFC 6750 §3.1).
const ScopeNeededPath = "/scope-needed"

// GrantHeader is the response header in which the protected API names the
// grant (1, 2, … in the order they started: [Server.Token] calls,
// client-credentials grants, token exchanges) of the access token it
// accepted, so a multi-user test can check that tokens never cross users.
const GrantHeader = "Refreshtest-Grant"

// Challenges of the protected API (RFC 6750 §3).
const (
	challengeNoToken = `Bearer realm="refreshtest"`
	challengeInvalid = `Bearer realm="refreshtest", error="invalid_token"`
	challengeScope   = `Bearer realm="refreshtest", error="insufficient_scope"`
	challengeRequest = `Bearer realm="refreshtest", error="invalid_request"`
)

// serveAPI is the protected API: any path, any method. A live access token
// gets 200 with "ok" for GET and HEAD and the request body echoed for other
// methods, so a test can check that a retried request carried its body.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	authz := r.Header.Values("Authorization")
	token, bearer := "", false
	if len(authz) == 1 {
		scheme, rest, _ := strings.Cut(authz[0], " ")
		switch {
		case s.opts.Strict:
			// As RFC 6750 §2.1 spells it: "Bearer", one space.
			if scheme == "Bearer" && !strings.HasPrefix(rest, " ") {
				token, bearer = rest, true
			}
		case strings.EqualFold(scheme, "Bearer"):
			token, bearer = strings.TrimLeft(rest, " "), true
		}
	}

	s.mu.Lock()
	s.stats.APIRequests++
	status, challenge, msg, grantID := http.StatusOK, "", "", 0
	switch {
	case len(authz) > 1:
		status, challenge, msg = http.StatusBadRequest, challengeRequest, "more than one Authorization header"
	case !bearer:
		// RFC 6750 §3.1: no error code when the request has no token.
		status, challenge, msg = http.StatusUnauthorized, challengeNoToken, "a bearer token is required"
	case r.URL.Path == ScopeNeededPath:
		status, challenge, msg = http.StatusForbidden, challengeScope, "insufficient_scope: no token has the scope this path needs"
	default:
		a := s.access[token]
		if why := a.notLive(s.opts.Now()); why != "" {
			status, challenge, msg = http.StatusUnauthorized, challengeInvalid, "invalid_token: the access token "+why
		} else {
			grantID = a.g.id
		}
	}
	switch status {
	case http.StatusOK:
		s.stats.Served200++
	case http.StatusUnauthorized:
		s.stats.Served401++
	case http.StatusForbidden:
		s.stats.Served403++
	case http.StatusBadRequest:
		s.stats.Served400++
	}
	s.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if status != http.StatusOK {
		if status != http.StatusUnauthorized || !s.opts.BareUnauthorized {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		w.WriteHeader(status)
		io.WriteString(w, msg+"\n")
		return
	}
	w.Header().Set(GrantHeader, strconv.Itoa(grantID))
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		io.WriteString(w, "ok")
		return
	}
	io.Copy(w, r.Body)
}

// notLive says why a, which may be nil, is not a live access token ("is
// unknown", "was revoked", "has expired"), or "" if it is live: the API
// and token exchange judge tokens alike.
func (a *accessToken) notLive(now time.Time) string {
	switch {
	case a == nil:
		return "is unknown"
	case a.revoked || a.g.revoked:
		return "was revoked"
	case !a.expiry.IsZero() && !now.Before(a.expiry):
		return "has expired"
	}
	return ""
}
