package keystore_test

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// tokenID is a UUIDv7-shaped id issued at t (as tokens.newID makes).
func tokenID(t time.Time, n int) string {
	m := uint64(t.UnixMilli())
	return fmt.Sprintf("%08x-%04x-7000-8000-%012x", m>>16, m&0xffff, n)
}

// pruneCase is what seedPrunable wrote: the rows a prune at now must
// delete, per table.
type pruneCase struct {
	now  time.Time
	want keystore.Pruned
}

// seedPrunable writes rows on both sides of each default retention, old
// ones more than a batch, in one transaction.
func seedPrunable(t *testing.T, dsn string, old int) pruneCase {
	t.Helper()
	now := time.Now()
	day := 24 * time.Hour
	db := rawDB(t, dsn)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	n := 0
	token := func(issued, expires time.Time) {
		n++
		id := tokenID(issued, n)
		exec(t, tx, dsn, `INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, family) VALUES (?, 'access', 's', '', 'a', ?, ?, ?)`,
			id, issued.UnixMilli(), expires.UnixMilli(), id)
		exec(t, tx, dsn, `INSERT INTO refresh_tokens (hash, family, access_id, subject, scope, audience, alg, access_ttl, issued_at, expires_at) VALUES (?, ?, ?, 's', '', 'a', 'HS256', 1, ?, ?)`,
			[]byte(id), id, id, issued.UnixMilli(), expires.UnixMilli())
		exec(t, tx, dsn, `INSERT INTO revocations (token_id, expires_at, at) VALUES (?, ?, ?)`, id, expires.UnixMilli(), issued.UnixMilli())
	}
	audit := func(at time.Time) {
		exec(t, tx, dsn, `INSERT INTO audit (at, actor, action, subject) VALUES (?, 'test', 'test', 'x')`, at.UnixMilli())
	}
	for range old {
		token(now.Add(-40*day), now.Add(-35*day)) // all three go
		audit(now.Add(-91 * day))
	}
	token(now.Add(-10*day), now.Add(-25*time.Hour))     // revocation goes, the records stay
	token(now.Add(-10*day), now.Add(-23*time.Hour))     // all stay
	token(now.Add(-400*day), now.Add(-20*day))          // long-lived, expired 20 days ago: its revocation goes
	token(now.Add(-400*day), now.Add(day))              // long-lived, live: all stay
	token(now.Add(-40*day), now.Add(-30*day-time.Hour)) // just past 30 days: all go
	audit(now.Add(-89 * day))
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	o := int64(old)
	return pruneCase{now: now, want: keystore.Pruned{Revocations: o + 3, Tokens: o + 1, RefreshTokens: o + 1, Audit: o}}
}

func exec(t *testing.T, tx *sql.Tx, dsn, query string, args ...any) {
	t.Helper()
	if _, err := tx.Exec(q(dsn, query), args...); err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, db *sql.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPruneDeletesOnlyWhatIsPastRetention(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		s, err := keystore.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		audits := count(t, rawDB(t, dsn), "audit") // the store's own entries
		c := seedPrunable(t, dsn, 2*keystore.PruneBatch+10)
		got, err := s.Prune(t.Context(), keystore.PruneOptions{}, c.now)
		if err != nil || got != c.want {
			t.Fatalf("prune: %+v %v, want %+v", got, err, c.want)
		}
		db := rawDB(t, dsn)
		for table, want := range map[string]int64{"revocations": 2, "tokens": 4, "refresh_tokens": 4, "audit": audits + 1} {
			if n := count(t, db, table); n != want {
				t.Errorf("%s: %d rows left, want %d", table, n, want)
			}
		}
		if again, err := s.Prune(t.Context(), keystore.PruneOptions{}, c.now); err != nil || again != (keystore.Pruned{}) {
			t.Fatalf("second prune: %+v %v, want nothing", again, err)
		}
		// Negative retention keeps everything.
		never := keystore.PruneOptions{Revocations: -1, Tokens: -1, Audit: -1}
		if got, err := s.Prune(t.Context(), never, c.now.Add(1000*24*time.Hour)); err != nil || got != (keystore.Pruned{}) {
			t.Fatalf("prune keeping everything: %+v %v", got, err)
		}
	})
}

// Two nodes prune one PostgreSQL database at once: neither fails, and
// between them they delete each row once.
func TestPruneTwoNodesAtOnce(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		var stores [2]*keystore.Store
		for i := range stores {
			s, err := keystore.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stores[i] = s
		}
		c := seedPrunable(t, dsn, 5*keystore.PruneBatch)
		var got [2]keystore.Pruned
		var errs [2]error
		var wg sync.WaitGroup
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = s.Prune(t.Context(), keystore.PruneOptions{}, c.now)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("prunes at once: %v, %v", errs[0], errs[1])
		}
		sum := keystore.Pruned{Revocations: got[0].Revocations + got[1].Revocations, Tokens: got[0].Tokens + got[1].Tokens,
			RefreshTokens: got[0].RefreshTokens + got[1].RefreshTokens, Audit: got[0].Audit + got[1].Audit}
		if sum != c.want {
			t.Fatalf("two prunes deleted %+v and %+v, together %+v, want %+v", got[0], got[1], sum, c.want)
		}
	})
}

// A migration missing from the applied versions (merged later with a
// lower number than one applied) is applied at the next open.
func TestMigrationsApplyAcrossGaps(t *testing.T) {
	dsn := dbtest.SQLite(t)
	s, err := keystore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, dsn)
	for _, stmt := range []string{`DROP INDEX revocations_expires`, `DELETE FROM schema_version WHERE version = 5`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	s, err = keystore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = 'revocations_expires'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 5 not applied again: %d %v", n, err)
	}
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("schema version %d: %v", v, err)
	}
}
