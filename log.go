package refresh

import (
	"log/slog"

	"golang.org/x/oauth2"
)

func (e *Engine) logInfo(msg, key string, t *oauth2.Token) {
	if e.log == nil {
		return
	}
	e.log.Info("refresh: "+msg, slog.String("key", key),
		slog.String("access_token", Fingerprint(t.AccessToken)),
		slog.Time("expiry", t.Expiry))
}

func (e *Engine) logError(msg, key string, err error) {
	if e.log == nil {
		return
	}
	attrs := []any{slog.String("key", key)}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	e.log.Error("refresh: "+msg, attrs...)
}
