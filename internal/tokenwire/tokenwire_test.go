package tokenwire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	ctJSON = "application/json"
	ctForm = "application/x-www-form-urlencoded"
	ctText = "text/plain; charset=utf-8"
	ctHTML = "text/html; charset=utf-8"
)

// tok builds the Token most tests expect, with the given expires_in.
func tok(expiresIn int64) *Token {
	return &Token{AccessToken: "AT", TokenType: "Bearer", RefreshToken: "RT", ExpiresIn: expiresIn}
}

// withExpiry returns a JSON token response whose expires_in member is the
// given JSON text ("" for no member).
func withExpiry(v string) string {
	if v == "" {
		return `{"access_token":"AT","token_type":"Bearer","refresh_token":"RT"}`
	}
	return `{"access_token":"AT","token_type":"Bearer","refresh_token":"RT","expires_in":` + v + `}`
}

var parseTests = []struct {
	name    string
	status  int
	ct      string
	body    string
	want    *Token
	wantEB  *ErrorBody
	wantErr string // the whole message; "" for no error
}{
	// Success.
	{name: "standard", status: 200, ct: ctJSON, body: withExpiry("3600"), want: tok(3600)},
	{name: "charset", status: 200, ct: "application/json;charset=UTF-8", body: withExpiry("3600"), want: tok(3600)},
	{name: "upper-case media type", status: 200, ct: "Application/JSON", body: withExpiry("3600"), want: tok(3600)},
	{name: "+json", status: 200, ct: "application/vnd.example+json", body: withExpiry("3600"), want: tok(3600)},
	{name: "201", status: 201, ct: ctJSON, body: withExpiry("3600"), want: tok(3600)},
	{name: "bad content type", status: 200, ct: "application/json; charset", body: withExpiry("3600"), want: tok(3600)},
	{name: "garbage content type", status: 200, ct: ";;==garbage", body: withExpiry("3600"), want: tok(3600)},
	{name: "no content type", status: 200, ct: "", body: withExpiry("3600"), want: tok(3600)},
	{name: "leading white space", status: 200, ct: ctJSON, body: " \r\n\t" + withExpiry("1") + "\n", want: tok(1)},
	{name: "unknown members", status: 200, ct: ctJSON,
		body: `{"access_token":"AT","scope":"a b","id_token":{"x":[1,2]},"n":null,"token_type":"Bearer","refresh_token":"RT","expires_in":60,"ok":true}`,
		want: tok(60)},
	{name: "duplicate member last wins", status: 200, ct: ctJSON, body: `{"access_token":"A","access_token":"B"}`,
		want: &Token{AccessToken: "B"}},
	{name: "names are case-sensitive", status: 200, ct: ctJSON, body: `{"Access_Token":"AT"}`, wantErr: "malformed token response: no access_token"},
	{name: "escapes", status: 200, ct: ctJSON, body: `{"access_token":"a\/b\u002bc"}`, want: &Token{AccessToken: "a/b+c"}},
	{name: "non-ASCII token kept", status: 200, ct: ctJSON, body: `{"access_token":"tök"}`, want: &Token{AccessToken: "tök"}},

	// expires_in.
	{name: "expires_in missing", status: 200, ct: ctJSON, body: withExpiry(""), want: tok(0)},
	{name: "expires_in null", status: 200, ct: ctJSON, body: withExpiry("null"), want: tok(0)},
	{name: "expires_in 0", status: 200, ct: ctJSON, body: withExpiry("0"), want: tok(0)},
	{name: "expires_in negative", status: 200, ct: ctJSON, body: withExpiry("-5"), want: tok(0)},
	{name: "expires_in negative string", status: 200, ct: ctJSON, body: withExpiry(`"-5"`), want: tok(0)},
	{name: "expires_in float", status: 200, ct: ctJSON, body: withExpiry("3600.7"), want: tok(3600)},
	{name: "expires_in exponent", status: 200, ct: ctJSON, body: withExpiry("1e3"), want: tok(1000)},
	{name: "expires_in under a second", status: 200, ct: ctJSON, body: withExpiry("0.5"), want: tok(0)},
	{name: "expires_in string", status: 200, ct: ctJSON, body: withExpiry(`"3600"`), want: tok(3600)},
	{name: "expires_in string spaces", status: 200, ct: ctJSON, body: withExpiry(`" 3600 "`), want: tok(3600)},
	{name: "expires_in string float", status: 200, ct: ctJSON, body: withExpiry(`"3600.0"`), want: tok(3600)},
	{name: "expires_in string exponent", status: 200, ct: ctJSON, body: withExpiry(`"1e3"`), want: tok(1000)},
	{name: "expires_in max int32", status: 200, ct: ctJSON, body: withExpiry("2147483647"), want: tok(math.MaxInt32)},
	{name: "expires_in huge", status: 200, ct: ctJSON, body: withExpiry("99999999999"), want: tok(math.MaxInt32)},
	{name: "expires_in huge string", status: 200, ct: ctJSON, body: withExpiry(`"9999999999999999999999"`), want: tok(math.MaxInt32)},
	{name: "expires_in 1e300", status: 200, ct: ctJSON, body: withExpiry("1e300"), want: tok(math.MaxInt32)},
	{name: "expires_in beyond float64", status: 200, ct: ctJSON, body: withExpiry("1e400"), want: tok(math.MaxInt32)},
	{name: "expires_in beyond float64 negative", status: 200, ct: ctJSON, body: withExpiry("-1e400"), want: tok(0)},
	{name: "expires_in tiny", status: 200, ct: ctJSON, body: withExpiry("1e-400"), want: tok(0)},
	{name: "expires_in true", status: 200, ct: ctJSON, body: withExpiry("true"), want: tok(0)},
	{name: "expires_in false", status: 200, ct: ctJSON, body: withExpiry("false"), want: tok(0)},
	{name: "expires_in object", status: 200, ct: ctJSON, body: withExpiry(`{"s":3600}`), want: tok(0)},
	{name: "expires_in array", status: 200, ct: ctJSON, body: withExpiry("[3600]"), want: tok(0)},
	{name: "expires_in empty string", status: 200, ct: ctJSON, body: withExpiry(`""`), want: tok(0)},
	{name: "expires_in words", status: 200, ct: ctJSON, body: withExpiry(`"one hour"`), want: tok(0)},
	{name: "expires_in unit", status: 200, ct: ctJSON, body: withExpiry(`"3600s"`), want: tok(0)},
	{name: "expires_in NaN", status: 200, ct: ctJSON, body: withExpiry(`"NaN"`), want: tok(0)},
	{name: "expires_in Inf", status: 200, ct: ctJSON, body: withExpiry(`"Inf"`), want: tok(0)},
	{name: "expires_in +Infinity", status: 200, ct: ctJSON, body: withExpiry(`"+Infinity"`), want: tok(0)},
	{name: "expires_in hex", status: 200, ct: ctJSON, body: withExpiry(`"0x10"`), want: tok(0)},
	{name: "expires_in underscores", status: 200, ct: ctJSON, body: withExpiry(`"3_600"`), want: tok(0)},

	// token_type.
	{name: "token_type bearer", status: 200, ct: ctJSON, body: `{"access_token":"AT","token_type":"bearer"}`, want: &Token{AccessToken: "AT", TokenType: "bearer"}},
	{name: "token_type BEARER", status: 200, ct: ctJSON, body: `{"access_token":"AT","token_type":"BEARER"}`, want: &Token{AccessToken: "AT", TokenType: "BEARER"}},
	{name: "token_type missing", status: 200, ct: ctJSON, body: `{"access_token":"AT"}`, want: &Token{AccessToken: "AT"}},
	{name: "token_type number", status: 200, ct: ctJSON, body: `{"access_token":"AT","token_type":1}`, want: &Token{AccessToken: "AT"}},
	{name: "token_type null", status: 200, ct: ctJSON, body: `{"access_token":"AT","token_type":null}`, want: &Token{AccessToken: "AT"}},

	// refresh_token.
	{name: "refresh_token missing", status: 200, ct: ctJSON, body: `{"access_token":"AT"}`, want: &Token{AccessToken: "AT"}},
	{name: "refresh_token null", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":null}`, want: &Token{AccessToken: "AT"}},
	{name: "refresh_token empty", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":""}`, want: &Token{AccessToken: "AT"}},
	{name: "refresh_token number", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":12}`, wantErr: "malformed token response: refresh_token is not a string"},
	{name: "refresh_token object", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":{}}`, wantErr: "malformed token response: refresh_token is not a string"},
	{name: "refresh_token bool", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":true}`, wantErr: "malformed token response: refresh_token is not a string"},
	{name: "refresh_token control character", status: 200, ct: ctJSON, body: `{"access_token":"AT","refresh_token":"R\u0000T"}`, wantErr: "malformed token response: refresh_token holds invalid characters"},

	// access_token.
	{name: "access_token missing", status: 200, ct: ctJSON, body: `{"token_type":"Bearer","expires_in":3600}`, wantErr: "malformed token response: no access_token"},
	{name: "access_token null", status: 200, ct: ctJSON, body: `{"access_token":null}`, wantErr: "malformed token response: no access_token"},
	{name: "access_token empty", status: 200, ct: ctJSON, body: `{"access_token":""}`, wantErr: "malformed token response: empty access_token"},
	{name: "access_token number", status: 200, ct: ctJSON, body: `{"access_token":12}`, wantErr: "malformed token response: access_token is not a string"},
	{name: "access_token object", status: 200, ct: ctJSON, body: `{"access_token":{"v":"AT"}}`, wantErr: "malformed token response: access_token is not a string"},
	{name: "access_token array", status: 200, ct: ctJSON, body: `{"access_token":["AT"]}`, wantErr: "malformed token response: access_token is not a string"},
	{name: "access_token bool", status: 200, ct: ctJSON, body: `{"access_token":true}`, wantErr: "malformed token response: access_token is not a string"},
	{name: "access_token newline", status: 200, ct: ctJSON, body: `{"access_token":"A\nT"}`, wantErr: "malformed token response: access_token holds invalid characters"},
	{name: "access_token invalid UTF-8", status: 200, ct: ctJSON, body: "{\"access_token\":\"A\xffT\"}", wantErr: "malformed token response: access_token holds invalid characters"},
	{name: "access_token lone surrogate", status: 200, ct: ctJSON, body: `{"access_token":"A\ud800T"}`, wantErr: "malformed token response: access_token holds invalid characters"},

	// OAuth errors, whatever the status.
	{name: "gw2.me 500", status: 500, ct: ctJSON, body: `{"error":"invalid_grant","error_description":"refresh_token expired"}`,
		wantEB: &ErrorBody{Code: "invalid_grant", Description: "refresh_token expired"}},
	{name: "error with 200", status: 200, ct: ctJSON, body: `{"error":"invalid_grant"}`, wantEB: &ErrorBody{Code: "invalid_grant"}},
	{name: "error with 400", status: 400, ct: ctJSON, body: `{"error":"invalid_request","error_description":"d","error_uri":"https://e.example/doc"}`,
		wantEB: &ErrorBody{Code: "invalid_request", Description: "d", URI: "https://e.example/doc"}},
	{name: "error with 401", status: 401, ct: ctJSON, body: `{"error":"invalid_client"}`, wantEB: &ErrorBody{Code: "invalid_client"}},
	{name: "error beats access_token", status: 200, ct: ctJSON, body: `{"access_token":"AT","error":"server_error"}`, wantEB: &ErrorBody{Code: "server_error"}},
	{name: "error as text/html", status: 400, ct: ctHTML, body: `{"error":"invalid_grant"}`, wantEB: &ErrorBody{Code: "invalid_grant"}},
	{name: "error description not a string", status: 400, ct: ctJSON, body: `{"error":"invalid_grant","error_description":5,"error_uri":{}}`,
		wantEB: &ErrorBody{Code: "invalid_grant"}},
	{name: "error empty is absent", status: 200, ct: ctJSON, body: `{"access_token":"AT","error":""}`, want: &Token{AccessToken: "AT"}},
	{name: "error not a string is absent", status: 200, ct: ctJSON, body: `{"access_token":"AT","error":5}`, want: &Token{AccessToken: "AT"}},
	{name: "error null without token", status: 200, ct: ctJSON, body: `{"error":null}`, wantErr: "malformed token response: no access_token"},
	{name: "error not a string 400", status: 400, ct: ctJSON, body: `{"error":{"code":"invalid_grant"}}`},
	{name: "error form", status: 400, ct: ctForm, body: "error=invalid_grant&error_description=bad+token", wantEB: &ErrorBody{Code: "invalid_grant", Description: "bad token"}},
	{name: "error text/plain", status: 200, ct: ctText, body: "error=invalid_grant\n", wantEB: &ErrorBody{Code: "invalid_grant"}},

	// Form-encoded and text/plain bodies.
	{name: "form", status: 200, ct: ctForm, body: "access_token=AT&token_type=Bearer&refresh_token=RT&expires_in=3600", want: tok(3600)},
	{name: "form text/plain", status: 200, ct: ctText, body: "access_token=AT&token_type=Bearer&refresh_token=RT&expires_in=3600\n", want: tok(3600)},
	{name: "form escapes", status: 200, ct: ctForm, body: "access_token=a%2Fb%2Bc&token_type=bearer", want: &Token{AccessToken: "a/b+c", TokenType: "bearer"}},
	{name: "form expires_in spaces", status: 200, ct: ctForm, body: "access_token=AT&expires_in=+60+", want: &Token{AccessToken: "AT", ExpiresIn: 60}},
	{name: "form expires_in words", status: 200, ct: ctForm, body: "access_token=AT&expires_in=soon", want: &Token{AccessToken: "AT"}},
	{name: "form expires_in huge", status: 200, ct: ctForm, body: "access_token=AT&expires_in=9999999999999999999999", want: &Token{AccessToken: "AT", ExpiresIn: math.MaxInt32}},
	{name: "form empty refresh_token", status: 200, ct: ctForm, body: "access_token=AT&refresh_token=", want: &Token{AccessToken: "AT"}},
	{name: "form no access_token", status: 200, ct: ctForm, body: "token_type=bearer", wantErr: "malformed token response: no access_token"},
	{name: "form empty access_token", status: 200, ct: ctForm, body: "access_token=", wantErr: "malformed token response: empty access_token"},
	{name: "form repeated", status: 200, ct: ctForm, body: "access_token=A&access_token=B", wantErr: "malformed token response: repeated parameter"},
	{name: "form bad escape", status: 200, ct: ctForm, body: "access_token=A%zz", wantErr: "malformed token response: invalid form encoding"},
	{name: "form control character", status: 200, ct: ctForm, body: "access_token=A%0AT", wantErr: "malformed token response: access_token holds invalid characters"},
	{name: "form invalid UTF-8", status: 200, ct: ctForm, body: "access_token=A%FFT", wantErr: "malformed token response: access_token holds invalid characters"},
	{name: "plain text 200", status: 200, ct: ctText, body: "OK", wantErr: "malformed token response: no access_token"},

	// JSON whatever the Content-Type.
	{name: "JSON as text/plain", status: 200, ct: ctText, body: withExpiry("3600"), want: tok(3600)},
	{name: "JSON as text/html", status: 200, ct: ctHTML, body: withExpiry("3600"), want: tok(3600)},
	{name: "JSON as form", status: 200, ct: ctForm, body: withExpiry("3600"), want: tok(3600)},
	{name: "JSON as octet-stream", status: 200, ct: "application/octet-stream", body: withExpiry("3600"), want: tok(3600)},

	// Byte order mark.
	{name: "BOM", status: 200, ct: ctJSON, body: "\uFEFF" + withExpiry("3600"), want: tok(3600)},
	{name: "BOM text/plain", status: 200, ct: ctText, body: "\uFEFF" + withExpiry("3600"), want: tok(3600)},
	{name: "BOM space", status: 200, ct: "", body: "\uFEFF \n" + withExpiry("3600"), want: tok(3600)},
	{name: "BOM form", status: 200, ct: ctForm, body: "\uFEFFaccess_token=AT", want: &Token{AccessToken: "AT"}},
	{name: "BOM error", status: 500, ct: ctJSON, body: "\uFEFF" + `{"error":"invalid_grant"}`, wantEB: &ErrorBody{Code: "invalid_grant"}},

	// Unreadable 2xx bodies.
	{name: "empty 200", status: 200, ct: ctJSON, body: "", wantErr: "malformed token response: empty body"},
	{name: "empty 204", status: 204, ct: "", body: "", wantErr: "malformed token response: empty body"},
	{name: "white space 200", status: 200, ct: ctJSON, body: " \n", wantErr: "malformed token response: empty body"},
	{name: "BOM only 200", status: 200, ct: ctJSON, body: "\uFEFF", wantErr: "malformed token response: empty body"},
	{name: "truncated", status: 200, ct: ctJSON, body: `{"access_token":"AT"`, wantErr: "malformed token response: JSON syntax error at offset 20"},
	{name: "truncated with BOM", status: 200, ct: ctJSON, body: "\uFEFF" + `{"access_token":"AT"`, wantErr: "malformed token response: JSON syntax error at offset 23"},
	{name: "truncated text/plain", status: 200, ct: ctText, body: `{"access_token":"AT","expires_in":36`, wantErr: "malformed token response: JSON syntax error at offset 36"},
	{name: "trailing comma", status: 200, ct: ctJSON, body: `{"access_token":"AT",}`, wantErr: "malformed token response: JSON syntax error at offset 22"},
	{name: "trailing garbage", status: 200, ct: ctJSON, body: `{"access_token":"AT"} x`, wantErr: "malformed token response: JSON syntax error at offset 23"},
	{name: "two objects", status: 200, ct: ctJSON, body: `{"access_token":"A"}{"access_token":"B"}`, wantErr: "malformed token response: JSON syntax error at offset 21"},
	{name: "array", status: 200, ct: ctJSON, body: `[{"access_token":"AT"}]`, wantErr: "malformed token response: not a JSON object"},
	{name: "string", status: 200, ct: ctJSON, body: `"AT"`, wantErr: "malformed token response: not a JSON object"},
	{name: "number", status: 200, ct: ctJSON, body: `42`, wantErr: "malformed token response: not a JSON object"},
	{name: "null", status: 200, ct: ctJSON, body: `null`, wantErr: "malformed token response: not a JSON object"},
	{name: "form as JSON", status: 200, ct: ctJSON, body: "access_token=AT", wantErr: "malformed token response: JSON syntax error at offset 1"},
	{name: "HTML 200", status: 200, ct: ctHTML, body: "<html><body>OK</body></html>", wantErr: "malformed token response: unsupported content type"},
	{name: "form without content type", status: 200, ct: "", body: "access_token=AT", wantErr: "malformed token response: unsupported content type"},

	// Non-2xx without an OAuth error: the caller classifies by status.
	{name: "HTML 503", status: 503, ct: ctHTML, body: "<html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>"},
	{name: "empty 502", status: 502, ct: "", body: ""},
	{name: "garbage 500", status: 500, ct: "application/octet-stream", body: "\x00\x01\xff garbage"},
	{name: "truncated 500", status: 500, ct: ctJSON, body: `{"error":"invalid_gr`},
	{name: "JSON without error 400", status: 400, ct: ctJSON, body: `{"message":"bad request"}`},
	{name: "token with 400", status: 400, ct: ctJSON, body: withExpiry("3600")},
	{name: "token with 302", status: 302, ct: ctJSON, body: withExpiry("3600")},
	{name: "token with 100", status: 100, ct: ctJSON, body: withExpiry("3600")},
	{name: "text 401", status: 401, ct: ctText, body: "Unauthorized; please log in"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotEB, err := Parse(tt.status, tt.ct, []byte(tt.body))
			if !equalToken(got, tt.want) {
				t.Errorf("token: got %+v, want %+v", got, tt.want)
			}
			if !equalErrorBody(gotEB, tt.wantEB) {
				t.Errorf("error body: got %+v, want %+v", gotEB, tt.wantEB)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %q, want none", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("got no error, want %q", tt.wantErr)
			case err != nil:
				if err.Error() != tt.wantErr {
					t.Errorf("got %q, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("errors.Is(%q, ErrMalformed) = false", err)
				}
			}
		})
	}
}

func equalToken(a, b *Token) bool {
	return reflect.DeepEqual(a, b)
}

func equalErrorBody(a, b *ErrorBody) bool {
	return reflect.DeepEqual(a, b)
}

// TestParseErrorsHideBody checks that no error message repeats a token, or
// anything else, from the body.
func TestParseErrorsHideBody(t *testing.T) {
	bodies := []struct{ ct, body string }{
		{ctJSON, `{"access_token":12,"refresh_token":"RT-SECRET-XYZ"`},
		{ctJSON, `{"access_token":12,"refresh_token":"RT-SECRET-XYZ"}`},
		{ctJSON, `{"access_token":"RT-SECRET-XYZ","refresh_token":12}`},
		{ctJSON, `{"refresh_token":"RT-SECRET-XYZ"}`},
		{ctJSON, `{"access_token":"RT-SECRET-XYZ" "refresh_token":"x"}`},
		{ctJSON, `{"access_token":RT-SECRET-XYZ}`},
		{ctJSON, `RT-SECRET-XYZ`},
		{ctJSON, `["RT-SECRET-XYZ"]`},
		{ctJSON, `"RT-SECRET-XYZ"`},
		{ctJSON, "{\"access_token\":\"RT-SECRET-XYZ\n\"}"},
		{ctForm, "access_token=RT-SECRET-XYZ%zz"},
		{ctForm, "access_token=RT-SECRET-XYZ;refresh_token=RT-SECRET-XYZ"},
		{ctForm, "access_token=RT-SECRET-XYZ&access_token=RT-SECRET-XYZ"},
		{ctForm, "refresh_token=RT-SECRET-XYZ"},
		{ctHTML, "<p>RT-SECRET-XYZ</p>"},
		{"RT-SECRET-XYZ/x", "RT-SECRET-XYZ"},
	}
	for _, b := range bodies {
		_, _, err := Parse(200, b.ct, []byte(b.body))
		if err == nil {
			t.Errorf("Parse(200, %q, %q): got no error", b.ct, b.body)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "SECRET") || !errorMessage.MatchString(msg) {
			t.Errorf("Parse(200, %q, %q): error %q quotes the body", b.ct, b.body, msg)
		}
	}
}

// errorMessage matches every message Parse may return: a fixed description,
// at most followed by an offset.
var errorMessage = regexp.MustCompile(`^malformed token response: [A-Za-z_ ]+( at offset [0-9]+)?$`)

func TestReadBody(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantLen int
		wantErr error
	}{
		{"empty", 0, 0, nil},
		{"small", 100, 100, nil},
		{"exactly MaxBody", MaxBody, MaxBody, nil},
		{"MaxBody+1", MaxBody + 1, 0, ErrTooLarge},
		{"much larger", 3 * MaxBody, 0, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ReadBody(bytes.NewReader(bytes.Repeat([]byte("x"), tt.n)))
			if len(b) != tt.wantLen || err != tt.wantErr {
				t.Errorf("got %d bytes, %v; want %d bytes, %v", len(b), err, tt.wantLen, tt.wantErr)
			}
		})
	}
}

// endless is a body that never ends and counts what was read of it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	e.n += int64(len(p))
	return len(p), nil
}

func TestReadBodyEndless(t *testing.T) {
	r := &endless{}
	done := make(chan error, 1)
	go func() {
		b, err := ReadBody(r)
		if b != nil {
			t.Errorf("got %d bytes, want none", len(b))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != ErrTooLarge {
			t.Errorf("got %v, want %v", err, ErrTooLarge)
		}
		if r.n > MaxBody+1 {
			t.Errorf("read %d bytes, want at most %d", r.n, MaxBody+1)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBody did not return from an endless body")
	}
}

func TestReadBodyError(t *testing.T) {
	errBroken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader(`{"access`), iotest.ErrReader(errBroken))
	b, err := ReadBody(r)
	if string(b) != `{"access` || err != errBroken {
		t.Errorf("got %q, %v; want %q, %v", b, err, `{"access`, errBroken)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestReadBodyDoesNotClose(t *testing.T) {
	c := &closeCounter{Reader: strings.NewReader("{}")}
	if _, err := ReadBody(c); err != nil {
		t.Fatal(err)
	}
	if c.closed != 0 {
		t.Errorf("body closed %d times, want 0", c.closed)
	}
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("x", 200)
	tests := []struct {
		name    string
		body    string
		secrets []string
		want    string
	}{
		{name: "empty", body: "", want: ""},
		{name: "white space only", body: " \r\n\t ", want: ""},
		{name: "plain", body: "Bad Gateway", want: "Bad Gateway"},
		{name: "white space collapsed", body: "  a \t\n\n b\r\n", want: "a b"},
		{name: "HTML page",
			body: "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title>\n" +
				"<style type=\"text/css\">body { font-family: sans-serif }</style>\n" +
				"<script>if (a<b) { alert('x') }</script></head>\n" +
				"<body><!-- a <b>comment</b> --><H1>Service  Unavailable</H1>\n<p>Try again &amp; later.</p></body></html>",
			want: "503 Service Unavailable Service Unavailable Try again & later."},
		{name: "upper-case script", body: "<SCRIPT>evil()</Script>Text", want: "Text"},
		{name: "tags split words", body: "<p>one</p><p>two</p>", want: "one two"},
		{name: "less-than kept", body: "1 < 2 and 3 > 2, x <= y, a<1", want: "1 < 2 and 3 > 2, x <= y, a<1"},
		{name: "unterminated tag dropped", body: "Error <a href=\"https://e.example", want: "Error"},
		{name: "unterminated script dropped", body: "Error <script>var x", want: "Error"},
		{name: "character references", body: "&lt;b&gt; &quot;x&quot; &#233;", want: `<b> "x" é`},
		{name: "control characters", body: "a\x00b\x07c\x1b[31md\x7fe", want: "abc[31mde"},
		{name: "format characters", body: "abc\u202edef\u200bg", want: "abcdefg"},
		{name: "invalid UTF-8", body: "a\xffb\xc3", want: "ab"},
		{name: "line breaks", body: "line1\nline2\u2028line3", want: "line1 line2 line3"},

		{name: "secret", body: `{"error":"invalid_grant","refresh_token":"RT-SECRET-XYZ"}`, secrets: []string{"RT-SECRET-XYZ"},
			want: `{"error":"invalid_grant","refresh_token":"[redacted]"}`},
		{name: "two secrets", body: "a=AT-1234 r=RT-5678 a=AT-1234", secrets: []string{"AT-1234", "RT-5678"},
			want: "a=[redacted] r=[redacted] a=[redacted]"},
		{name: "secret inside another", body: "x RT-SECRET-XYZ y", secrets: []string{"SECRET", "RT-SECRET-XYZ"}, want: "x [redacted] y"},
		{name: "overlapping secrets", body: "xx abcdefghi xx", secrets: []string{"abcdef", "defghi"}, want: "xx [redacted] xx"},
		{name: "adjacent occurrences", body: "abcdabcd.", secrets: []string{"abcd"}, want: "[redacted]."},
		{name: "self-overlapping secret", body: "aaaaa", secrets: []string{"aaaa"}, want: "[redacted]"},
		{name: "short secrets ignored", body: "abc x", secrets: []string{"", "abc", "x"}, want: "abc x"},
		{name: "secret URL-encoded", body: "token=RT%2Fa%2Bb", secrets: []string{"RT/a+b"}, want: "token=[redacted]"},
		{name: "secret JSON-escaped", body: `{"t":"RT\/a\/b"}`, secrets: []string{"RT/a/b"}, want: `{"t":"[redacted]"}`},
		{name: "secret as character references", body: "RT&#45;SECRET", secrets: []string{"RT-SECRET"}, want: "[redacted]"},
		{name: "secret split by tag", body: "RT-SE<b>CRET</b>", secrets: []string{"RT-SE<b>CRET"}, want: "[redacted]"},
		{name: "secret in tag", body: `<input value="RT-SECRET">ok`, secrets: []string{"RT-SECRET"}, want: "ok"},
		{name: "secret JSON-escaped as \\u", body: `{"t":"RT\u002Fa\u002bb"}`, secrets: []string{"RT/a+b"}, want: `{"t":"[redacted]"}`},
		{name: "secret percent-encoded in lower case", body: "token=RT%2fa%2bb", secrets: []string{"RT/a+b"}, want: "token=[redacted]"},
		{name: "secret path-escaped", body: "/t/RT%2Fa+b c", secrets: []string{"RT/a+b"}, want: "/t/[redacted] c"},
		// base64("client:RT-SECRET-XYZ"): the secret starts one byte into
		// a base64 group, so base64(secret) is not in it.
		{name: "secret in Basic credentials", body: "Authorization: Basic Y2xpZW50OlJULVNFQ1JFVC1YWVo=", secrets: []string{"RT-SECRET-XYZ"}, want: "Authorization: Basic Y2xpZW50O[redacted]"},
		{name: "secret as hex", body: "t=52542d5345435245542d58595a", secrets: []string{"RT-SECRET-XYZ"}, want: "t=[redacted]"},

		{name: "120 bytes not cut", body: long[:120], want: long[:120]},
		{name: "121 bytes cut", body: long[:121], want: long[:117] + "…"},
		{name: "long cut", body: long, want: long[:117] + "…"},
		{name: "cut on rune boundary", body: strings.Repeat("é", 100), want: strings.Repeat("é", 58) + "…"},
		{name: "cut drops trailing space", body: strings.Repeat("x", 116) + " yyyy", want: strings.Repeat("x", 116) + "…"},
		{name: "cut after collapsing", body: strings.Repeat("a   ", 30), want: strings.TrimSpace(strings.Repeat("a ", 30))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Snippet([]byte(tt.body), tt.secrets...)
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(got) > snippetMax {
				t.Errorf("got %d bytes, want at most %d", len(got), snippetMax)
			}
		})
	}
}

// tokenValue finds the values of access_token and refresh_token members and
// parameters in a body, as far as a regular expression can.
var tokenValue = regexp.MustCompile(`"(?:access|refresh)_token"\s*:\s*"([^"\\]*)"|(?:access|refresh)_token=([^&;]*)`)

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.status, tt.ct, []byte(tt.body))
	}
	f.Add(200, ctJSON, []byte(`{"access_token":12,"refresh_token":"RT-SECRET-XYZ"`))
	f.Add(200, ctJSON, []byte(`{"access_token":"AT-SECRET-ABC","refresh_token":["RT-SECRET-XYZ"]}`))
	f.Add(200, ctForm, []byte("access_token=AT-SECRET-ABC&refresh_token=RT-SECRET-XYZ%"))
	f.Add(200, ctJSON, []byte(`{"access_token":"AT","expires_in":"1e400"}`))
	f.Add(200, ctJSON, []byte(`{"access_token":"AT","expires_in":-0.0}`))
	f.Add(200, ctJSON, []byte(`{"access_token":"AT","expires_in":2147483646.9}`))
	f.Add(200, ctJSON, []byte(strings.Repeat("[", 20000)))
	f.Add(500, "text/html; charset=\"", []byte("<html>{\"error\":1}</html>"))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		got, eb, err := Parse(status, contentType, body)
		n := 0
		for _, nonNil := range []bool{got != nil, eb != nil, err != nil} {
			if nonNil {
				n++
			}
		}
		ok := 200 <= status && status <= 299
		switch {
		case n > 1:
			t.Fatalf("got %v, %v, %v; want at most one non-nil", got, eb, err)
		case n == 0 && ok:
			t.Fatalf("got nil, nil, nil for status %d", status)
		case !ok && (got != nil || err != nil):
			t.Fatalf("got %v, %v for status %d; want neither a token nor an error", got, err, status)
		}
		if got != nil {
			if got.AccessToken == "" || !sendable(got.AccessToken) || !sendable(got.RefreshToken) {
				t.Errorf("got token %+v", got)
			}
			if got.ExpiresIn < 0 || got.ExpiresIn > math.MaxInt32 {
				t.Errorf("got ExpiresIn %d", got.ExpiresIn)
			}
			checkKeepAll(t, status, contentType, body, got)
		}
		if eb != nil {
			if eb.Code == "" {
				t.Errorf("got error body %+v with no code", eb)
			}
			// An OAuth error does not depend on the status.
			other := 500
			if !ok {
				other = 200
			}
			if _, eb2, _ := Parse(other, contentType, body); !equalErrorBody(eb, eb2) {
				t.Errorf("status %d: got %+v, status %d: got %+v", status, eb, other, eb2)
			}
		}
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrMalformed) || !errorMessage.MatchString(msg) {
				t.Fatalf("got error %q", msg)
			}
			for _, m := range tokenValue.FindAllSubmatch(body, -1) {
				for _, v := range m[1:] {
					if len(v) >= 8 && strings.Contains(msg, string(v)) {
						t.Fatalf("error %q quotes %q from the body", msg, v)
					}
				}
			}
		}
	})
}

