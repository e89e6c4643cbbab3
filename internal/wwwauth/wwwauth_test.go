package wwwauth

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

type p = map[string]string

var parseTests = []struct {
	name   string
	values []string
	want   []Challenge
}{
	{
		name:   "bearer params",
		values: []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`},
		want: []Challenge{{Scheme: "Bearer", Params: p{
			"realm": "example", "error": "invalid_token", "error_description": "The access token expired",
		}}},
	},
	{
		name:   "scheme only",
		values: []string{`Bearer`},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "two challenges",
		values: []string{`Basic realm="a", Bearer error="invalid_token"`},
		want: []Challenge{
			{Scheme: "Basic", Params: p{"realm": "a"}},
			{Scheme: "Bearer", Params: p{"error": "invalid_token"}},
		},
	},
	{
		name:   "rfc 9110 example",
		values: []string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
		want: []Challenge{
			{Scheme: "Newauth", Params: p{"realm": "apps", "type": "1", "title": `Login to "apps"`}},
			{Scheme: "Basic", Params: p{"realm": "simple"}},
		},
	},
	{
		name:   "dpop",
		values: []string{`DPoP error="use_dpop_nonce", algs="ES256 PS256"`},
		want:   []Challenge{{Scheme: "DPoP", Params: p{"error": "use_dpop_nonce", "algs": "ES256 PS256"}}},
	},
	{
		name:   "several header values",
		values: []string{"Basic realm=x", `Bearer error=insufficient_scope, scope="a b"`},
		want: []Challenge{
			{Scheme: "Basic", Params: p{"realm": "x"}},
			{Scheme: "Bearer", Params: p{"error": "insufficient_scope", "scope": "a b"}},
		},
	},
	{
		name:   "token68 then challenge",
		values: []string{`Negotiate abc==, Bearer error="invalid_token"`},
		want: []Challenge{
			{Scheme: "Negotiate", Token68: "abc=="},
			{Scheme: "Bearer", Params: p{"error": "invalid_token"}},
		},
	},
	{
		name:   "token68 alone",
		values: []string{"Basic dXNlcjpwYXNz/+_-.~"},
		want:   []Challenge{{Scheme: "Basic", Token68: "dXNlcjpwYXNz/+_-.~"}},
	},
	{
		name:   "token68 with spaces before comma",
		values: []string{"Negotiate abc= \t, Basic realm=x"},
		want: []Challenge{
			{Scheme: "Negotiate", Token68: "abc="},
			{Scheme: "Basic", Params: p{"realm": "x"}},
		},
	},
	{
		// A token68 challenge has no auth-params, so a param after it is dropped.
		name:   "param after token68",
		values: []string{`Negotiate abc==, realm="x", Basic`},
		want: []Challenge{
			{Scheme: "Negotiate", Token68: "abc=="},
			{Scheme: "Basic"},
		},
	},
	{
		name:   "spaces around equals",
		values: []string{`Bearer error = "invalid_token" ,  realm =x`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "invalid_token", "realm": "x"}}},
	},
	{
		name:   "tabs",
		values: []string{"Bearer\terror\t=\t\"invalid_token\"\t,\tBasic"},
		want: []Challenge{
			{Scheme: "Bearer", Params: p{"error": "invalid_token"}},
			{Scheme: "Basic"},
		},
	},
	{
		name:   "case",
		values: []string{`bearer ERROR="Invalid_Token", Error_Description=Expired`},
		want:   []Challenge{{Scheme: "bearer", Params: p{"error": "Invalid_Token", "error_description": "Expired"}}},
	},
	{
		name:   "empty list elements",
		values: []string{` , ,Basic realm="a",, , Bearer ,,error="x",`},
		want: []Challenge{
			{Scheme: "Basic", Params: p{"realm": "a"}},
			{Scheme: "Bearer", Params: p{"error": "x"}},
		},
	},
	{
		name:   "comma in quoted string",
		values: []string{`Bearer error_description="a, b=c, Basic", error="x"`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error_description": "a, b=c, Basic", "error": "x"}}},
	},
	{
		name:   "escapes",
		values: []string{`Bearer d="a\\b\"c\d", e=""`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"d": `a\b"cd`, "e": ""}}},
	},
	{
		name:   "unterminated quoted string",
		values: []string{`Bearer error="invalid_token`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "invalid_token"}}},
	},
	{
		name:   "unterminated quoted string takes the rest",
		values: []string{`Bearer realm="a, Basic realm=b`, `Basic`},
		want: []Challenge{
			{Scheme: "Bearer", Params: p{"realm": "a, Basic realm=b"}},
			{Scheme: "Basic"},
		},
	},
	{
		name:   "trailing backslash",
		values: []string{`Bearer realm="ab\`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "ab"}}},
	},
	{
		name:   "empty unquoted value",
		values: []string{`Bearer ,,, error=`},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "empty unquoted value before comma",
		values: []string{`Bearer error="x", realm=, scope=y`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "x", "scope": "y"}}},
	},
	{
		// By the grammar, "realm=" right after the scheme is a token68.
		name:   "token68 that looks like a param",
		values: []string{`Bearer realm=, error=x`},
		want:   []Challenge{{Scheme: "Bearer", Token68: "realm="}},
	},
	{
		name:   "duplicate param keeps first",
		values: []string{`Bearer error="a", ERROR="b"`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "a"}}},
	},
	{
		name:   "missing comma between params",
		values: []string{`Bearer realm="x" error="y"`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "x", "error": "y"}}},
	},
	{
		name:   "unquoted non-token value",
		values: []string{`Bearer realm=https://example.com/x?y, error=invalid_token`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "https://example.com/x?y", "error": "invalid_token"}}},
	},
	{
		name:   "comma right after scheme",
		values: []string{`Bearer, error="x"`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "x"}}},
	},
	{
		name:   "garbage element skipped",
		values: []string{`Bearer realm="a", @@"x,y"@@, error="x"`},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "a", "error": "x"}}},
	},
	{
		name:   "quote glued to scheme",
		values: []string{`Bearer"x,y", Basic`},
		want:   []Challenge{{Scheme: "Bearer"}, {Scheme: "Basic"}},
	},
	{
		name:   "non-ascii value",
		values: []string{"Bearer realm=\"ünï\xff\", error=x"},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "ünï\xff", "error": "x"}}},
	},
	{
		// Params never carry over to a challenge in another header value.
		name:   "orphan params",
		values: []string{"Bearer", `error="x", Basic realm="r"`},
		want: []Challenge{
			{Scheme: "Bearer"},
			{Scheme: "Basic", Params: p{"realm": "r"}},
		},
	},
	{name: "nil", values: nil, want: nil},
	{name: "empty", values: []string{"", " ", ",,"}, want: nil},
	{name: "garbage", values: []string{`=,,="`}, want: nil},
	{name: "lone quote", values: []string{`"`}, want: nil},
	{name: "lone equals", values: []string{`=`, `a=`, `a="b`}, want: nil},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.values)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q)\ngot  %q\nwant %q", tt.values, got, tt.want)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		values []string
		code   string
		ok     bool
	}{
		{[]string{`Bearer realm="example", error="invalid_token"`}, "invalid_token", true},
		{[]string{`Bearer realm="example"`}, "", false},
		{[]string{`Bearer error="insufficient_scope", scope="a b"`}, "insufficient_scope", true},
		{[]string{`Bearer error=invalid_request`}, "invalid_request", true},
		{[]string{`Basic realm=x, DPoP error="use_dpop_nonce"`}, "use_dpop_nonce", true},
		{[]string{`DPoP error="use_dpop_nonce", Bearer error="invalid_token"`}, "use_dpop_nonce", true},
		{[]string{"Basic realm=x", `Bearer error="invalid_token"`}, "invalid_token", true},
		{[]string{`Bearer error=""`}, "", true},
		{[]string{`Bearer ,,, error=`}, "", false},
		{[]string{`error="invalid_token"`}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		code, ok := ErrorCode(tt.values)
		if code != tt.code || ok != tt.ok {
			t.Errorf("ErrorCode(%q) = %q, %v; want %q, %v", tt.values, code, ok, tt.code, tt.ok)
		}
	}
}

