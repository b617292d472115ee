package tokens_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

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
