package tokens_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// Key pairs of every type sign side by side, each for its algorithms, and
// one generated a moment ago signs the very next request.
func TestSigningKeysSideBySide(t *testing.T) {
	s, node, _ := service(t, dbtest.SQLite(t))
	ring := node.Ring()
	kinds := map[hsm.KeyPairType][]string{hsm.ECP256: {tokens.ES256}, hsm.RSA2048: {tokens.RS256, tokens.PS256}, hsm.Ed25519: {tokens.EdDSA}}
	kidOf := func(token string) string {
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
			if kid := strings.TrimSuffix(kidOf(iss.AccessToken), "/PS256"); kid != "signing/v"+itoa(e.Version) {
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
			if kid := strings.TrimSuffix(kidOf(iss.AccessToken), "/PS256"); kid != "signing/v"+itoa(v) {
				t.Errorf("%s signed by %s, want signing/v%d", alg, kid, v)
			}
			if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
				t.Errorf("%s: %v", alg, err)
			}
		}
	}
}
