package tokens

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The direct codec must write exactly what golang-jwt writes, and read
// every payload it accepts exactly as encoding/json reads it.

func sampleClaims() []*Claims {
	at := time.Unix(1795436604, 0)
	base := func() *Claims {
		return &Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "keyward@0123456789abcdef", Subject: "svc", Audience: jwt.ClaimStrings{"artifactory@*"},
			ID: newID(at), IssuedAt: jwt.NewNumericDate(at), NotBefore: jwt.NewNumericDate(at), ExpiresAt: jwt.NewNumericDate(at.Add(time.Hour)),
		}, Scope: "read write", Kind: KindAccess}
	}
	var out []*Claims
	add := func(f func(c *Claims)) {
		c := base()
		f(c)
		out = append(out, c)
	}
	add(func(*Claims) {})
	add(func(c *Claims) { c.Audience = jwt.ClaimStrings{"a@*", "b@node-1", "keyward@x"} })
	add(func(c *Claims) { c.Scope, c.Audience = "", nil })
	add(func(c *Claims) {
		c.Kind, c.Ext = KindPairing, `{"base_url":"https://a.example","exchange_url":"https://a.example/x?a=1&b=<2>"}`
	})
	add(func(c *Claims) { c.Subject = "ünïcödé \"quoted\" back\\slash\ttab \u2028 <html> & more" })
	add(func(c *Claims) { c.Subject = string([]byte{0xff, 0xfe, 'x'}) }) // invalid UTF-8
	add(func(c *Claims) { c.NotBefore, c.IssuedAt = nil, nil })
	add(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Unix(0, 0)) })
	return out
}

func TestAppendClaimsIsJSONMarshal(t *testing.T) {
	for _, c := range sampleClaims() {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendClaims(nil, c); string(got) != string(want) {
			t.Errorf("appendClaims:\n got %s\nwant %s", got, want)
		}
	}
}

func TestHeaderSegmentIsGolangJWTs(t *testing.T) {
	for _, alg := range Algorithms {
		for _, kid := range []string{"join/v1", "join/v12", "signing/v3"} {
			tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{})
			tok.Header["kid"] = kid
			s, err := tok.SigningString()
			if err != nil {
				t.Fatal(err)
			}
			if want, _, _ := strings.Cut(s, "."); headerSegment(alg, kid) != want {
				t.Errorf("%s %s: %s, golang-jwt writes %s", alg, kid, headerSegment(alg, kid), want)
			}
		}
	}
}

// sameClaims compares claims field by field (dates as instants).
func sameClaims(a, b *Claims) bool {
	date := func(x, y *jwt.NumericDate) bool {
		return (x == nil) == (y == nil) && (x == nil || x.Equal(y.Time))
	}
	aud := func(x, y jwt.ClaimStrings) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a.Issuer == b.Issuer && a.Subject == b.Subject && aud(a.Audience, b.Audience) && a.ID == b.ID &&
		date(a.ExpiresAt, b.ExpiresAt) && date(a.NotBefore, b.NotBefore) && date(a.IssuedAt, b.IssuedAt) &&
		a.Scope == b.Scope && a.Kind == b.Kind && a.Ext == b.Ext
}

// checkDecode asserts that decodeClaims either declines p or reads it as
// encoding/json does.
func checkDecode(t *testing.T, p []byte) bool {
	t.Helper()
	got, ok := decodeClaims(string(p))
	if !ok {
		return false
	}
	if _, err := strictObject(p); err != nil {
		t.Fatalf("decodeClaims accepted %q, the strict check refuses it: %v", p, err)
	}
	var want Claims
	if err := json.Unmarshal(p, &want); err != nil {
		t.Fatalf("decodeClaims accepted %q, encoding/json refuses it: %v", p, err)
	}
	if !sameClaims(got, &want) {
		t.Fatalf("decodeClaims read %q as %+v, encoding/json as %+v", p, got, &want)
	}
	return true
}

func TestDecodeClaims(t *testing.T) {
	// What keyward writes is read directly, unless it needs escapes.
	for _, c := range sampleClaims() {
		p := appendClaims(nil, c)
		direct := checkDecode(t, p)
		if plain := !strings.ContainsRune(string(p), '\\') && plainJSON(c.Subject); direct != plain {
			t.Errorf("direct decode of %s: %v", p, direct)
		}
	}
	for _, tc := range []struct {
		payload string
		direct  bool
	}{
		{`{"iss":"a","exp":1,"jti":"x","knd":"access"}`, true},
		{` { "iss" : "a" , "aud" : "b" , "exp" : 2 } `, true},
		{`{"aud":["a","b"]}`, true},
		{`{}`, false},
		{`{"iss":"a","iss":"b"}`, false},    // repeated: encoding/json keeps the last
		{`{"ISS":"a"}`, false},              // encoding/json matches names without case
		{`{"iss":"a","typ":"x"}`, false},    // unknown member
		{`{"exp":1.5}`, false},              // a fraction
		{`{"exp":1e3}`, false},              // an exponent
		{`{"exp":-1}`, false},               // negative
		{`{"exp":01}`, false},               // leading zero: not JSON
		{`{"exp":1234567890123456}`, false}, // beyond 15 digits
		{`{"exp":"1"}`, false},              // a string date
		{`{"sub":"a\u0062"}`, false},        // escapes
		{`{"sub":"é"}`, false},              // non-ASCII
		{`{"aud":[]}`, false},               // empty array
		{`{"aud":["a",]}`, false},           // trailing comma
		{`{"iss":"a"}x`, false},             // trailing bytes
		{`{"iss":"a"`, false},               // cut short
		{`{"iss":null}`, false},             // null
		{`[{"iss":"a"}]`, false},            // not an object
		{`{"iss":"a",}`, false},             // trailing comma
		{"{\"iss\":\"a\x01\"}", false},      // control character
		{`{"exp":1,"nbf":2,"iat":3,"jti":"j","scp":"s","knd":"k","ext":"e","sub":"u"}`, true},
	} {
		if got := checkDecode(t, []byte(tc.payload)); got != tc.direct {
			t.Errorf("%s: direct %v, want %v", tc.payload, got, tc.direct)
		}
	}
}

func FuzzDecodeClaims(f *testing.F) {
	for _, c := range sampleClaims() {
		f.Add(appendClaims(nil, c))
	}
	f.Add([]byte(`{"aud":"a","exp":1}`))
	f.Add([]byte(`{"iss":"a","iss":"b"}`))
	f.Fuzz(func(t *testing.T, p []byte) { checkDecode(t, p) })
}

func TestNewIDIsTimeOrderedUUIDv7(t *testing.T) {
	at := time.UnixMilli(1795436604123)
	a, b := newID(at), newID(at.Add(time.Millisecond))
	if a[:8] != "01a2085c" || a[14] != '7' || !strings.ContainsRune("89ab", rune(a[19])) || len(a) != 36 {
		t.Fatalf("newID: %s", a)
	}
	if !(a < b) || newID(at) == a {
		t.Fatalf("ids not ordered by time, or repeated: %s %s", a, b)
	}
}
