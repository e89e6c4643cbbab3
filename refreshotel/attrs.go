package refreshotel

import (
	"errors"
	"reflect"
	"strings"

	"github.com/oauthkit/refresh"
	"go.opentelemetry.io/otel/attribute"
)

// The attributes of the instruments and spans.
const (
	attrTrigger = attribute.Key("oauth2.refresh.trigger") // refresh.Trigger's name
	attrOutcome = attribute.Key("oauth2.refresh.outcome") // refresh.Outcome's name
	attrCode    = attribute.Key("oauth2.error.code")      // a known OAuth error code, or "_OTHER"
	attrStatus  = attribute.Key("http.response.status_code")
	attrError   = attribute.Key("error.type")             // reauth_required, client_config, temporary, failed
	attrReason  = attribute.Key("oauth2.resend.reason")   // replaced, refreshed, adopted
	attrStore   = attribute.Key("oauth2.store.kind")      // see StoreKind
	attrStoreOp = attribute.Key("oauth2.store.operation") // lock, unlock
	attrOld     = attribute.Key("oauth2.token.old")       // refresh.Fingerprint of the token replaced
	attrNew     = attribute.Key("oauth2.token.new")       // refresh.Fingerprint of the token put in place
)

// other stands for a value outside the known set, as in OpenTelemetry's
// semantic conventions.
const other = "_OTHER"

// knownCodes are the OAuth error codes that the RFCs define: RFC 6749 §5.2
// and §4.1.2.1, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 8628 §3.5, RFC 8693
// §2.2.2, RFC 9449 §12.2, OpenID Connect Core §3.1.2.6.
var knownCodes = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
	"access_denied": true, "unsupported_response_type": true, "server_error": true,
	"temporarily_unavailable": true, "invalid_token": true, "insufficient_scope": true,
	"unsupported_token_type": true, "authorization_pending": true, "slow_down": true,
	"expired_token": true, "invalid_target": true, "invalid_dpop_proof": true,
	"use_dpop_nonce": true, "interaction_required": true, "login_required": true,
	"consent_required": true, "account_selection_required": true,
}

// code returns the attribute value of a server's OAuth error code.
func code(c string) string {
	if knownCodes[c] {
		return c
	}
	return other
}

// errorType classifies a failure for the error.type attribute.
func errorType(err error) string {
	var x *refresh.Error
	switch {
	case errors.Is(err, refresh.ErrReauthRequired):
		return "reauth_required"
	case errors.Is(err, refresh.ErrClientConfig):
		return "client_config"
	case errors.As(err, &x) && x.Temporary():
		return "temporary"
	}
	return "failed"
}

// reasons names where the token of a resend came from (Event.Outcome).
var reasons = map[refresh.Outcome]string{
	refresh.OutcomeAdoptedMemory: "replaced",
	refresh.OutcomeRefreshed:     "refreshed",
	refresh.OutcomeAdoptedStore:  "adopted",
}

func reason(o refresh.Outcome) string {
	if r, ok := reasons[o]; ok {
		return r
	}
	return other
}

// StoreKind returns the name a store is reported under (the
// oauth2.store.kind attribute): "memory" for none (the engine's own
// memory), else the last element of the store type's package path, such as
// "filestore", "redisstore", "pgstore" or "sealed", or the type's name for
// a store of package refresh ("MemoryStore", "LeaseLocker").
func StoreKind(s refresh.TokenStore) string {
	for range 8 { // wrappers within wrappers, boundedly
		if s == nil {
			return "memory"
		}
		v := reflect.ValueOf(s)
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		t := v.Type()
		pkg := t.PkgPath()
		switch {
		case strings.HasSuffix(pkg, "/refresh/internal/caps"):
			// The module's capability wrapper (sealed, storetest): its
			// first field is the store it wraps.
			if v.Kind() == reflect.Struct && v.NumField() > 0 {
				if inner, ok := v.Field(0).Interface().(refresh.TokenStore); ok {
					s = inner
					continue
				}
			}
		case pkg == "":
		case pkg == "github.com/oauthkit/refresh":
			return t.Name()
		default:
			return pkg[strings.LastIndexByte(pkg, '/')+1:]
		}
		break
	}
	return other
}
