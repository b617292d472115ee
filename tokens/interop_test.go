package tokens_test

import (
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// uuidPattern is a version 7 UUID (time-ordered, RFC 9562).
var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// plainGoHMACKey derives the token key from the join key's hex with Go's
// standard library alone, as docs/FORMAT.md says.
func plainGoHMACKey(tb testing.TB, alg string) []byte {
	tb.Helper()
	key, err := hex.DecodeString(joinHex)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	var data []byte
	for i := byte(1); i <= 4; i++ {
		data = append(data, "kw-jwt-"+alg...)
		data = append(data, 0, 0, 0, i)
	}
	out := make([]byte, 64)
	for i := 0; i < 64; i += 16 {
		block.Encrypt(out[i:i+16], data[i:i+16])
	}
	return out
}

func TestHMACTokensVerifyWithStockJWT(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	for _, alg := range []string{tokens.HS256, tokens.HS384, tokens.HS512} {
		iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc-a", Scope: []string{"read", "write"}, Audience: []string{"artifactory@*"}, Alg: alg})
		if err != nil {
			t.Fatal(err)
		}
		// golang-jwt's own HMAC method, keyed with the plain-Go key.
		stock := map[string]jwt.SigningMethod{"HS256": jwt.SigningMethodHS256, "HS384": jwt.SigningMethodHS384, "HS512": jwt.SigningMethodHS512}[alg]
		parts := strings.Split(iss.AccessToken, ".")
		sig := unb64(t, parts[2])
		if err := stock.Verify(parts[0]+"."+parts[1], sig, plainGoHMACKey(t, alg)); err != nil {
			t.Fatalf("%s: stock verifier with the plain-Go key: %v", alg, err)
		}
		var claims jwt.MapClaims
		tok, err := jwt.ParseWithClaims(iss.AccessToken, &claims, func(*jwt.Token) (any, error) { return plainGoHMACKey(t, alg), nil },
			jwt.WithValidMethods([]string{alg}))
		if err != nil || !tok.Valid {
			t.Fatalf("%s: jwt.Parse: %v", alg, err)
		}
		if tok.Header["kid"] != "join/v1" || tok.Header["alg"] != alg {
			t.Errorf("header %v", tok.Header)
		}
		if claims["iss"] != s.Issuer() || !strings.HasPrefix(s.Issuer(), "keyward@") || claims["sub"] != "svc-a" || claims["scp"] != "read write" ||
			claims["knd"] != "access" || !uuidPattern.MatchString(claims["jti"].(string)) || claims["jti"] != iss.TokenID {
			t.Errorf("claims %v", claims)
		}
		exp, err := claims.GetExpirationTime()
		if err != nil {
			t.Fatal(err)
		}
		iat, err := claims.GetIssuedAt()
		if err != nil {
			t.Fatal(err)
		}
		nbf, err := claims.GetNotBefore()
		if err != nil {
			t.Fatal(err)
		}
		if exp.Sub(iat.Time) != time.Hour || !nbf.Equal(iat.Time) || iss.ExpiresIn != 3600 || iss.TokenType != "Bearer" {
			t.Errorf("times: iat %v nbf %v exp %v, expires_in %d", iat, nbf, exp, iss.ExpiresIn)
		}
		if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{Audience: "artifactory@node-1"}); err != nil {
			t.Fatalf("%s: wildcard audience: %v", alg, err)
		}
	}
}

// TestGolangJWTRegistryUntouched: importing tokens leaves golang-jwt's
// process-wide registry as golang-jwt ships it, so any other verifier in
// the process gets the stock methods, and such a verifier accepts a
// keyward HS256 token with the join key's derived HMAC bytes (and refuses
// it with other bytes).
func TestGolangJWTRegistryUntouched(t *testing.T) {
	for _, tc := range []struct {
		alg   string
		stock jwt.SigningMethod
	}{
		{"HS256", jwt.SigningMethodHS256}, {"HS384", jwt.SigningMethodHS384}, {"HS512", jwt.SigningMethodHS512},
		{"ES256", jwt.SigningMethodES256}, {"RS256", jwt.SigningMethodRS256}, {"PS256", jwt.SigningMethodPS256},
		{"EdDSA", jwt.SigningMethodEdDSA},
	} {
		if got := jwt.GetSigningMethod(tc.alg); got != tc.stock {
			t.Errorf("jwt.GetSigningMethod(%q) is %T %v, not golang-jwt's own", tc.alg, got, got)
		}
	}
	s, _, _ := service(t, dbtest.SQLite(t))
	iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	other := plainGoHMACKey(t, "HS256")
	other[0] ^= 1
	for _, tc := range []struct {
		name string
		key  []byte
		ok   bool
	}{{"the derived key", plainGoHMACKey(t, "HS256"), true}, {"another key", other, false}} {
		tok, err := jwt.Parse(iss.AccessToken, func(*jwt.Token) (any, error) { return tc.key, nil }, jwt.WithValidMethods([]string{"HS256"}))
		if (err == nil) != tc.ok || (tc.ok && tok.Method != jwt.SigningMethodHS256) {
			t.Errorf("a stock verifier with %s: %v (method %T), want ok %v", tc.name, err, tok.Method, tc.ok)
		}
	}
}

