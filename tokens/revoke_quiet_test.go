package tokens_test

import (
	"testing"
	"time"

	"github.com/keyward/keyward/tokens"
)

// Anyone holding an old token may ask to revoke it again and again, or
// reuse a spent refresh token: the database must not grow by a row each
// time. The first revocation and the first reuse are recorded, once.
func TestRepeatedRevocationsWriteNothing(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) {
		s, node, clk := service(t, dsn(t))
		ctx := t.Context()
		store := node.Store()
		rows := func() (revocations, audit int) {
			t.Helper()
			log, err := store.RevocationsSince(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			entries, err := store.AuditLog(ctx, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			return len(log), len(entries)
		}
		revoked := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Hour})
		if err := s.RevokeToken(ctx, revoked.AccessToken); err != nil {
			t.Fatal(err)
		}
		short := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Minute})
		grant := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Hour, Refreshable: true})
		if _, err := s.Refresh(ctx, grant.RefreshToken, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Refresh(ctx, grant.RefreshToken, nil); err == nil {
			t.Fatal("a spent refresh token refreshed")
		}
		clk.Add(2 * time.Minute) // short has expired
		revs, audits := rows()
		for range 30 {
			for _, tok := range []string{revoked.AccessToken, short.AccessToken} {
				if err := s.RevokeToken(ctx, tok); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Revoke(ctx, revoked.TokenID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Refresh(ctx, grant.RefreshToken, nil); err == nil {
				t.Fatal("a spent refresh token refreshed")
			}
		}
		if r, a := rows(); r != revs || a != audits {
			t.Fatalf("90 revocations of a revoked or expired token and 30 reuses of a spent refresh token wrote %d revocation and %d audit rows, want none", r-revs, a-audits)
		}
		var families int
		entries, _ := store.AuditLog(ctx, 1<<20)
		for _, e := range entries {
			if e.Action == "token.revoke-family" {
				families++
			}
		}
		if families != 1 {
			t.Fatalf("the reused grant's revocation recorded %d times, want once", families)
		}
		// A live token is still revoked, and recorded.
		live := issue(t, s, tokens.Request{Subject: "svc", ExpiresIn: time.Hour})
		if err := s.RevokeToken(ctx, live.AccessToken); err != nil {
			t.Fatal(err)
		}
		if r, _ := rows(); r != revs+1 {
			t.Fatalf("revoking a live token wrote %d revocation rows, want 1", r-revs)
		}
		if _, err := s.Verify(ctx, live.AccessToken, tokens.VerifyOptions{}); err == nil {
			t.Fatal("a revoked token verifies")
		}
	})
}
