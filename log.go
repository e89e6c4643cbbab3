package refresh

import (
	"log/slog"

	"golang.org/x/oauth2"
)

// Log records carry the key, at most a Fingerprint of a token, and errors
// whose text is cleaned (see Error.clean). They go through logAttrs, which
// survives a handler that panics.

func (e *Engine) logInfo(msg, key string, t *oauth2.Token) {
	if e.log == nil {
		return
	}
	e.logAttrs(slog.LevelInfo, "refresh: "+msg, slog.String("key", key),
		slog.String("access_token", Fingerprint(t.AccessToken)),
		slog.Time("expiry", t.Expiry))
}

// logWarn logs msg with t's fingerprint if t is set and err if it is.
func (e *Engine) logWarn(msg, key string, t *oauth2.Token, err error) {
	if e.log == nil {
		return
	}
	attrs := []slog.Attr{slog.String("key", key)}
	if t != nil {
		attrs = append(attrs, slog.String("access_token", Fingerprint(t.AccessToken)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.logAttrs(slog.LevelWarn, "refresh: "+msg, attrs...)
}

// logError logs msg for key ("" for none) and err, if set.
func (e *Engine) logError(msg, key string, err error) {
	if e.log == nil {
		return
	}
	var attrs []slog.Attr
	if key != "" {
		attrs = append(attrs, slog.String("key", key))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.logAttrs(slog.LevelError, "refresh: "+msg, attrs...)
}
