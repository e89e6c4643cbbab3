package refreshtest

import (
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// tokenRequest is a token request as the endpoint read it.
type tokenRequest struct {
	grantType string      // as sent; GrantRefreshToken in a JSON dialect
	rt        string      // the refresh token, "" if none could be read
	other     *otherGrant // a client-credentials or token exchange request; nil for a refresh
	header    bool        // it carried an Authorization header
	err       *oauthError // why it is refused; nil if it is well formed
}

// readRequest reads and checks a token request, strictly.
func (s *Server) readRequest(r *http.Request) tokenRequest {
	req := tokenRequest{header: len(r.Header.Values("Authorization")) > 0}
	if req.err = checkPost(r, "token"); req.err != nil {
		return req
	}
	if s.opts.JSON != nil {
		s.readJSON(r, &req)
		return req
	}
	form, err := readForm(r)
	req.grantType, req.rt = form.Get("grant_type"), form.Get("refresh_token")
	if req.err = err; req.err != nil {
		return req
	}
	if req.err = s.authenticate(r, form); req.err != nil {
		return req
	}
	if s.readOtherGrant(form, &req) {
		return req
	}
	if s.opts.Strict {
		if req.err = undefined(form, s.defined); req.err != nil {
			return req
		}
	}
	switch gt := form.Get("grant_type"); {
	case gt == "":
		req.err = refuse("invalid_request", "Missing grant_type.")
	case gt != "refresh_token":
		req.err = refuse("unsupported_grant_type", "Grant type %q is not supported here.", gt)
	case req.rt == "":
		req.err = refuse("invalid_request", "Missing refresh token.")
	case s.opts.Scope == "" && form.Has("scope"):
		req.err = refuse("invalid_scope", "No scope was granted; do not send one.")
	case s.opts.Scope != "" && form.Get("scope") != s.opts.Scope:
		req.err = refuse("invalid_scope", "The scope must be %q.", s.opts.Scope)
	}
	return req
}

// checkPost checks what every request to the endpoint named what wants:
// POST, and no query string.
func checkPost(r *http.Request, what string) *oauthError {
	switch {
	case r.Method != http.MethodPost:
		e := refuse("invalid_request", "The %s endpoint takes POST, not %s.", what, r.Method)
		e.status = http.StatusMethodNotAllowed
		return e
	case r.URL.RawQuery != "":
		return refuse("invalid_request", "Parameters belong in the body, not in the URL.")
	}
	return nil
}

// readForm reads a form body, strictly: the content type, the size, each
// parameter at most once. The form is returned with a refusal when it
// could be parsed, so that the refusal can name its token.
func readForm(r *http.Request) (url.Values, *oauthError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, refuse("invalid_request", "The body must be application/x-www-form-urlencoded.")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		return nil, refuse("invalid_request", "The body cannot be read or is too large.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, refuse("invalid_request", "The body is not a valid form.")
	}
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if len(form[k]) > 1 && !repeatable(form, k) {
			return form, refuse("invalid_request", "Parameter %s is repeated.", k)
		}
	}
	return form, nil
}

// undefined refuses the first parameter of form, in sorted order, that
// defined says does not belong in the request (Options.Strict).
func undefined(form url.Values, defined func(k string) bool) *oauthError {
	for _, k := range slices.Sorted(maps.Keys(form)) {
		if !defined(k) {
			return refuse("invalid_request", "Parameter %s is not one of this endpoint's.", k)
		}
	}
	return nil
}

// defined reports whether the form parameter k belongs in a refresh
// request of this server's dialect (RFC 6749 §2.3.1, §6).
func (s *Server) defined(k string) bool {
	switch k {
	case "grant_type", "refresh_token", "scope":
		return true
	}
	return s.credential(k)
}

// credential reports whether the form parameter k is where this server's
// client puts its credentials (RFC 6749 §2.3.1).
func (s *Server) credential(k string) bool {
	if s.assertionAuth() {
		return k == "client_id" || k == "client_assertion" || k == "client_assertion_type"
	}
	switch k {
	case "client_id":
		return s.opts.Public || s.opts.Auth == AuthBody
	case "client_secret":
		return !s.opts.Public && s.opts.Auth == AuthBody
	}
	return false
}

