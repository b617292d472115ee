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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
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

// forge builds a token with any header and claims, signed with key by the
// stock method of alg (or unsigned for "none").
func forge(t *testing.T, alg string, header map[string]any, claims jwt.MapClaims, key any) string {
	t.Helper()
	m := jwt.GetSigningMethod(alg)
	if alg == "none" {
		m = jwt.SigningMethodNone
		key = jwt.UnsafeAllowNoneSignatureType
	}
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVerifyRejects(t *testing.T) {
	s, node, clk := service(t, dbtest.SQLite(t))
	if _, err := node.Ring().GenerateSigning(t.Context(), hsm.ECP256, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	good := issue(t, s, tokens.Request{Subject: "svc", Scope: []string{"read"}})
	claims := unverified(t, good.AccessToken)
	K := plainGoHMACKey(t, "HS256")
	keys := jwksKeys(t, s)
	if len(keys) == 0 {
		t.Fatal("the JWKS is empty")
	}
	pubPEMish := []byte(keys[0]["x"] + keys[0]["y"])

	parts := strings.Split(good.AccessToken, ".")
	payload := unb64(t, parts[1])
	payload[len(payload)/2] ^= 1
	flipped := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]

	withClaims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range claims {
			c[k] = v
		}
		mut(c)
		return c
	}
	cases := []struct {
		name  string
		token string
		o     tokens.VerifyOptions
		want  error
	}{
		{"alg none", forge(t, "none", map[string]any{"kid": "join/v1"}, claims, nil), tokens.VerifyOptions{}, tokens.ErrAlgorithm},
		{"HS256 keyed with the public key under the signing kid", forge(t, "HS256", map[string]any{"kid": "signing/v1"}, claims, pubPEMish), tokens.VerifyOptions{}, tokens.ErrAlgorithm},
		{"HS512 header on an HS256 key", forge(t, "HS512", map[string]any{"kid": "join/v1"}, claims, K), tokens.VerifyOptions{}, tokens.ErrSignature},
		{"forged kid", forge(t, "HS256", map[string]any{"kid": "join/v9"}, claims, K), tokens.VerifyOptions{}, tokens.ErrUnknownKey},
		{"no kid", forge(t, "HS256", nil, claims, K), tokens.VerifyOptions{}, tokens.ErrUnknownKey},
		{"kid path", forge(t, "HS256", map[string]any{"kid": "../join/v1"}, claims, K), tokens.VerifyOptions{}, tokens.ErrUnknownKey},
		{"algorithm not in the fixed set", good.AccessToken, tokens.VerifyOptions{Algorithms: []string{"ES256"}}, tokens.ErrAlgorithm},
		{"flipped payload bit", flipped, tokens.VerifyOptions{}, tokens.ErrInvalid},
		{"other issuer", forge(t, "HS256", map[string]any{"kid": "join/v1"}, withClaims(func(c jwt.MapClaims) { c["iss"] = "keyward@elsewhere" }), K), tokens.VerifyOptions{}, tokens.ErrIssuer},
		{"no exp", forge(t, "HS256", map[string]any{"kid": "join/v1"}, withClaims(func(c jwt.MapClaims) { delete(c, "exp") }), K), tokens.VerifyOptions{}, tokens.ErrMalformed},
		{"wrong audience", good.AccessToken, tokens.VerifyOptions{Audience: "other@x"}, tokens.ErrAudience},
		{"pairing kind where access is wanted", forge(t, "HS256", map[string]any{"kid": "join/v1"}, withClaims(func(c jwt.MapClaims) { c["knd"] = "pairing" }), K), tokens.VerifyOptions{}, tokens.ErrKind},
		{"garbage", "not.a.token", tokens.VerifyOptions{}, tokens.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.Verify(t.Context(), tc.token, tc.o)
			if !errors.Is(err, tokens.ErrInvalid) || !errors.Is(err, tc.want) || c != nil {
				t.Fatalf("got %v, %v; want ErrInvalid and %v", c, err, tc.want)
			}
		})
	}
	// The forged-but-correct token (signed with K by a stock library) does verify.
	if _, err := s.Verify(t.Context(), forge(t, "HS256", map[string]any{"kid": "join/v1"}, claims, K), tokens.VerifyOptions{}); err != nil {
		t.Fatalf("a token signed with the derived key by a stock library: %v", err)
	}

	// Time: within the leeway, past it, not yet valid.
	if _, err := s.Verify(t.Context(), good.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour + 20*time.Second)
	if _, err := s.Verify(t.Context(), good.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatalf("within the 30 s leeway: %v", err)
	}
	clk.Add(20 * time.Second)
	if _, err := s.Verify(t.Context(), good.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("expired (cached token too): %v", err)
	}
	future := issue(t, s, tokens.Request{Subject: "svc"})
	clk.Add(-2 * time.Minute)
	if _, err := s.Verify(t.Context(), future.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrNotYetValid) {
		t.Fatalf("not yet valid: %v", err)
	}
}

