package jose

import (
	"encoding/json"
	"testing"
)

// FuzzVerify: Verify never panics on a token from outside, and whatever it
// accepts has the key's algorithm and an object for claims.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{a1Token, a2Token, a3Token, b64.EncodeToString([]byte(dpopHead)) + dpopRest,
		"eyJhbGciOiJub25lIn0." + rfcPayload + ".", "..", "a.b.c"} {
		f.Add(s)
	}
	secret, _ := b64.DecodeString(a1Key)
	keys := map[string]any{HS256: secret, RS256: &a2Key(f).PublicKey, ES256: ecPublic(f, a3X, a3Y)}
	f.Fuzz(func(t *testing.T, token string) {
		for alg, key := range keys {
			h, claims, err := Verify(token, key)
			if err != nil {
				continue
			}
			if got := h["alg"]; got != alg && !(alg == RS256 && got == PS256) {
				t.Errorf("the %s key accepted alg %v", alg, got)
			}
			var m map[string]any
			if json.Unmarshal(claims, &m) != nil || m == nil {
				t.Errorf("accepted claims %q", claims)
			}
		}
	})
}
