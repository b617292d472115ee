package keystore

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// SeedRecords stores count records of size bytes named seed-000000… under
// the active master key, sealed in the device like Put but inserted in
// large transactions: benchmarks need 100,000 of them quickly.
func SeedRecords(ctx context.Context, n *Vault, count, size int) error {
	v, k, err := n.activeMaster()
	if err != nil {
		return err
	}
	value := make([]byte, size)
	const batch = 2000
	for start := 0; start < count; start += batch {
		end := min(start+batch, count)
		blobs := make([][]byte, end-start)
		var wg sync.WaitGroup
		errs := make(chan error, runtime.GOMAXPROCS(0))
		per := (len(blobs) + cap(errs) - 1) / cap(errs)
		for w := 0; w < len(blobs); w += per {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					b, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, seedName(start+i), value)
					if err != nil {
						errs <- err
						return
					}
					blobs[i] = b
				}
			}(w, min(w+per, len(blobs)))
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		tx, err := n.store.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, n.store.q(`INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`))
		if err != nil {
			tx.Rollback()
			return err
		}
		for i, b := range blobs {
			if _, err := st.ExecContext(ctx, seedName(start+i), v, b, now(), now()); err != nil {
				tx.Rollback()
				return err
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return n.store.countEncryptions(ctx, "master", v, count)
}

func seedName(i int) string { return fmt.Sprintf("seed-%06d", i) }

// HoldRevocation revokes token id in a transaction it leaves open until
// commit is called: the test of the revocation log's order.
func (s *Store) HoldRevocation(ctx context.Context, id string, at time.Time) (commit func() error, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := revokeIDs(ctx, tx, s, at, id); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx.Commit, nil
}

// SeedTokens inserts count token records, record(i) for each, in one
// transaction of multi-row INSERTs (not the issue path's group commit):
// listing tests and benchmarks need a million quickly.
func (s *Store) SeedTokens(ctx context.Context, count int, record func(i int) TokenRecord) error {
	const rows = 100 // 900 parameters a statement: under both databases' limits
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	values := strings.TrimPrefix(insertTokenSQL, "INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, family, description) VALUES ")
	for start := 0; start < count; start += rows {
		n := min(rows, count-start)
		args := make([]any, 0, 9*n)
		for i := start; i < start+n; i++ {
			args = append(args, tokenArgs(record(i))...)
		}
		q := `INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, family, description) VALUES ` +
			strings.Repeat(values+", ", n-1) + values
		if _, err := tx.ExecContext(ctx, s.q(q), args...); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if s.postgres {
		// What autovacuum does soon after a load this size: without
		// statistics the planner takes the table for empty and sorts.
		_, err = s.db.ExecContext(ctx, `ANALYZE tokens`)
	}
	return err
}

// ExplainTokens is the database's query plan for the page f asks for
// (PostgreSQL's as run, with its timings).
func (s *Store) ExplainTokens(ctx context.Context, f TokenFilter, now time.Time) (string, error) {
	q, args, err := f.query(now)
	if err != nil {
		return "", err
	}
	explain := `EXPLAIN QUERY PLAN `
	if s.postgres {
		explain = `EXPLAIN ANALYZE `
	}
	rows, err := s.db.QueryContext(ctx, s.q(explain+q), args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		dest := []any{&id, &parent, &unused, &detail}
		if s.postgres {
			dest = dest[3:]
		}
		if err := rows.Scan(dest...); err != nil {
			return "", err
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "\n"), rows.Err()
}

// RewrapRace does what one batch of a SQLite rewrap does, with between
// called after the records were read and re-encrypted and before they are
// written back, and returns how many were written.
func RewrapRace(ctx context.Context, vt *Vault, between func()) (int, error) {
	v, k, err := vt.activeMaster()
	if err != nil {
		return 0, err
	}
	items, err := vt.store.readOlder(ctx, vt.store.db, "", v, 1000, "")
	if err != nil {
		return 0, err
	}
	if err := vt.rewrapItems(ctx, v, k, items); err != nil {
		return 0, err
	}
	between()
	return vt.store.writeRewrapped(ctx, v, items)
}

// WALAutocheckpoint is the wal_autocheckpoint of one of s's connections.
func WALAutocheckpoint(ctx context.Context, s *Store) (int, error) {
	var pages int
	err := s.db.DB.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages)
	return pages, err
}
