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
// members, as extra.FromJSON keeps them.
func jsonExtra(m map[string]json.RawMessage, keep []string) map[string]any {
	if len(keep) == 0 {
		return nil
	}
	raw := make(map[string]json.RawMessage)
	for _, name := range wanted(keep, m) {
		if r, ok := m[name]; ok {
			raw[name] = r
		}
	}
	return extra.FromJSON(raw)
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
