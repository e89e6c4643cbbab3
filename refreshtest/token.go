package refreshtest

import (
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"time"
)

// maxRequestBody caps what the token endpoint reads of a request.
const maxRequestBody = 1 << 20

// oauthError is a refusal (RFC 6749 §5.2).
type oauthError struct {
	code, desc string
	status     int // ErrorsRFC status; 0 means 401 for invalid_client, else 400
}

func refuse(code, format string, args ...any) *oauthError {
	return &oauthError{code: code, desc: fmt.Sprintf(format, args...)}
}

// answer is a response, built under the lock and written after it.
type answer struct {
	status  int
	header  http.Header
	body    []byte
	refused *oauthError // the refusal it answers; nil for a grant
}

func (a answer) write(w http.ResponseWriter) {
	for k, vs := range a.header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// tokenJSON is a successful token response (RFC 6749 §5.1).
type tokenJSON struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType is only in token exchange answers (RFC 8693 §2.2.1).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// serveAuth is the authorization server: its token and revocation
// endpoints share a listener, as they share a host in production.
func (s *Server) serveAuth(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case s.opts.TokenPath:
		s.serveToken(w, r)
	case s.opts.RevocationPath:
		s.serveRevocation(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	req := s.readRequest(r)

	// Decide on arrival what happens to the request: whether it fails, and
	// whether it is the loser of a concurrent refresh.
	s.mu.Lock()
	s.stats.TokenRequests++
	f := s.faults
	failing := s.fail(f.Rate)
	handled := !failing || f.AfterGrant
	loser := false
	// Only a refresh spends a token that a concurrent request may hold.
	tracked := handled && req.err == nil && req.other == nil
	if tracked {
		if s.opts.ConcurrentLoserInvalidRequest && s.inflight[req.rt] > 0 {
			loser, tracked = true, false
		} else {
			s.inflight[req.rt]++
		}
	}
	var ev TokenEvent
	s.presented(req, &ev)
	gate := s.gate
	if gate != nil {
		gate.arrive()
	}
	s.mu.Unlock()
	if tracked {
		defer func() {
			s.mu.Lock()
			if s.inflight[req.rt]--; s.inflight[req.rt] == 0 {
				delete(s.inflight, req.rt)
			}
			s.mu.Unlock()
		}()
	}

	if gate != nil && !gate.wait(s.closing) {
		panic(http.ErrAbortHandler) // closing: abandon the request unanswered
	}
	if !s.wait(f.Latency) {
		panic(http.ErrAbortHandler)
	}
	var a answer
	if handled {
		s.mu.Lock()
		switch {
		case loser:
			s.stats.ConcurrentLosers++
			a = s.refusal(req, refuse("invalid_request", "Another request is refreshing this token at the same time; please retry."))
			ev.Kind, ev.Code = TokenRefused, "invalid_request"
		case req.err != nil:
			a = s.refusal(req, req.err)
			ev.Kind, ev.Code = TokenRefused, req.err.code
		case req.grantType == GrantClientCredentials:
			a = s.clientCredentials(req, &ev)
		case req.grantType == GrantTokenExchange:
			a = s.tokenExchange(req, &ev)
		default:
			a = s.refreshGrant(req, &ev)
		}
		if a.refused != nil {
			ev.Description = a.refused.desc
		}
		ev.Time = s.opts.Now()
		s.mu.Unlock()
	}
	if failing {
		s.mu.Lock()
		s.stats.Faults++
		if !handled {
			ev.Kind, ev.Time = TokenFault, s.opts.Now()
		}
		s.mu.Unlock()
		ev.Dropped, ev.Fault = handled, f.Kind
		s.notify(r, ev)
		s.fault(w, r, f)
		return
	}
	s.notify(r, ev)
	a.write(w)
}

// fail reports whether the next request fails, given the failure rate:
// each request owes rate of a failure, and fails while a debt is left.
// Called with mu held.
func (s *Server) fail(rate float64) bool {
	if rate <= 0 {
		return false
	}
	s.faultDebt += rate
	if s.faultDebt > 1e-9 { // not 0: 1/3+1/3+1/3 may exceed 1
		s.faultDebt--
		return true
	}
	return false
}

// refreshGrant handles a well-formed refresh request and records what it
// did in ev. Called with mu held.
func (s *Server) refreshGrant(req tokenRequest, ev *TokenEvent) answer {
	now := s.opts.Now()
	r := s.refresh[req.rt]
	ev.Kind, ev.Code = TokenRefused, "invalid_grant" // unless granted below
	switch {
	case r == nil:
		return s.refusal(req, refuse("invalid_grant", "The refresh token is invalid."))
	case r.g.revoked:
		if !r.spent.IsZero() {
			s.stats.Reuses++
			ev.Kind, ev.Reuse = TokenReuse, true
		}
		return s.refusal(req, refuse("invalid_grant", "The grant was revoked."))
	case !r.spent.IsZero():
		s.stats.Reuses++
		ev.Reuse = true
		inGrace := now.Before(r.spent.Add(s.opts.Grace))
		switch {
		case s.opts.Rotation == RotateGrace && inGrace && r.next.spent.IsZero():
			s.stats.Refreshes++
			ev.granted(r.g.id, r.next.n)
			return success(r.answer)
		case s.opts.Rotation == RotateGraceNew && inGrace:
			a, next := s.rotate(r, now)
			ev.granted(r.g.id, next.n)
			return a
		}
		ev.Kind = TokenReuse
		if s.opts.LenientReuse {
			return s.refusal(req, refuse("invalid_grant", "The refresh token was already used."))
		}
		r.g.revoked = true
		s.stats.FamiliesRevoked++
		ev.Revoked = true
		return s.refusal(req, refuse("invalid_grant", "The refresh token was already used; every token of its grant is revoked."))
	case r.refused != nil:
		ev.Code = r.refused.code
		return s.refusal(req, r.refused)
	case !r.expiry.IsZero() && !now.Before(r.expiry):
		return s.refusal(req, refuse("invalid_grant", "The refresh token has expired."))
	}
	if s.opts.Rotation == RotateNever || s.opts.Rotation == RotateSame {
		at, _ := s.issueAccess(r.g, now)
		ev.granted(r.g.id, r.g.n)
		t := tokenJSON{AccessToken: at}
		if s.opts.Rotation == RotateSame {
			t.RefreshToken = req.rt
		}
		body := s.marshal(t, r.g)
		r.g.n++
		s.stats.Refreshes++
		return success(body)
	}
	a, next := s.rotate(r, now)
	ev.granted(r.g.id, next.n)
	if r.spent.IsZero() {
		r.spent, r.answer, r.next = now, a.body, next
	}
	return a
}

// rotate issues a new pair of r's grant. Called with mu held.
func (s *Server) rotate(r *refreshToken, now time.Time) (answer, *refreshToken) {
	at, _ := s.issueAccess(r.g, now)
	rt, next := s.issueRefresh(r.g, now)
	body := s.marshal(tokenJSON{AccessToken: at, RefreshToken: rt}, r.g)
	r.g.n++
	s.stats.Refreshes++
	s.stats.Rotations++
	return success(body), next
}

// marshal fills in the fields every token response has, and the members
// of Options.Extra for g's pair number g.n. Called with mu held.
func (s *Server) marshal(t tokenJSON, g *grant) []byte {
	t.TokenType = s.opts.TokenType
	t.ExpiresIn = s.expiresIn()
	t.Scope = g.scope
	b, _ := json.Marshal(t) // cannot fail
	ex := s.extra(g.id, g.n)
	if len(ex) == 0 {
		return b
	}
	var m map[string]any
	json.Unmarshal(b, &m) // cannot fail: b is an object
	for k, v := range ex {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic("refreshtest: Options.Extra returned a member that JSON cannot encode")
	}
	return b
}

// extra returns the members of Options.Extra for a pair.
func (s *Server) extra(grant, pair int) map[string]any {
	if s.opts.Extra == nil {
		return nil
	}
	return s.opts.Extra(grant, pair)
}

func success(body []byte) answer {
	return answer{status: http.StatusOK, header: http.Header{
		"Content-Type":  {"application/json;charset=UTF-8"},
		"Cache-Control": {"no-store"},
		"Pragma":        {"no-cache"},
	}, body: body}
}

// refusal counts e and builds its answer in the configured style. Called
// with mu held.
func (s *Server) refusal(req tokenRequest, e *oauthError) answer {
	switch e.code {
	case "invalid_request":
		s.stats.InvalidRequest++
	case "invalid_client":
		s.stats.InvalidClient++
	case "invalid_grant":
		s.stats.InvalidGrant++
	case "invalid_scope":
		s.stats.InvalidScope++
	case "unsupported_grant_type":
		s.stats.UnsupportedGrantType++
	case "unsupported_token_type":
		s.stats.UnsupportedTokenType++
	case "unauthorized_client":
		s.stats.UnauthorizedClient++
	case "invalid_target":
		s.stats.InvalidTarget++
	}
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
		if e.code == "invalid_client" {
			status = http.StatusUnauthorized
		}
	}
	h := http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	switch s.opts.Errors {
	case Errors500:
		status = http.StatusInternalServerError
	case ErrorsRFC, ErrorsHTML:
		if status == http.StatusUnauthorized && req.header {
			// RFC 6749 §5.2: a client that tried the Authorization
			// header gets a challenge for the scheme it used.
			h.Set("WWW-Authenticate", `Basic realm="refreshtest"`)
		}
	}
	if s.opts.Errors == ErrorsHTML {
		h.Set("Content-Type", "text/html;charset=UTF-8")
		return answer{status: status, header: h, body: s.errorPage(status, e, req), refused: e}
	}
	h.Set("Content-Type", "application/json;charset=UTF-8")
	body, _ := json.Marshal(map[string]string{"error": e.code, "error_description": e.desc})
	return answer{status: status, header: h, body: body, refused: e}
}

// errorPage is the ErrorsHTML page refusing req with e: no OAuth code, but
// the description, and the token req presented and the client's
// credentials quoted, as such pages do.
func (s *Server) errorPage(status int, e *oauthError, req tokenRequest) []byte {
	quoted := " Refresh token: " + req.rt
	switch {
	case req.other == nil:
	case req.other.subject != "":
		quoted = " Subject token: " + req.other.subject
	default:
		quoted = "" // client credentials present no token
	}
	var client string
	switch o := s.opts; {
	case o.JSON != nil:
	case o.Public:
		client = fmt.Sprintf(" (client %s)", o.ClientID)
	default:
		client = fmt.Sprintf(" (client %s, secret %s)", o.ClientID, o.ClientSecret)
	}
	text := http.StatusText(status)
	return fmt.Appendf(nil, "<!DOCTYPE html>\n<html><head><title>%d %s</title><style>h1{color:red}</style></head>\n"+
		"<body><h1>%[2]s</h1>\n<p>%s%s%s.</p></body></html>\n",
		status, text, html.EscapeString(e.desc), html.EscapeString(quoted), html.EscapeString(client))
}