func TestRevocationReachesCachedAndOtherServices(t *testing.T) {
	dsn := dbtest.SQLite(t)
	s, node, _ := service(t, dsn)
	other, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	iss := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Minute})
	for _, v := range []*tokens.Service{s, other, s, other} { // second round from the caches
		if _, err := v.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Revoke(t.Context(), iss.TokenID); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*tokens.Service{s, other} {
		if _, err := v.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("after revocation: %v", err)
		}
	}
	page, err := s.List(t.Context(), keystore.TokenFilter{Subject: "svc", All: true, Descending: true})
	list := page.Tokens
	if err != nil || len(list) != 1 || list[0].Revoked == nil || list[0].Kind != "access" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := s.Revoke(t.Context(), "no-such-id"); !errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("revoke unknown: %v", err)
	}
}

func TestRefresh(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) {
		s, _, _ := service(t, dsn(t))
		first, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Scope: []string{"read", "write"}, Refreshable: true})
		if err != nil || !strings.HasPrefix(first.RefreshToken, "kwr_") {
			t.Fatalf("create: %+v %v", first, err)
		}
		if _, err := s.Refresh(t.Context(), first.RefreshToken, []string{"read", "admin"}); !errors.Is(err, tokens.ErrScopeWidened) {
			t.Fatalf("widening: %v", err)
		}
		second, err := s.Refresh(t.Context(), first.RefreshToken, []string{"read"})
		if err != nil {
			t.Fatalf("refresh after a refused widening: %v", err)
		}
		if second.Scope != "read" || second.TokenID == first.TokenID || second.RefreshToken == first.RefreshToken {
			t.Fatalf("second: %+v", second)
		}
		if _, err := s.Verify(t.Context(), first.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("old access token after refresh: %v", err)
		}
		if _, err := s.Verify(t.Context(), second.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatalf("new access token: %v", err)
		}
		// Reuse of the first refresh token: refused, and the whole family dies.
		if _, err := s.Refresh(t.Context(), first.RefreshToken, nil); !errors.Is(err, tokens.ErrRevoked) || !strings.Contains(err.Error(), "used before") {
			t.Fatalf("reuse: %v", err)
		}
		if _, err := s.Verify(t.Context(), second.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("family member after reuse: %v", err)
		}
		if _, err := s.Refresh(t.Context(), second.RefreshToken, nil); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("family refresh token after reuse: %v", err)
		}
		if _, err := s.Refresh(t.Context(), "kwr_nonsense", nil); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("unknown refresh token: %v", err)
		}

		// Concurrent refreshes of one token: exactly one success.
		grant := issue(t, s, tokens.Request{Subject: "race", Refreshable: true})
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Refresh(t.Context(), grant.RefreshToken, nil); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d concurrent refreshes succeeded, want 1", ok.Load())
		}
	})
}

