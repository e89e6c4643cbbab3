package tokenwire

import (
	"encoding/json"
	"net/url"
	"slices"

	"github.com/oauthkit/refresh/internal/extra"
)

// KeepAll, among the names given to [Parse], keeps every member.
const KeepAll = "*"

// wanted returns the names of keep, or every key of m if keep holds
// KeepAll.
func wanted[V any](keep []string, m map[string]V) []string {
	if !slices.Contains(keep, KeepAll) {
		return keep // a name given twice is looked up twice, to the same effect
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	return names
}

// jsonExtra returns the kept extra members of keep in m, a JSON object's
// members: strings (as encoding/json decodes them), numbers (as float64)
// and booleans; null, objects and arrays are dropped, and so is what
// extra.Normalize drops.
func jsonExtra(m map[string]json.RawMessage, keep []string) map[string]any {
	if len(keep) == 0 {
		return nil
	}
	out := make(map[string]any)
	for _, name := range wanted(keep, m) {
		raw, ok := m[name]
		if !ok || !extra.ValidName(name) {
			continue
		}
		switch raw[0] {
		case '"':
			var s string
			json.Unmarshal(raw, &s) // cannot fail: raw is a valid JSON string
			out[name] = s
		case 't', 'f':
			out[name] = raw[0] == 't'
		case 'n', '{', '[':
		default:
			if f, ok := extra.Number(string(raw)); ok {
				out[name] = f
			}
		}
	}
	return extra.Normalize(out)
}

// formExtra returns the kept extra parameters of keep in vs, as strings.
// A repeated one is dropped: which of its values is meant is a guess.
func formExtra(vs url.Values, keep []string) map[string]any {
	if len(keep) == 0 {
		return nil
	}
	out := make(map[string]any)
	for _, name := range wanted(keep, vs) {
		if v := vs[name]; len(v) == 1 && extra.ValidName(name) {
			out[name] = v[0]
		}
	}
	return extra.Normalize(out)
}
