package refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/oauth2"
)

// JSONEndpoint refreshes with a JSON request body, for token endpoints
// that do not take a form, such as the partner API that wants
// {"refreshToken": "…"} with headers partnerId and grantType. The response
// is read like a standard one (access_token, refresh_token, expires_in,
// token_type, error).
type JSONEndpoint struct {
	// URL is the token endpoint. Required.
	URL string
	// Field is the JSON member that carries the refresh token. Optional:
	// empty means "refresh_token".
	Field string
	// Body holds other members of the request body, sent as they are (for
	// example "grant_type": "refresh_token"). Optional.
	Body map[string]any
	// Header holds extra request headers, such as an API key or a partner
	// id. Optional.
	Header http.Header
	// HTTPClient, AllowHTTP and KeepExtra are as in FormEndpoint.
	HTTPClient *http.Client
	AllowHTTP  bool
	KeepExtra  []string
}

// Refresh implements [Endpoint].
func (j *JSONEndpoint) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	if err := j.validate(); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %w", ErrClientConfig, err)}
	}
	body := make(map[string]any, len(j.Body)+1)
	for k, v := range j.Body {
		body[k] = v
	}
	field := j.Field
	if field == "" {
		field = "refresh_token"
	}
	body[field] = tok.RefreshToken
	b, err := json.Marshal(body)
	if err != nil {
		return nil, &Error{Err: errors.New("JSONEndpoint.Body cannot be encoded as JSON")}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, bytes.NewReader(b))
	if err != nil {
		return nil, &Error{Err: errors.New("cannot build the token request")}
	}
	copyHeader(req.Header, j.Header)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return send(httpClient(j.HTTPClient), req, keepNames(j.KeepExtra), tok.RefreshToken, tok.AccessToken)
}

func (j *JSONEndpoint) validate() error {
	if err := checkURL("token endpoint URL", j.URL, j.AllowHTTP, "set JSONEndpoint.AllowHTTP"); err != nil {
		return err
	}
	if err := checkKeepExtra("JSONEndpoint", j.KeepExtra); err != nil {
		return err
	}
	return checkClient(j.HTTPClient)
}
