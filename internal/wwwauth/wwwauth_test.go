package wwwauth

import (
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
	// Many challenges share no state beyond their own params.
	s := strings.Repeat(`Bearer error="invalid_token", `, 1000)
	if cs := Parse([]string{s}); len(cs) != 1000 {
		t.Errorf("got %d challenges, want 1000", len(cs))
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

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(strings.Join(tt.values, "\n"))
	}
	for _, s := range []string{`Bearer ,,, error=`, `Bearer error="invalid_token`, "\x00\xff\"\\,= \t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Newlines separate header values, so the fuzzer explores several.
		values := strings.Split(s, "\n")
		cs := Parse(values)
		checkChallenges(t, values, cs)

		// Challenges never span header values.
		var each []Challenge
		for _, v := range values {
			each = append(each, Parse([]string{v})...)
		}
		if !reflect.DeepEqual(cs, each) {
			t.Fatalf("Parse(%q) = %q, but value by value %q", values, cs, each)
		}

		// What was parsed survives a round trip through canonical form.
		canon := format(cs)
		if again := Parse([]string{canon}); !reflect.DeepEqual(again, cs) {
			t.Fatalf("Parse(%q) = %q; reparsed from %q = %q", values, cs, canon, again)
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
