package tokens_test

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// Key pairs of every type sign side by side, each for its algorithms, and
// one generated a moment ago signs the very next request.
func TestSigningKeysSideBySide(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	ring := node.Ring()
	kinds := map[hsm.KeyPairType][]string{hsm.ECP256: {tokens.ES256}, hsm.RSA2048: {tokens.RS256, tokens.PS256}, hsm.Ed25519: {tokens.EdDSA}}
	versions := map[hsm.KeyPairType]int{}
	for _, kind := range []hsm.KeyPairType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		if err := ring.Token().Require(kind.Op()); err != nil {
			t.Logf("%s: %v", kind, err)
			continue
		}
		// The service has listed the device (a token signed just now):
		// the new key pair is not in its listing yet.
		if _, err := s.Create(t.Context(), tokens.Request{Subject: "svc"}); err != nil {
			t.Fatal(err)
		}
		e, err := ring.GenerateSigning(t.Context(), kind, hsm.PolicyLocal)
		if err != nil {
			t.Fatal(err)
		}
		versions[kind] = e.Version
		for _, alg := range kinds[kind] {
			iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: alg})
			if err != nil {
				t.Fatalf("%s right after key generate --type %s: %v", alg, kind, err)
			}
			if kid := strings.TrimSuffix(kidOf(t, iss.AccessToken), "/PS256"); kid != "signing/v"+itoa(e.Version) {
				t.Errorf("%s signed by %s, want signing/v%d", alg, kid, e.Version)
			}
		}
	}
	// Every type still signs with its own key pair, not the newest.
	for kind, v := range versions {
		for _, alg := range kinds[kind] {
			iss, err := s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: alg})
			if err != nil {
				t.Fatalf("%s beside key pairs of other types: %v", alg, err)
			}
			if kid := strings.TrimSuffix(kidOf(t, iss.AccessToken), "/PS256"); kid != "signing/v"+itoa(v) {
				t.Errorf("%s signed by %s, want signing/v%d", alg, kid, v)
			}
			if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
				t.Errorf("%s: %v", alg, err)
			}
		}
	}
}

// A signing key pair that signs no more (superseded or retired) stays in
// the JWKS, and its tokens verify, until the last token it signed has
// expired; one that signed nothing leaves the JWKS at once. Retiring the
// newest hands signing back to the newest unretired one, and destroying a
// key pair asks for its retirement first.
func TestRetiredSigningKeyStaysPublished(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) { retiredSigningKeyStaysPublished(t, dsn(t)) })
}

func retiredSigningKeyStaysPublished(t *testing.T, dsn string) {
	s, node, _ := service(t, dsn)
	ctx := t.Context()
	ring := node.Ring()
	gen := func() int {
		t.Helper()
		e, err := ring.GenerateSigning(ctx, hsm.ECP256, hsm.PolicyLocal)
		if err != nil {
			t.Fatal(err)
		}
		return e.Version
	}
	published := func() map[string]bool {
		t.Helper()
		set, err := s.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, k := range set.Keys {
			out[k.Kid] = true
		}
		return out
	}
	unused, used := gen(), gen()
	old := issue(t, s, tokens.Request{Subject: "svc", Alg: tokens.ES256, ExpiresIn: 10 * time.Minute})
	states, err := node.Store().SigningStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := states[used].SignedUntil; b.Before(old.ExpiresAt) || b.After(old.ExpiresAt.Add(2*time.Hour)) {
		t.Fatalf("signing/v%d's bound is %v for a token expiring at %v", used, b, old.ExpiresAt)
	}
	newest := gen()
	if got := published(); got["signing/v"+itoa(unused)] || !got["signing/v"+itoa(used)] || !got["signing/v"+itoa(newest)] {
		t.Fatalf("JWKS after a third key pair: %v (v%d signed nothing, v%d signed a live token, v%d signs)", got, unused, used, newest)
	}
	if err := node.Retire(ctx, keyring.Signing, newest); err != nil {
		t.Fatal(err)
	}
	// The newest unretired key pair signs again; the retired one, which
	// signed nothing, leaves the JWKS.
	next := issue(t, s, tokens.Request{Subject: "svc", Alg: tokens.ES256})
	if kid := kidOf(t, next.AccessToken); kid != "signing/v"+itoa(used) {
		t.Fatalf("after retiring v%d, ES256 is signed by %s, want signing/v%d", newest, kid, used)
	}
	if got := published(); got["signing/v"+itoa(newest)] || !got["signing/v"+itoa(used)] {
		t.Fatalf("JWKS after retiring v%d: %v", newest, got)
	}
	for _, iss := range []tokens.Issued{old, next} {
		if _, err := s.Verify(ctx, iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatalf("a token of a key pair that no longer signs: %v", err)
		}
	}
	if err := node.CheckDestroy(ctx, keyring.Signing, used); !errors.Is(err, keystore.ErrKeyInUse) {
		t.Fatalf("destroying unretired signing/v%d: %v, want ErrKeyInUse", used, err)
	}
	if err := node.Retire(ctx, keyring.Signing, used); err != nil {
		t.Fatal(err)
	}
	if live, err := node.SigningLiveUntil(ctx, used); err != nil || live.Before(old.ExpiresAt) {
		t.Fatalf("retired signing/v%d: live until %v (%v), want ≥ %v", used, live, err, old.ExpiresAt)
	}
	if _, err := s.Create(ctx, tokens.Request{Subject: "svc", Alg: tokens.ES256}); err != nil {
		t.Fatalf("v%d is unretired and should sign: %v", unused, err)
	}
	if _, err := node.Destroy(ctx, keyring.Signing, used); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(ctx, old.AccessToken, tokens.VerifyOptions{}); err == nil {
		t.Fatal("a token of a destroyed key pair still verifies")
	}
}

// kidOf is the kid in a token's header.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	seg, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	var hdr struct{ Kid string }
	if err == nil {
		err = json.Unmarshal(raw, &hdr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// ES256 tokens are signed with s in its low form, and (r, n−s), which
// verifies as ECDSA, is refused: a token has one text.
func TestES256SignaturesAreLowS(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	if _, err := node.Ring().GenerateSigning(t.Context(), hsm.ECP256, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	half := new(big.Int).Rsh(n, 1)
	for range 40 {
		iss := issue(t, s, tokens.Request{Subject: "svc", Alg: tokens.ES256})
		head, sig64, _ := strings.Cut(iss.AccessToken[strings.Index(iss.AccessToken, ".")+1:], ".")
		sig, err := base64.RawURLEncoding.DecodeString(sig64)
		if err != nil || len(sig) != 64 {
			t.Fatalf("signature: %v, %d bytes", err, len(sig))
		}
		sv := new(big.Int).SetBytes(sig[32:])
		if sv.Cmp(half) > 0 {
			t.Fatal("keyward signed with a high s")
		}
		new(big.Int).Sub(n, sv).FillBytes(sig[32:])
		twin := iss.AccessToken[:strings.Index(iss.AccessToken, ".")+1] + head + "." + base64.RawURLEncoding.EncodeToString(sig)
		if _, err := s.Verify(t.Context(), twin, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("the (r, n-s) twin of a token: %v, want ErrInvalid", err)
		}
		if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}