func TestPairing(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) {
		s, _, clk := service(t, dsn(t))
		var fe *tokens.FieldError
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example"}); !errors.Is(err, tokens.ErrRequest) || !errors.As(err, &fe) ||
			fe.Field != "exchange_url" || err.Error() != "exchange_url: is required" {
			t.Fatalf("missing URL: %v", err)
		}
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "ftp://a", ExchangeURL: "https://b/x"}); !errors.Is(err, tokens.ErrRequest) {
			t.Fatalf("ftp URL: %v", err)
		}
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "/relative", ExchangeURL: "https://b/x"}); !errors.Is(err, tokens.ErrRequest) {
			t.Fatalf("relative URL: %v", err)
		}
		p, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/exchange", PairingURL: "https://a.example/pair"})
		if err != nil || p.ExpiresIn != 300 {
			t.Fatalf("pairing: %+v %v", p, err)
		}
		// A pairing token is not an access token.
		if _, err := s.Verify(t.Context(), p.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrKind) {
			t.Fatalf("pairing token as access: %v", err)
		}
		var winners atomic.Int32
		var master tokens.Issued
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := s.RedeemPairing(t.Context(), p.AccessToken, 0)
				if err == nil {
					winners.Add(1)
					mu.Lock()
					master = m
					mu.Unlock()
				} else if !errors.Is(err, tokens.ErrRevoked) {
					t.Errorf("a losing redemption: %v", err)
				}
			}()
		}
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%d of 50 concurrent redemptions succeeded, want exactly 1", winners.Load())
		}
		c, err := s.Verify(t.Context(), master.AccessToken, tokens.VerifyOptions{})
		if err != nil || c.Kind != "master" || !strings.Contains(c.Ext, "https://a.example/exchange") || master.ExpiresIn != 365*24*3600 {
			t.Fatalf("master token: %+v %v", c, err)
		}
		if err := s.Revoke(t.Context(), master.TokenID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(t.Context(), master.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("revoked master: %v", err)
		}
		// Revoked and expired pairing tokens cannot be redeemed.
		p2, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(t.Context(), p2.TokenID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RedeemPairing(t.Context(), p2.AccessToken, 0); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("revoked pairing: %v", err)
		}
		p3, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(6 * time.Minute)
		if _, err := s.RedeemPairing(t.Context(), p3.AccessToken, 0); !errors.Is(err, tokens.ErrExpired) {
			t.Fatalf("expired pairing: %v", err)
		}
	})
}

func TestIntrospect(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	iss := issue(t, s, tokens.Request{Subject: "svc", Scope: []string{"read"}})
	r, err := s.Introspect(t.Context(), iss.AccessToken, tokens.VerifyOptions{})
	if err != nil || !r.Active || r.Sub != "svc" || r.Scope != "read" || r.Jti != iss.TokenID || r.TokenType != "Bearer" {
		t.Fatalf("introspect: %v", r)
	}
	if err := s.Revoke(t.Context(), iss.TokenID); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Introspect(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil || r.Active || r.Sub != "" || r.Aud != nil {
		t.Fatalf("revoked: %v %v", r, err)
	}
}

func FuzzVerify(f *testing.F) {
	s, _, _ := service(f, dbtest.SQLite(f))
	good := issue(f, s, tokens.Request{Subject: "svc"})
	f.Add(good.AccessToken)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(t.Context(), tok, tokens.VerifyOptions{})
		if err == nil && strings.TrimSpace(tok) != good.AccessToken {
			t.Fatalf("verified a token keyward did not issue: %q → %+v", tok, c)
		}
		if err != nil && !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("error outside ErrInvalid: %v", err)
		}
	})
}

