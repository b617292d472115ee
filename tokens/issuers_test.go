package tokens_test

import (
	"errors"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// A server signs with its public URL; every node of the database accepts
// its tokens (and the CLI's, keyward@<instance id>), and no other issuer.
func TestIssuersOfACluster(t *testing.T) {
	dsn := dbtest.SQLite(t)
	a, _, _ := service(t, dsn)
	b, _, _ := service(t, dsn)
	cliToken := issue(t, b, tokens.Request{Subject: "cli"}) // before any URL: keyward@<id>
	if err := a.UseIssuer(t.Context(), "https://a.example"); err != nil {
		t.Fatal(err)
	}
	if a.Issuer() != "https://a.example" || a.Audience() != b.Issuer() {
		t.Fatalf("issuer %q, audience %q (b's issuer %q)", a.Issuer(), a.Audience(), b.Issuer())
	}
	fromA := issue(t, a, tokens.Request{Subject: "svc"})
	for name, s := range map[string]*tokens.Service{"a": a, "b": b} {
		c, err := s.Verify(t.Context(), fromA.AccessToken, tokens.VerifyOptions{})
		if err != nil || c.Issuer != "https://a.example" {
			t.Errorf("%s verifies a's token: %v %v", name, c, err)
		}
		if _, err := s.Verify(t.Context(), cliToken.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Errorf("%s verifies the CLI's token: %v", name, err)
		}
	}
	// A token signed with the cluster's key but another issuer is refused.
	other, _, _ := service(t, dbtest.SQLite(t))
	if err := other.UseIssuer(t.Context(), "https://elsewhere.example"); err != nil {
		t.Fatal(err)
	}
	foreign := issue(t, other, tokens.Request{Subject: "svc", Audience: []string{b.Audience()}})
	if _, err := b.Verify(t.Context(), foreign.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrIssuer) {
		t.Fatalf("a token of another issuer: %v", err)
	}
}
