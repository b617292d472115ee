package keystore_test

import (
	"errors"
	"fmt"
	"sync"
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

// The group commit writes what concurrent RecordIssue calls queued in one
// go (on PostgreSQL one statement when no refresh token rides along): each
// token committed is readable, and a record that cannot be written (its id
// taken) fails alone.
func TestGroupCommitWritesEachTokenOnce(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		s, err := keystore.Open(t.Context(), newDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		now := time.Now().Truncate(time.Millisecond)
		rec := func(id string) keystore.TokenRecord {
			return keystore.TokenRecord{ID: id, Kind: "access", Subject: "s", Issued: now, Expires: now.Add(time.Hour), Family: id}
		}
		if err := s.RecordIssue(t.Context(), rec("taken"), nil); err != nil {
			t.Fatal(err)
		}
		const n = 200
		errs := make([]error, n+1)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var refresh *keystore.RefreshRecord
				id := fmt.Sprintf("tok-%03d", i)
				if i%10 == 0 {
					refresh = &keystore.RefreshRecord{Hash: []byte(id), Family: id, AccessID: id, Subject: "s", Issued: now, Expires: now.Add(time.Hour)}
				}
				errs[i] = s.RecordIssue(t.Context(), rec(id), refresh)
			})
		}
		wg.Go(func() { errs[n] = s.RecordIssue(t.Context(), rec("taken"), nil) })
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("token %d: %v", i, errs[i])
			}
			if got, err := s.Token(t.Context(), fmt.Sprintf("tok-%03d", i)); err != nil || got.Subject != "s" || !got.Expires.Equal(now.Add(time.Hour)) {
				t.Fatalf("token %d reads %+v, %v", i, got, err)
			}
		}
		if !errors.Is(errs[n], keystore.ErrDatabase) {
			t.Fatalf("a second token with a taken id: %v, want a database error", errs[n])
		}
	})
}