func TestLongInput(t *testing.T) {
	const n = 1 << 20
	for _, s := range []string{
		strings.Repeat(",", n),
		strings.Repeat(" ", n),
		strings.Repeat("=", n),
		strings.Repeat(`"`, n),
		strings.Repeat(`\`, n),
		`Bearer x="` + strings.Repeat(`\"`, n),
		strings.Repeat("a", n),
		strings.Repeat("a ", n),
		strings.Repeat("a=", n),
		strings.Repeat("a=b ", n),
		strings.Repeat(`Bearer error="invalid_token", `, n/32),
	} {
		cs := Parse([]string{s})
		checkChallenges(t, []string{s}, cs)
	}
	// Many challenges share no state beyond their own params; the ones
	// past the limit are not read.
	s := strings.Repeat(`Bearer error="invalid_token", `, 1000)
	cs := Parse([]string{s})
	if len(cs) != maxChallenges {
		t.Errorf("got %d challenges, want %d (the limit)", len(cs), maxChallenges)
	}
	for i, c := range cs {
		if len(c.Params) != 1 || c.Params["error"] != "invalid_token" {
			t.Errorf("challenge %d has params %q, want only its own error", i, c.Params)
		}
	}
}

// checkChallenges verifies invariants that hold for every input.
func checkChallenges(t *testing.T, values []string, cs []Challenge) {
	t.Helper()
	for _, c := range cs {
		if c.Scheme == "" || strings.ContainsAny(c.Scheme, " \t,=\"") {
			t.Fatalf("Parse(%q): bad scheme %q", values, c.Scheme)
		}
		if c.Token68 != "" && c.Params != nil {
			t.Fatalf("Parse(%q): challenge %q has both token68 and params", values, c.Scheme)
		}
		if c.Params != nil && len(c.Params) == 0 {
			t.Fatalf("Parse(%q): challenge %q has empty non-nil params", values, c.Scheme)
		}
		for k := range c.Params {
			if k == "" || k != strings.ToLower(k) || strings.ContainsAny(k, " \t,=\"") {
				t.Fatalf("Parse(%q): bad param name %q", values, k)
			}
		}
	}
	wantCode, wantOK := "", false
	for _, c := range cs {
		if v, ok := c.Params["error"]; ok {
			wantCode, wantOK = v, true
			break
		}
	}
	if code, ok := ErrorCode(values); code != wantCode || ok != wantOK {
		t.Fatalf("ErrorCode(%q) = %q, %v; Parse says %q, %v", values, code, ok, wantCode, wantOK)
	}
}

// format serializes cs in canonical form: every value quoted, one header value.
func format(cs []Challenge) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Scheme)
		if c.Token68 != "" {
			b.WriteString(" " + c.Token68)
		}
		first := true
		for k, v := range c.Params {
			if first {
				b.WriteByte(' ')
				first = false
			} else {
				b.WriteString(", ")
			}
			v = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)
			b.WriteString(k + `="` + v + `"`)
		}
	}
	return b.String()
}