// formEncoded reports whether s could be the output of the
// application/x-www-form-urlencoded encoding: nothing that encoding escapes
// is left raw. ('*' is left raw by some encoders, such as Java's.)
func formEncoded(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~*%+", c) >= 0) {
			return false
		}
	}
	return true
}

// authenticate checks the client's credentials (RFC 6749 §2.3).
func (s *Server) authenticate(r *http.Request, form url.Values) *oauthError {
	if s.assertionAuth() {
		return s.authenticateAssertion(r, form)
	}
	authz := r.Header.Values("Authorization")
	inBody := form.Has("client_id") || form.Has("client_secret")
	switch {
	case len(authz) > 1:
		return refuse("invalid_request", "More than one Authorization header.")
	case len(authz) == 1 && inBody:
		return refuse("invalid_request", "Client credentials in both the Authorization header and the body; use one method.")
	}
	o := s.opts
	switch {
	case o.Public:
		if len(authz) > 0 || form.Has("client_secret") {
			return refuse("invalid_client", "A public client has no secret; send only client_id in the body.")
		}
		if form.Get("client_id") != o.ClientID {
			return refuse("invalid_client", "Unknown client_id.")
		}
	case o.Auth == AuthBody:
		if len(authz) > 0 {
			return refuse("invalid_client", "This client authenticates with client_id and client_secret in the body.")
		}
		if form.Get("client_id") != o.ClientID || form.Get("client_secret") != o.ClientSecret {
			return refuse("invalid_client", "Client authentication failed.")
		}
	default:
		id, secret, ok := r.BasicAuth()
		if !ok {
			return refuse("invalid_client", "This client authenticates with HTTP Basic.")
		}
		if o.Auth == AuthBasic {
			// RFC 6749 §2.3.1: form-urlencoded, then base64.
			if o.Strict && (!formEncoded(id) || !formEncoded(secret)) {
				return refuse("invalid_client", "Basic credentials are not form-urlencoded.")
			}
			var err1, err2 error
			id, err1 = url.QueryUnescape(id)
			secret, err2 = url.QueryUnescape(secret)
			if err1 != nil || err2 != nil {
				return refuse("invalid_client", "Basic credentials are not form-urlencoded.")
			}
		}
		if id != o.ClientID || secret != o.ClientSecret {
			return refuse("invalid_client", "Client authentication failed.")
		}
	}
	return nil
}

// readJSON reads and checks a request of the JSON dialect.
func (s *Server) readJSON(r *http.Request, req *tokenRequest) {
	j := s.opts.JSON
	req.grantType = GrantRefreshToken // the only one the dialect has
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		req.err = refuse("invalid_request", "The body must be application/json.")
		return
	}
	if s.opts.Strict && req.header {
		req.err = refuse("invalid_request", "This endpoint takes no Authorization header.")
		return
	}
	for _, name := range slices.Sorted(maps.Keys(j.Header)) {
		if !slices.Equal(r.Header.Values(name), j.Header[name]) {
			req.err = refuse("invalid_request", "Header %s must be %q.", name, j.Header[name])
			return
		}
	}
	if s.opts.Strict {
		// HTTP field names match in any case (RFC 9110 §5.1); a
		// look-alike such as partner-id for partnerId is a deviation.
		squash := strings.NewReplacer("-", "", "_", "")
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			for name := range j.Header {
				if !strings.EqualFold(k, name) && strings.EqualFold(squash.Replace(k), squash.Replace(name)) {
					req.err = refuse("invalid_request", "Header %s is not %s.", k, name)
					return
				}
			}
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		req.err = refuse("invalid_request", "The body cannot be read or is too large.")
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		req.err = refuse("invalid_request", "The body is not a JSON object.")
		return
	}
	rt, ok := m[j.Field].(string)
	if !ok || rt == "" {
		req.err = refuse("invalid_request", "Missing refresh token.")
		return
	}
	req.rt = rt
	if s.opts.Strict && len(m) != 1 {
		req.err = refuse("invalid_request", "The body must hold %s and nothing else.", j.Field)
	}
}