func TestVerifiedCache(t *testing.T) {
	_, node, clk := service(t, dbtest.SQLite(t))
	s, err := tokens.New(t.Context(), node, tokens.Options{Now: clk.Now, RevocationRefresh: time.Nanosecond, CacheSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	var toks []tokens.Issued
	for range 50 {
		iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc", ExpiresIn: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, iss)
		if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.CacheLen(); n != 3 {
		t.Fatalf("cache holds %d tokens, bound 3", n)
	}
	// A hit still honours the caller's algorithms…
	last := toks[len(toks)-1].AccessToken
	if _, err := s.Verify(t.Context(), last, tokens.VerifyOptions{Algorithms: []string{tokens.ES256}}); !errors.Is(err, tokens.ErrAlgorithm) {
		t.Fatalf("cached HS256 token with only ES256 accepted: %v", err)
	}
	// …and hands out copies: changing one changes nothing cached, whether
	// it came from the first verification or a cache hit.
	fresh := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Minute})
	for _, tok := range []string{fresh.AccessToken, fresh.AccessToken, last} {
		c, err := s.Verify(t.Context(), tok, tokens.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Subject, c.Kind, c.Audience[0] = "admin", "master", "other@x"
		c.ExpiresAt.Time = c.ExpiresAt.Add(time.Hour)
		c2, err := s.Verify(t.Context(), tok, tokens.VerifyOptions{})
		if err != nil || c2.Subject != "svc" || c2.Audience[0] != s.Issuer() || c2.ExpiresAt.Sub(c2.IssuedAt.Time) != time.Minute {
			t.Fatalf("cache changed through a returned claim: %+v %v", c2, err)
		}
	}
	// …and expiry.
	clk.Add(2 * time.Minute)
	if _, err := s.Verify(t.Context(), last, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("expired cached token: %v", err)
	}
}

func TestRetiredJoinKeyStopsVerifying(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	old := issue(t, s, tokens.Request{Subject: "svc"})
	if _, err := s.Verify(t.Context(), old.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Rotate(t.Context(), keyring.Join, 256, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	// After a rotation, new tokens name join/v2 and old ones still verify.
	next := issue(t, s, tokens.Request{Subject: "svc"})
	var hdr map[string]any
	raw := unb64(t, strings.Split(next.AccessToken, ".")[0])
	if err := json.Unmarshal(raw, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr["kid"] != "join/v2" {
		t.Fatalf("after rotation: kid %v", hdr["kid"])
	}
	for _, v := range []*tokens.Service{s, fresh} {
		if _, err := v.Verify(t.Context(), old.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatalf("join/v1 token after rotation: %v", err)
		}
	}
	if err := node.Retire(t.Context(), keyring.Join, 1); err != nil {
		t.Fatal(err)
	}
	// Retired: refused from the cache, on the direct path and on
	// golang-jwt's (a service that never saw the header).
	other, err := tokens.New(t.Context(), node, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*tokens.Service{s, fresh, other} {
		if _, err := v.Verify(t.Context(), old.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrUnknownKey) {
			t.Fatalf("join/v1 token after retirement: %v", err)
		}
	}
	if _, err := s.Verify(t.Context(), next.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatalf("join/v2 token: %v", err)
	}
}

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

func TestDestroyedSigningKeyStopsVerifying(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	if _, err := node.Ring().GenerateSigning(t.Context(), hsm.ECP256, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: tokens.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := node.Retire(t.Context(), keyring.Signing, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Destroy(t.Context(), keyring.Signing, 1); err != nil {
		t.Fatal(err)
	}
	// From the cache and from scratch (a service that never saw it).
	other, err := tokens.New(t.Context(), node, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*tokens.Service{s, other} {
		if _, err := v.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrUnknownKey) {
			t.Fatalf("token of a destroyed signing key: %v", err)
		}
	}
}

func TestRefreshNeverExtendsTheGrant(t *testing.T) {
	s, _, clk := service(t, dbtest.SQLite(t))
	grant, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Refreshable: true, ExpiresIn: 10 * time.Minute, RefreshTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Minute)
	next, err := s.Refresh(t.Context(), grant.RefreshToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(11 * time.Minute) // the grant's hour is over
	if _, err := s.Refresh(t.Context(), next.RefreshToken, nil); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("refresh past the grant's life: %v", err)
	}
	if _, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Refreshable: true, RefreshTTL: -time.Second}); !errors.Is(err, tokens.ErrRequest) {
		t.Fatalf("negative refresh lifetime: %v", err)
	}
}

func TestVerifyRefusesBadRequestsAndReportsOutages(t *testing.T) {
	dsn := dbtest.SQLite(t)
	s, node, _ := service(t, dsn)
	iss := issue(t, s, tokens.Request{Subject: "svc"})

	// Asking for an algorithm keyward does not know is the caller's error,
	// not the token's.
	for _, algs := range [][]string{{"none"}, {"HS256", "ES384"}} {
		_, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{Algorithms: algs})
		if !errors.Is(err, tokens.ErrAlgorithm) || errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("algorithms %v: %v", algs, err)
		}
	}
	if _, err := s.Verify(t.Context(), iss.AccessToken+strings.Repeat("A", tokens.MaxTokenSize), tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrMalformed) {
		t.Fatalf("oversized token: %v", err)
	}

	// A token without iat or nbf, signed with the join key's HMAC key by a
	// stock library, introspects without them.
	claims := unverified(t, iss.AccessToken)
	delete(claims, "iat")
	delete(claims, "nbf")
	bare := forge(t, "HS256", map[string]any{"kid": "join/v1"}, claims, plainGoHMACKey(t, "HS256"))
	if r, err := s.Introspect(t.Context(), bare, tokens.VerifyOptions{}); err != nil || !r.Active || r.Iat != 0 {
		t.Fatalf("introspect without iat: %v %v", r, err)
	}

	// With the database gone, a verification that needs it fails as an
	// outage, never as a bad token (exit 1, not 3, in the CLI).
	// s has the token cached; direct takes the direct path, having learnt
	// the header; a header in another order takes golang-jwt's.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"kid":"join/v1","alg":"HS256"}`))
	input := hdr + "." + strings.Split(iss.AccessToken, ".")[1]
	sig, err := jwt.SigningMethodHS256.Sign(input, plainGoHMACKey(t, "HS256"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	direct, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Nanosecond, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	node.Store().Close()
	for _, v := range []*tokens.Service{s, direct} {
		for _, tok := range []string{iss.AccessToken, bare, foreign} {
			if _, err := v.Verify(t.Context(), tok, tokens.VerifyOptions{}); err == nil || errors.Is(err, tokens.ErrInvalid) {
				t.Fatalf("verify with the database closed: %v", err)
			}
		}
	}
}

func TestPairingURLsCarryNoCredentials(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	_, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://admin:hunter2@a.example", ExchangeURL: "https://a.example/x"})
	if !errors.Is(err, tokens.ErrRequest) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("URL with credentials: %v", err)
	}
}

// Two nodes, each with its own device holding the same join key, share one
// PostgreSQL database: tokens of one verify on the other, a revocation on
// one reaches the other, and a refresh token used on both at once works on
// exactly one.
func TestHANodes(t *testing.T) {
	dsn := dbtest.Postgres(t)
	a, _, _ := service(t, dsn)
	b, _, _ := service(t, dsn)
	if a.Issuer() != b.Issuer() {
		t.Fatalf("issuers differ: %s %s", a.Issuer(), b.Issuer())
	}
	iss, err := a.Create(t.Context(), tokens.Request{Subject: "svc", Refreshable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatalf("node b verifying node a's token: %v", err)
	}
	if err := b.Revoke(t.Context(), iss.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
		t.Fatalf("node a after node b revoked: %v", err)
	}
	grant := issue(t, a, tokens.Request{Subject: "race", Refreshable: true})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := []*tokens.Service{a, b}[i%2].Refresh(t.Context(), grant.RefreshToken, nil); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d refreshes of one token across two nodes succeeded, want 1", wins.Load())
	}
}

func TestOptionsDefaults(t *testing.T) {
	_, node, _ := service(t, dbtest.SQLite(t))
	set := tokens.Options{Leeway: time.Second, CacheSize: -1, RevocationRefresh: time.Minute, MaxLifetime: time.Hour}
	for _, tc := range []struct {
		name     string
		in, want tokens.Options
	}{
		{"zero takes the defaults", tokens.Options{}, tokens.Options{Leeway: 30 * time.Second, CacheSize: 10_000,
			RevocationRefresh: 250 * time.Millisecond, MaxLifetime: 365 * 24 * time.Hour}},
		{"set values stay", set, set},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tokens.New(t.Context(), node, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Settings(); got.Leeway != tc.want.Leeway || got.CacheSize != tc.want.CacheSize ||
				got.RevocationRefresh != tc.want.RevocationRefresh || got.MaxLifetime != tc.want.MaxLifetime {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRequestFieldErrors: a refused request names the field by its JSON
// name and says why, in words that name no CLI flag or command; it is
// ErrRequest (and ErrLifetimeOverMax or ErrAlgorithm where that is why).
func TestRequestFieldErrors(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	create := func(r tokens.Request) error {
		if r.Subject == "" {
			r.Subject = "svc"
		}
		_, err := s.Create(t.Context(), r)
		return err
	}
	pairing := func(p tokens.PairingRequest) func() error {
		return func() error { _, err := s.CreatePairing(t.Context(), p); return err }
	}
	req := func(r tokens.Request) func() error { return func() error { return create(r) } }
	for _, tc := range []struct {
		name  string
		do    func() error
		field string
		says  string
		also  error
	}{
		{"no subject", func() error { _, err := s.Create(t.Context(), tokens.Request{Subject: " "}); return err }, "subject", "subject: is required", nil},
		{"unknown kind", req(tokens.Request{Kind: "admin"}), "kind", `kind: "admin" is not a kind of token`, nil},
		{"zero lifetime", req(tokens.Request{ExpiresIn: -time.Second}), "expires_in", "expires_in: must be at least 1s", nil},
		{"lifetime over the longest", req(tokens.Request{ExpiresIn: 8761 * time.Hour}), "expires_in",
			"expires_in: 8761h0m0s is over the longest token lifetime, 8760h0m0s", tokens.ErrLifetimeOverMax},
		{"refresh lifetime over the longest", req(tokens.Request{Refreshable: true, RefreshTTL: 9000 * time.Hour}), "refresh_expires_in",
			"refresh_expires_in: 9000h0m0s is over the longest token lifetime, 8760h0m0s", tokens.ErrLifetimeOverMax},
		{"short refresh lifetime", req(tokens.Request{Refreshable: true, RefreshTTL: -time.Second}), "refresh_expires_in",
			"refresh_expires_in: must be at least 1s", nil},
		{"subject not UTF-8", req(tokens.Request{Subject: "sv\xff"}), "subject", "subject: must be UTF-8", nil},
		{"description not UTF-8", req(tokens.Request{Description: "\xff"}), "description", "description: must be UTF-8", nil},
		{"unknown alg", req(tokens.Request{Alg: "none"}), "alg", `alg: algorithm not allowed: "none"`, tokens.ErrAlgorithm},
		{"scope of two words", req(tokens.Request{Scope: []string{"read write"}}), "scope", `scope: "read write" must be one word`, nil},
		{"empty audience", req(tokens.Request{Audience: []string{""}}), "audience", `audience: "" must be one word`, nil},
		{"ext not JSON", req(tokens.Request{Ext: "{"}), "ext", "ext: must be JSON", nil},
		{"refreshable pairing token", req(tokens.Request{Kind: tokens.KindPairing, Refreshable: true}), "refreshable",
			"refreshable: only access tokens are refreshable", nil},
		{"no base URL", pairing(tokens.PairingRequest{ExchangeURL: "https://a/x"}), "base_url", "base_url: is required", nil},
		{"relative exchange URL", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "/x"}), "exchange_url",
			"exchange_url: is not an absolute http or https URL", nil},
		{"pairing URL with credentials", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "https://a/x", PairingURL: "https://u:p@a/p"}),
			"pairing_url", "pairing_url: https://u:xxxxx@a/p carries credentials", nil},
		{"pairing lifetime", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "https://a/x", ExpiresIn: -time.Minute}),
			"expires_in", "expires_in: must be at least 1s", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var fe *tokens.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, tokens.ErrRequest) || !strings.HasPrefix(err.Error(), tc.says) {
				t.Fatalf("got %v; want a FieldError of %s saying %q", err, tc.field, tc.says)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("%v is not %v", err, tc.also)
			}
			if strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "keyward ") {
				t.Fatalf("%v names a CLI flag or command", err)
			}
		})
	}
}

// TestMissingKeysNameNoCommand: signing without the key it needs fails
// with the key's sentinel, in words that name no CLI command.
func TestMissingKeysNameNoCommand(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	_, tok := softhsmtest.OpenTestToken(t)
	store, err := keystore.Open(t.Context(), dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	bare, err := keystore.NewVault(t.Context(), store, keyring.New(tok), keystore.VaultOptions{Joining: true}) // no join key imported
	if err != nil {
		t.Fatal(err)
	}
	noJoin, err := tokens.New(t.Context(), bare, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    *tokens.Service
		alg  string
		want error
		says string
	}{
		{"no join key", noJoin, tokens.HS256, keystore.ErrNoActiveKey, "no active join key"},
		{"no signing key", s, tokens.ES256, keyring.ErrNoKey, "ES256 tokens need an unretired signing key pair (EC)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: tc.alg})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "keyward ") {
				t.Fatalf("got %v; want %v saying %q and no command", err, tc.want, tc.says)
			}
		})
	}
}