// unlimited parses everything, to compare with the limited parser.
var unlimited = limits{math.MaxInt, math.MaxInt, math.MaxInt}

// truncate returns values cut after n bytes as the limit counts them: each
// value's bytes, and one for each line break.
func truncate(values []string, n int) []string {
	var out []string
	for _, v := range values {
		if n <= 0 {
			break
		}
		if len(v) >= n {
			return append(out, v[:n])
		}
		out = append(out, v)
		n -= len(v) + 1
	}
	return out
}

// isPrefix reports whether the limited result part is what a limit may
// leave of whole: its challenges but the last are whole's first ones, and
// its last one lacks at most its token68 and some of its last params (a
// limit only removes a suffix of the list).
func isPrefix(part, whole []Challenge) bool {
	if len(part) > len(whole) {
		return false
	}
	for i, c := range part {
		w := whole[i]
		if i < len(part)-1 {
			if !reflect.DeepEqual(c, w) {
				return false
			}
			continue
		}
		if c.Scheme != w.Scheme || c.Token68 != "" && c.Token68 != w.Token68 {
			return false
		}
		for k, v := range c.Params {
			if wv, ok := w.Params[k]; !ok || wv != v {
				return false
			}
		}
	}
	return true
}

var limitTests = []struct {
	name   string
	values []string
	lim    limits
	want   []Challenge
}{
	{
		name:   "cut in quoted value",
		values: []string{`Bearer error="invalid_token"`},
		lim:    limits{bytes: 20},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "cut in unquoted value",
		values: []string{`Bearer error=invalid_token, realm=x`},
		lim:    limits{bytes: 20},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "cut after empty unquoted value",
		values: []string{`Bearer realm=x, error=`},
		lim:    limits{bytes: 22},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"realm": "x"}}},
	},
	{
		name:   "cut after closing quote",
		values: []string{`Bearer error="x", realm="y"`},
		lim:    limits{bytes: len(`Bearer error="x"`)},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "x"}}},
	},
	{
		name:   "cut in escape",
		values: []string{`Bearer error="x\"y"`},
		lim:    limits{bytes: len(`Bearer error="x\`)},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "cut right after a token",
		values: []string{`Bearer error="x", realm="y"`},
		lim:    limits{bytes: len(`Bearer error="x", realm`)},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"error": "x"}}},
	},
	{
		// "Bearer " may be the name of a param: "Bearer = x".
		name:   "cut after scheme and space",
		values: []string{`Bearer error="x"`},
		lim:    limits{bytes: len(`Bearer `)},
		want:   nil,
	},
	{
		name:   "cut in scheme",
		values: []string{`Basic realm=x, Bearer error="x"`},
		lim:    limits{bytes: len(`Basic realm=x, Bea`)},
		want:   []Challenge{{Scheme: "Basic", Params: p{"realm": "x"}}},
	},
	{
		name:   "cut in token68",
		values: []string{`Negotiate abc==, Basic`},
		lim:    limits{bytes: len(`Negotiate abc`)},
		want:   []Challenge{{Scheme: "Negotiate"}},
	},
	{
		// Not a token68 "realm": the cut hides "=".
		name:   "cut after what looks like token68",
		values: []string{`Bearer realm="x"`},
		lim:    limits{bytes: len(`Bearer realm`)},
		want:   []Challenge{{Scheme: "Bearer"}},
	},
	{
		name:   "line breaks count",
		values: []string{`Bearer a=b`, `Basic`},
		lim:    limits{bytes: len(`Bearer a=b`) + 1 + len(`Basic`)},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"a": "b"}}},
	},
	{
		name:   "value within the limit",
		values: []string{`Bearer a=b`, `Basic`},
		lim:    limits{bytes: len(`Bearer a=b`) + 1 + len(`Basic`) + 1},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"a": "b"}}, {Scheme: "Basic"}},
	},
	{
		name:   "no byte left for the next value",
		values: []string{`Bearer a=b`, `Basic`},
		lim:    limits{bytes: len(`Bearer a=b`) + 1},
		want:   []Challenge{{Scheme: "Bearer", Params: p{"a": "b"}}},
	},
	{
		name:   "challenge limit",
		values: []string{`A, B x=y`, `C`},
		lim:    limits{bytes: 100, challenges: 2, params: 10},
		want:   []Challenge{{Scheme: "A"}, {Scheme: "B", Params: p{"x": "y"}}},
	},
	{
		name:   "param limit counts all challenges",
		values: []string{`A a=1, b=2`, `B c=3, d=4`},
		lim:    limits{bytes: 100, challenges: 10, params: 3},
		want:   []Challenge{{Scheme: "A", Params: p{"a": "1", "b": "2"}}, {Scheme: "B", Params: p{"c": "3"}}},
	},
	{
		name:   "orphans do not count",
		values: []string{`a=1, b=2, A c=3`},
		lim:    limits{bytes: 100, challenges: 10, params: 1},
		want:   []Challenge{{Scheme: "A", Params: p{"c": "3"}}},
	},
}

func TestLimits(t *testing.T) {
	for _, tt := range limitTests {
		t.Run(tt.name, func(t *testing.T) {
			lim := tt.lim
			if lim.challenges == 0 {
				lim.challenges, lim.params = math.MaxInt, math.MaxInt
			}
			got := parse(tt.values, lim)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parse(%q, %v)\ngot  %q\nwant %q", tt.values, lim, got, tt.want)
			}
			if all := parse(tt.values, unlimited); !isPrefix(got, all) {
				t.Errorf("parse(%q, %v) = %q, not a prefix of %q", tt.values, lim, got, all)
			}
		})
	}
}

// TestLimitsDecideTowardRefresh: an error code past the limits is not seen,
// so the transport refreshes; a code cut by the limit is not misread.
func TestLimitsDecideTowardRefresh(t *testing.T) {
	pad := `Bearer realm="` + strings.Repeat("x", maxBytes) + `", `
	manyParams := "Bearer " + strings.Repeat("a=b, ", maxParams)
	manyChallenges := strings.Repeat("Basic, ", maxChallenges)
	for _, values := range [][]string{
		{pad + `error="insufficient_scope"`},
		{pad[:maxBytes-len(`error="insufficient_scope"`)] + `", error="insufficient_scope"`},
		{manyParams + `error="insufficient_scope"`},
		{manyChallenges + `Bearer error="insufficient_scope"`},
		{strings.Repeat(",", maxBytes-1), `Bearer error=insufficient_scope`},
	} {
		if code, ok := ErrorCode(values); ok {
			t.Errorf("ErrorCode(%.40q…) = %q, %v; want no code", values, code, ok)
		}
	}
	// The last byte read ends the value, which may go on: no code either.
	cut := strings.Repeat(",", maxBytes-len(`Bearer error=invalid_token`)) + `Bearer error=invalid_token`
	if code, ok := ErrorCode([]string{cut + "x"}); ok {
		t.Errorf("ErrorCode(…%q) = %q, %v; want no code", cut[len(cut)-30:]+"x", code, ok)
	}
	// One byte more and the code is whole.
	if code, ok := ErrorCode([]string{cut[1:] + ","}); code != "invalid_token" || !ok {
		t.Errorf("ErrorCode(…%q) = %q, %v; want invalid_token", cut[len(cut)-30:]+",", code, ok)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(strings.Join(tt.values, "\n"))
	}
	for _, tt := range limitTests {
		f.Add(strings.Join(tt.values, "\n"))
	}
	for _, s := range []string{`Bearer ,,, error=`, `Bearer error="invalid_token`, "\x00\xff\"\\,= \t"} {
		f.Add(s)
	}
	// The shapes of TestCostIsBounded, long enough to pass the limit but
	// not so long that the fuzzer spends its time minimizing them.
	for _, sh := range hostile(3 * maxBytes) {
		f.Add(strings.Join(sh.values, "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Newlines separate header values, so the fuzzer explores several.
		values := strings.Split(s, "\n")
		cs := Parse(values)
		checkChallenges(t, values, cs)

		// The limit is the end: what lies past it changes nothing.
		if again := Parse(truncate(values, maxBytes)); !reflect.DeepEqual(again, cs) {
			t.Fatalf("Parse(%q) = %q, but truncated at the limit %q", values, cs, again)
		}
		if len(s) > maxBytes {
			// The rest parses it all, which is slow for the long seeds;
			// the small limits below test the same code on short input.
			return
		}

		// Challenges never span header values.
		all := parse(values, unlimited)
		var each []Challenge
		for _, v := range values {
			each = append(each, parse([]string{v}, unlimited)...)
		}
		if !reflect.DeepEqual(all, each) {
			t.Fatalf("Parse(%q) = %q, but value by value %q", values, all, each)
		}

		// What was parsed survives a round trip through canonical form.
		canon := format(all)
		if again := parse([]string{canon}, unlimited); !reflect.DeepEqual(again, all) {
			t.Fatalf("Parse(%q) = %q; reparsed from %q = %q", values, all, canon, again)
		}

		// Small limits, so that short inputs reach them: they cut a
		// suffix, what lies past the byte limit changes nothing, and the
		// error code is the whole header's or none.
		wantCode, wantOK := errorCode(values, unlimited)
		n := len(s)
		for _, lim := range []limits{
			{n / 3, math.MaxInt, math.MaxInt},
			{n / 2, math.MaxInt, math.MaxInt},
			{n - 1, math.MaxInt, math.MaxInt},
			{math.MaxInt, n % 4, math.MaxInt},
			{math.MaxInt, math.MaxInt, n % 5},
			{n - n/4, 1 + n%3, 1 + n%4},
		} {
			part := parse(values, lim)
			if !isPrefix(part, all) {
				t.Fatalf("parse(%q, %v) = %q, not a prefix of %q", values, lim, part, all)
			}
			if again := parse(truncate(values, lim.bytes), lim); !reflect.DeepEqual(again, part) {
				t.Fatalf("parse(%q, %v) = %q, but truncated at the limit %q", values, lim, part, again)
			}
			if code, ok := errorCode(values, lim); ok && (code != wantCode || !wantOK) {
				t.Fatalf("errorCode(%q, %v) = %q, %v; without limits %q, %v", values, lim, code, ok, wantCode, wantOK)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	values := []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`}
	b.ReportAllocs()
	for b.Loop() {
		Parse(values)
	}
}
