package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	_ "github.com/mattn/go-sqlite3" // keystore's driver, so the file is what keyward writes
)

// loadBatch rows go in one transaction: a commit per row would make the
// load take longer than the benchmark.
const loadBatch = 50_000

// loaded says what load put in the database.
type loaded struct {
	tokens, revoked, expired int
	took                     time.Duration
}

// load writes n token records straight into the SQLite file at path (made
// by keyward, so the schema is there) and revokes a tenth of them: half
// of those expired three days ago, half are live. The records carry no
// signature, only what listing and the revocation log read. Tokens go in
// id order (UUIDv7, time first), as keyward appends them.
func load(path string, n int, now time.Time) (loaded, error) {
	start := time.Now()
	// The file is thrown away after the run: no fsync while loading.
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_synchronous=OFF")
	if err != nil {
		return loaded{}, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	// The first n/20 tokens were revoked and then expired three days ago;
	// as many of the rest, spread evenly, are revoked and still live.
	nExpired := n / 20
	step := max(1, (n-nExpired)/max(1, n/10-nExpired))
	expiredAt := now.Add(-72 * time.Hour)
	liveFrom := now.Add(-48 * time.Hour)
	out := loaded{tokens: n}
	tx, tok, rev, err := begin(db)
	if err != nil {
		return out, err
	}
	for i := 0; i < n; i++ {
		var issued, expires, revoked time.Time
		if i < nExpired {
			issued = expiredAt.Add(-time.Hour + time.Duration(i)*time.Millisecond)
			expires = issued.Add(time.Hour)
			revoked = issued.Add(30 * time.Minute)
			out.expired++
		} else {
			issued = liveFrom.Add(time.Duration(i) * time.Millisecond)
			expires = issued.Add(30 * 24 * time.Hour)
			if (i-nExpired)%step == 0 && out.revoked < n/10 {
				revoked = now.Add(-24 * time.Hour)
			}
		}
		id := uuid7(issued)
		var revokedAt any // NULL unless revoked
		if !revoked.IsZero() {
			revokedAt = revoked.UnixMilli()
		}
		// Subjects repeat, as a few thousand services holding many tokens.
		if _, err := tok.Exec(id, "access", fmt.Sprintf("svc-%04d", i%5000), "read", "",
			issued.UnixMilli(), expires.UnixMilli(), revokedAt, id, ""); err != nil {
			tx.Rollback()
			return out, fmt.Errorf("insert token: %w", err)
		}
		if revokedAt != nil {
			if _, err := rev.Exec(id, expires.UnixMilli(), revoked.UnixMilli()); err != nil {
				tx.Rollback()
				return out, fmt.Errorf("insert revocation: %w", err)
			}
			out.revoked++
		}
		if (i+1)%loadBatch == 0 || i == n-1 {
			if err := tx.Commit(); err != nil {
				return out, err
			}
			if i == n-1 {
				break
			}
			if tx, tok, rev, err = begin(db); err != nil {
				return out, err
			}
		}
	}
	if n == 0 {
		tx.Rollback()
	}
	out.took = time.Since(start)
	return out, nil
}

// begin opens a load transaction with its two prepared inserts (closed
// with the transaction).
func begin(db *sql.DB) (*sql.Tx, *sql.Stmt, *sql.Stmt, error) {
	tx, err := db.Begin()
	if err != nil {
		return nil, nil, nil, err
	}
	tok, err := tx.Prepare(`INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, revoked_at, family, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tx.Rollback()
		return nil, nil, nil, err
	}
	rev, err := tx.Prepare(`INSERT INTO revocations (token_id, expires_at, at) VALUES (?, ?, ?)`)
	if err != nil {
		tx.Rollback()
		return nil, nil, nil, err
	}
	return tx, tok, rev, nil
}

// uuid7 is a version 7 UUID as tokens/issue.go's newID makes them: 48
// bits of Unix milliseconds, then random bits.
func uuid7(t time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
