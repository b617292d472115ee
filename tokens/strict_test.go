package tokens_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// forgeRaw signs exactly the header and payload bytes given (HS256 with
// the join key's derived key), so a test can write JSON that no encoder
// would.
func forgeRaw(t *testing.T, header, payload string) string {
	t.Helper()
	key := plainGoHMACKey(t, "HS256")
	return forgeRawWith(key, base64.RawURLEncoding.EncodeToString([]byte(header)), payload)
}

func forgeRawWith(key []byte, headerSeg, payload string) string {
	input := headerSeg + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestStrictParsing feeds correctly signed tokens whose JSON RFC 7515,
// 7519 and 8725 forbid: each is refused as malformed, on the direct path
// and golang-jwt's alike. The same token without the defect verifies, so
// each case fails for its defect alone.
func TestStrictParsing(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	good := issue(t, s, tokens.Request{Subject: "svc", Scope: []string{"read"}})
	c := unverified(t, good.AccessToken)
	exp, iat := int64(c["exp"].(float64)), int64(c["iat"].(float64))
	aud, err := json.Marshal(c["aud"])
	if err != nil {
		t.Fatal(err)
	}
	claims := func(extra string) string {
		return `{"iss":"` + c["iss"].(string) + `","sub":"svc","aud":` + string(aud) + `,"exp":` + itoa(int(exp)) + `,"nbf":` + itoa(int(iat)) +
			`,"iat":` + itoa(int(iat)) + `,"jti":"` + c["jti"].(string) + `","scp":"read","knd":"access"` + extra + `}`
	}
	keywardHeader := `{"alg":"HS256","kid":"join/v1","typ":"JWT"}`
	otherHeader := `{"typ":"JWT","kid":"join/v1","alg":"HS256"}` // not keyward's bytes: golang-jwt's path

	for _, header := range []string{keywardHeader, otherHeader} {
		if _, err := s.Verify(t.Context(), forgeRaw(t, header, claims("")), tokens.VerifyOptions{}); err != nil {
			t.Fatalf("the well-formed control token %s does not verify: %v", header, err)
		}
	}
	cases := []struct{ name, header, payload, says string }{
		{"repeated claim", keywardHeader, claims(`,"sub":"admin"`), `"sub" appears twice`},
		{"repeated claim, golang-jwt path", otherHeader, claims(`,"scp":"admin"`), `"scp" appears twice`},
		{"repeated header member", `{"alg":"HS256","kid":"join/v9","typ":"JWT","kid":"join/v1"}`, claims(""), `"kid" appears twice`},
		{"repeated member inside an object", keywardHeader, claims(`,"x":{"a":1,"a":2}`), `"a" appears twice`},
		{"crit header", `{"alg":"HS256","crit":["exp"],"exp":1,"kid":"join/v1","typ":"JWT"}`, claims(""), `"crit"`},
		{"empty crit header", `{"alg":"HS256","crit":[],"kid":"join/v1","typ":"JWT"}`, claims(""), `"crit"`},
		{"kid not a string", `{"alg":"HS256","kid":["join/v1"],"typ":"JWT"}`, claims(""), `"kid" is not a string`},
		{"exp a string", keywardHeader, strings.Replace(claims(""), `"exp":`+itoa(int(exp)), `"exp":"`+itoa(int(exp))+`"`, 1), `"exp" is not a number`},
		{"nbf a string", keywardHeader, strings.Replace(claims(""), `"nbf":`+itoa(int(iat)), `"nbf":"`+itoa(int(iat))+`"`, 1), `"nbf" is not a number`},
		{"iat a string", keywardHeader, strings.Replace(claims(""), `"iat":`+itoa(int(iat)), `"iat":"`+itoa(int(iat))+`"`, 1), `"iat" is not a number`},
		{"invalid UTF-8 in a claim", keywardHeader, strings.Replace(claims(""), `"sub":"svc"`, "\"sub\":\"sv\xff\"", 1), "not valid UTF-8"},
		{"invalid UTF-8 in the header", "{\"alg\":\"HS256\",\"kid\":\"join/v1\",\"typ\":\"JWT\xc3\"}", claims(""), "not valid UTF-8"},
		{"unpaired surrogate", keywardHeader, strings.Replace(claims(""), `"sub":"svc"`, `"sub":"svc\ud800"`, 1), "surrogate"},
		{"lone low surrogate", keywardHeader, strings.Replace(claims(""), `"sub":"svc"`, `"sub":"\udc00svc"`, 1), "surrogate"},
		{"data after the claims", keywardHeader, claims("") + `{"sub":"admin"}`, "data after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Verify(t.Context(), forgeRaw(t, tc.header, tc.payload), tokens.VerifyOptions{})
			if !errors.Is(err, tokens.ErrMalformed) || !strings.Contains(err.Error(), tc.says) || got != nil {
				t.Fatalf("got %+v, %v; want ErrMalformed saying %s", got, err, tc.says)
			}
		})
	}
	// A paired surrogate escape is a character like any other.
	emoji := strings.Replace(claims(""), `"sub":"svc"`, `"sub":"svc\ud83d\ude00"`, 1)
	if got, err := s.Verify(t.Context(), forgeRaw(t, keywardHeader, emoji), tokens.VerifyOptions{}); err != nil || got.Subject != "svc😀" {
		t.Fatalf("a paired surrogate escape: %+v, %v", got, err)
	}
	// Padding or non-canonical base64url is refused too.
	parts := strings.Split(good.AccessToken, ".")
	sig := unb64(t, parts[2])
	last := base64.RawURLEncoding.EncodeToString(sig)
	bent := []byte(last)
	bent[len(bent)-1] ^= 1 // the same bytes, with a non-zero unused bit
	if b, err := base64.RawURLEncoding.DecodeString(string(bent)); err == nil && string(b) == string(sig) {
		if _, err := s.Verify(t.Context(), parts[0]+"."+parts[1]+"."+string(bent), tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("a signature with non-canonical base64url: %v", err)
		}
	}
}

