package keystore_test

import (
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
)

// Verifiers follow the revocation log by seq, so a revocation must never
// become visible after one with a higher seq: while one revoking
// transaction is open, another waits for it (on PostgreSQL an advisory
// lock; SQLite has one writer), and the log reads in commit order.
func TestRevocationLogCommitsInSeqOrder(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		s, err := keystore.Open(t.Context(), newDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		now := time.Now()
		for _, id := range []string{"a", "b"} {
			if err := s.RecordIssue(t.Context(), keystore.TokenRecord{ID: id, Kind: "access", Subject: "s", Issued: now, Expires: now.Add(time.Hour), Family: id}, nil); err != nil {
				t.Fatal(err)
			}
		}
		commit, err := s.HoldRevocation(t.Context(), "a", now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { commit() }) // a failed test must not leave it open
		done := make(chan error, 1)
		go func() { done <- s.RevokeToken(t.Context(), "b", now) }()
		select {
		case err := <-done:
			t.Fatalf("revoking b finished (%v) while a's revocation was still open: b's entry could be read before a's", err)
		case <-time.After(300 * time.Millisecond):
		}
		if log, err := s.RevocationsSince(t.Context(), 0); err != nil || len(log) != 0 {
			t.Fatalf("log before any commit: %v %v", log, err)
		}
		if err := commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		log, err := s.RevocationsSince(t.Context(), 0)
		if err != nil || len(log) != 2 || log[0].TokenID != "a" || log[1].TokenID != "b" || log[0].Seq >= log[1].Seq {
			t.Fatalf("log: %+v %v", log, err)
		}
	})
}