func FuzzSnippet(f *testing.F) {
	f.Add([]byte("<html><script>x</script><p>Hi &amp; bye</p></html>"), "RT-SECRET")
	f.Add([]byte(`{"refresh_token":"RT-SECRET"}`), "RT-SECRET")
	f.Add([]byte("a\x00\xff\u202e"+strings.Repeat("é", 80)), "é")
	f.Add([]byte("token=RT%2Fx"), "RT/x")
	f.Fuzz(func(t *testing.T, body []byte, secret string) {
		got := Snippet(body, secret)
		if len(got) > snippetMax || !utf8.ValidString(got) {
			t.Fatalf("got %q", got)
		}
		if got != strings.TrimSpace(got) || strings.Contains(got, "  ") {
			t.Fatalf("got %q, white space not collapsed", got)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("got %q, with a control character", got)
			}
		}
		// A secret may reappear only by overlapping what Snippet added (say,
		// "ed]x" in "[redacted]x"), which the check masks.
		masked := strings.ReplaceAll(strings.TrimSuffix(got, ellipsis), redacted, "\x00")
		if len(secret) >= 4 && !strings.ContainsFunc(secret, unicode.IsControl) && strings.Contains(masked, secret) {
			t.Fatalf("got %q, with secret %q", got, secret)
		}
	})
}