// FuzzDifferential: for any header and payload, signed correctly,
// keyward's direct codec and golang-jwt's parser (behind checkStrict)
// agree: whatever the direct codec accepts, golang-jwt accepts with every
// claim the same, and whatever golang-jwt refuses the direct codec does
// not accept. An empty header means the header keyward writes, so the
// direct codec is in play; with the token's own payload it must accept.
func FuzzDifferential(f *testing.F) {
	s, _, _ := service(f, dbtest.SQLite(f))
	good := issue(f, s, tokens.Request{Subject: "svc", Scope: []string{"read"}, Audience: []string{"a@*", "b@x"}})
	parts := strings.Split(good.AccessToken, ".")
	payload := unb64(f, parts[1])
	seed := payload
	key := plainGoHMACKey(f, "HS256")
	f.Add([]byte(nil), payload)
	f.Add([]byte(`{"alg":"HS256","kid":"join/v1"}`), payload)
	f.Add([]byte(nil), []byte(strings.Replace(string(payload), `"sub":"svc"`, `"sub":"svc","sub":"admin"`, 1)))
	f.Add([]byte(nil), []byte(strings.Replace(string(payload), `"exp":`, `"exp":1.5,"x":`, 1)))
	f.Add([]byte(nil), []byte(strings.Replace(string(payload), `"sub":"svc"`, `"sub":"s\u0076c"`, 1)))
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		hdrSeg := parts[0]
		if len(header) > 0 {
			hdrSeg = base64.RawURLEncoding.EncodeToString(header)
		}
		tok := forgeRawWith(key, hdrSeg, string(payload))
		direct, derr, done := s.ParseDirect(t.Context(), tok)
		stock, serr := s.ParseStock(t.Context(), tok)
		if len(header) == 0 && bytes.Equal(payload, seed) && (!done || derr != nil) {
			// Else a direct codec that declined everything would pass.
			t.Fatalf("the direct codec did not accept keyward's own token: done %v, %v", done, derr)
		}
		if !done || derr != nil {
			return // the direct codec declined or refused: nothing to compare
		}
		if serr != nil {
			t.Fatalf("the direct codec accepted %q, golang-jwt refuses it: %v", payload, serr)
		}
		if !tokens.SameClaims(direct, stock) {
			t.Fatalf("%q: the direct codec read %+v, golang-jwt %+v", payload, direct, stock)
		}
	})
}
