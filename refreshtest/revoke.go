package refreshtest

import "net/http"

// serveRevocation is the revocation endpoint (RFC 7009). It shares the
// token endpoint's client authentication, error style and faults: one
// authorization server, up or down as a whole.
func (s *Server) serveRevocation(w http.ResponseWriter, r *http.Request) {
	req, hint := s.readRevocation(r)

	s.mu.Lock()
	s.stats.RevocationRequests++
	f := s.faults
	failing := s.fail(f.Rate)
	s.mu.Unlock()

	if !s.wait(f.Latency) {
		panic(http.ErrAbortHandler)
	}
	var a answer
	if !failing || f.AfterGrant {
		s.mu.Lock()
		a = s.revocation(req, hint)
		s.mu.Unlock()
	}
	if failing {
		s.mu.Lock()
		s.stats.Faults++
		s.mu.Unlock()
		s.fault(w, r, f)
		return
	}
	a.write(w)
}

// readRevocation reads and checks a revocation request, as strictly as
// readRequest reads a refresh: its rt is the token to revoke, of either
// kind, and hint its token_type_hint.
func (s *Server) readRevocation(r *http.Request) (req tokenRequest, hint string) {
	req.header = len(r.Header.Values("Authorization")) > 0
	if req.err = checkPost(r, "revocation"); req.err != nil {
		return req, ""
	}
	form, err := readForm(r)
	req.rt, hint = form.Get("token"), form.Get("token_type_hint")
	if req.err = err; req.err != nil {
		return req, hint
	}
	if req.err = s.authenticate(r, form); req.err != nil {
		return req, hint
	}
	if s.opts.Strict {
		if req.err = undefined(form, s.revocationParam); req.err != nil {
			return req, hint
		}
		if form.Has("token_type_hint") && hint != "access_token" && hint != "refresh_token" {
			// RFC 7009 §2.1 lets a server ignore a hint it does not
			// know; a strict one tells the client instead.
			req.err = refuse("invalid_request", "token_type_hint must be access_token or refresh_token.")
			return req, hint
		}
	}
	if req.rt == "" {
		req.err = refuse("invalid_request", "Missing token.")
	}
	return req, hint
}

// revocationParam reports whether the form parameter k belongs in a
// revocation request (RFC 7009 §2.1).
func (s *Server) revocationParam(k string) bool {
	return k == "token" || k == "token_type_hint" || s.credential(k)
}

// revocation handles a revocation request. The hint only matters to
// RevokeRefreshTokensOnly: a server looks the token up among every kind
// whatever the hint says (RFC 7009 §2.1). Called with mu held.
func (s *Server) revocation(req tokenRequest, hint string) answer {
	if req.err != nil {
		return s.refusal(req, req.err)
	}
	_, refresh := s.refresh[req.rt]
	_, access := s.access[req.rt]
	if s.opts.RevokeRefreshTokensOnly && !refresh && (access || hint == "access_token") {
		return s.refusal(req, refuse("unsupported_token_type", "This server revokes refresh tokens only."))
	}
	if s.revoke(req.rt) {
		s.stats.Revocations++
	}
	// RFC 7009 §2.2: 200 for a revoked token and for an unknown one alike,
	// with a body the client ignores.
	return answer{status: http.StatusOK, header: http.Header{"Cache-Control": {"no-store"}, "Pragma": {"no-cache"}}}
}