// jwksKey turns a JWKS entry back into a Go public key.
func jwksKey(t *testing.T, k map[string]string) any {
	t.Helper()
	b := func(s string) []byte { return unb64(t, s) }
	switch k["kty"] {
	case "EC":
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, b(k["x"])...), b(k["y"])...))
		if err != nil {
			t.Fatalf("JWKS EC key: %v", err)
		}
		return pub
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(b(k["n"])), E: int(new(big.Int).SetBytes(b(k["e"])).Int64())}
	case "OKP":
		return ed25519.PublicKey(b(k["x"]))
	}
	t.Fatalf("JWKS key %v", k)
	return nil
}

func TestAsymmetricTokensVerifyWithJWKS(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	for _, tc := range []struct {
		kind hsm.KeyPairType
		algs []string
	}{{hsm.ECP256, []string{tokens.ES256}}, {hsm.RSA2048, []string{tokens.RS256, tokens.PS256}}, {hsm.Ed25519, []string{tokens.EdDSA}}} {
		t.Run(string(tc.kind), func(t *testing.T) {
			if err := node.Ring().Token().Require(tc.kind.Op()); err != nil {
				t.Skip(err)
			}
			asymmetricTokenVerifies(t, s, node, tc.kind, tc.algs)
		})
	}
}

// asymmetricTokenVerifies makes the next signing key of kind and checks
// tokens of each alg against its JWKS entry with golang-jwt and keyward.
func asymmetricTokenVerifies(t *testing.T, s *tokens.Service, node *keystore.Vault, kind hsm.KeyPairType, algs []string) {
	t.Helper()
	{
		e, err := node.Ring().GenerateSigning(t.Context(), kind, hsm.PolicyLocal)
		if err != nil {
			t.Fatal(err)
		}
		keys := jwksKeys(t, s)
		for _, alg := range algs {
			iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: alg})
			if err != nil {
				t.Fatal(err)
			}
			// The JWK a verifier picks by the token's kid has the token's
			// alg (PS256 has a kid of its own: signing/vN/PS256).
			kid := "signing/v" + itoa(e.Version)
			if alg == tokens.PS256 {
				kid += "/PS256"
			}
			var pub any
			for _, k := range keys {
				if k["kid"] == kid && k["alg"] == alg {
					pub = jwksKey(t, k)
				}
			}
			if pub == nil {
				t.Fatalf("no JWK with kid %s and alg %s in %v", kid, alg, keys)
			}
			tok, err := jwt.Parse(iss.AccessToken, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{alg}))
			if err != nil || !tok.Valid || tok.Header["kid"] != kid {
				t.Fatalf("%s with the JWKS key: %v %v", alg, err, tok.Header)
			}
			if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
				t.Fatalf("%s: %v", alg, err)
			}
		}
	}
}

// jwksKeys is s's JWKS as a client reads it: each key's members.
func jwksKeys(t *testing.T, s *tokens.Service) []map[string]string {
	t.Helper()
	set, err := s.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct{ Keys []map[string]string }
	if err := json.Unmarshal(raw, &parsed); err != nil {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	return parsed.Keys
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

// A token signed with the derived key by another library, with its header
// members in another order, takes golang-jwt's path and verifies; with a
// bit flipped in its signature it fails the same way on both paths.
func TestForeignHeaderTakesTheStockPath(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	good := issue(t, s, tokens.Request{Subject: "svc"})
	parts := strings.Split(good.AccessToken, ".")
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","kid":"join/v1","alg":"HS256"}`))
	input := hdr + "." + parts[1]
	sig, err := jwt.SigningMethodHS256.Sign(input, plainGoHMACKey(t, "HS256"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	if c, err := s.Verify(t.Context(), foreign, tokens.VerifyOptions{}); err != nil || c.ID != good.TokenID {
		t.Fatalf("foreign header: %+v %v", c, err)
	}
	for _, tok := range []string{good.AccessToken, foreign} {
		p := strings.Split(tok, ".")
		sig := unb64(t, p[2])
		sig[0] ^= 1
		bad := p[0] + "." + p[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		if _, err := s.Verify(t.Context(), bad, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrSignature) {
			t.Fatalf("flipped signature bit: %v", err)
		}
	}
}

// TestParserPaths: a token with the header this service writes, or one it
// learnt from a token of another node, takes the direct path; any other
// header golang-jwt's. (With the direct parser gone this fails, as does
// FuzzDifferential's seed.)
func TestParserPaths(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	other, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Nanosecond}) // has signed nothing
	if err != nil {
		t.Fatal(err)
	}
	var fresh []string
	for range 3 {
		iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc"})
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, iss.AccessToken)
	}
	parts := strings.Split(fresh[0], ".")
	input := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","kid":"join/v1","alg":"HS256"}`)) + "." + parts[1]
	sig, err := jwt.SigningMethodHS256.Sign(input, plainGoHMACKey(t, "HS256"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := input + "." + base64.RawURLEncoding.EncodeToString(sig)

	for _, tc := range []struct { // in order: other learns keyward's header
		name          string
		v             *tokens.Service
		token         string
		direct, stock int64
	}{
		{"a token this service issued", s, fresh[0], 1, 0},
		{"keyward's header, new to this service", other, fresh[1], 0, 1},
		{"keyward's header, learnt", other, fresh[2], 1, 0},
		{"another header order", s, foreign, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths := tc.v.CountPaths()
			if _, err := tc.v.Verify(t.Context(), tc.token, tokens.VerifyOptions{}); err != nil {
				t.Fatal(err)
			}
			if d, st := paths.Direct.Load(), paths.Stock.Load(); d != tc.direct || st != tc.stock {
				t.Fatalf("direct %d, stock %d; want %d, %d", d, st, tc.direct, tc.stock)
			}
		})
	}
}
