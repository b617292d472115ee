package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Retention defaults (PruneOptions): how long past its use a row stays.
const (
	// DefaultRevocationRetention keeps a revocation a day past its
	// token's expiry: verifiers drop it an hour or so after (leeway plus
	// an hour for clocks), and a day covers clocks much further apart.
	DefaultRevocationRetention = 24 * time.Hour
	// DefaultTokenRetention keeps token records and refresh tokens 30
	// days past their expiry, for listing and investigation.
	DefaultTokenRetention = 30 * 24 * time.Hour
	// DefaultAuditRetention keeps audit entries 90 days.
	DefaultAuditRetention = 90 * 24 * time.Hour
)

// PruneBatch is how many rows one DELETE removes: each is a short
// transaction, so a prune never holds SQLite's write lock or
// PostgreSQL's row locks long.
const PruneBatch = 1000

// PruneOptions say how long rows stay; zero takes the default, a
// negative value keeps them for ever.
type PruneOptions struct {
	Revocations time.Duration // past the revoked token's expiry
	Tokens      time.Duration // token records and refresh tokens, past their expiry
	Audit       time.Duration // audit entries, past their time
}

// Pruned counts the rows a prune deleted.
type Pruned struct {
	Revocations, Tokens, RefreshTokens, Audit int64
	// Busy: another node was pruning, and this one left the rest to it.
	Busy bool
}

// pruneLock lets one node of a cluster prune at a time (7261 orders
// migrations, 7262 the revocation log).
const pruneLock = "7263"

// Prune deletes revocations, token records, refresh tokens and audit
// entries past their retention at now, in batches of PruneBatch. It is
// idempotent and safe on several nodes at once: on PostgreSQL a batch
// that finds another node pruning stops, and deleting a row twice
// deletes it once.
func (s *Store) Prune(ctx context.Context, o PruneOptions, now time.Time) (Pruned, error) {
	var p Pruned
	steps := []struct {
		keep  time.Duration
		def   time.Duration
		count *int64
		byID  bool // the query takes idBefore(cut) first
		query string
	}{
		{o.Revocations, DefaultRevocationRetention, &p.Revocations, false,
			`DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations WHERE expires_at < ? LIMIT 1000)`},
		// Refresh tokens and token records are read in id order up to the
		// cut (ids begin with their issue time, UUIDv7): a token issued
		// later cannot have expired before it, and the primary key (the
		// access_id index) bounds the scan.
		{o.Tokens, DefaultTokenRetention, &p.RefreshTokens, true,
			`DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE access_id < ? AND expires_at < ? LIMIT 1000)`},
		{o.Tokens, DefaultTokenRetention, &p.Tokens, true,
			`DELETE FROM tokens WHERE id IN (SELECT id FROM tokens WHERE id < ? AND expires_at < ? LIMIT 1000)`},
		// The oldest entries first, by id; an entry out of time order
		// (a node's clock behind) holds the rest back until it is due.
		{o.Audit, DefaultAuditRetention, &p.Audit, false,
			`DELETE FROM audit WHERE id IN (SELECT id FROM audit ORDER BY id LIMIT 1000) AND at < ?`},
	}
	for _, st := range steps {
		keep := st.keep
		if keep == 0 {
			keep = st.def
		}
		if keep < 0 {
			continue
		}
		cut := now.Add(-keep)
		args := []any{ms(cut)}
		if st.byID {
			args = []any{idBefore(cut), ms(cut)}
		}
		busy, err := s.pruneAll(ctx, st.query, args, st.count)
		if err != nil || busy {
			p.Busy = busy
			return p, err
		}
	}
	return p, nil
}

// idBefore is the smallest token id issued at t (UUIDv7: its first 48
// bits are the Unix time in ms): every id below it was issued earlier.
func idBefore(t time.Time) string {
	m := uint64(t.UnixMilli())
	return fmt.Sprintf("%08x-%04x", m>>16, m&0xffff)
}

// pruneAll runs query batch after batch until one deletes less than a
// whole batch, or another node holds the prune lock (busy: that node
// goes on to the end, as it never found this one holding it).
func (s *Store) pruneAll(ctx context.Context, query string, args []any, count *int64) (busy bool, err error) {
	for {
		n, busy, err := s.pruneBatch(ctx, query, args)
		*count += n
		if err != nil {
			return false, s.dbErr("prune", err)
		}
		if busy || n < PruneBatch {
			return busy, nil
		}
	}
}

func (s *Store) pruneBatch(ctx context.Context, query string, args []any) (n int64, busy bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	if s.postgres {
		var got bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(`+pruneLock+`)`).Scan(&got); err != nil {
			return 0, false, err
		}
		if !got {
			return 0, true, nil // another node is pruning
		}
	}
	var res sql.Result
	if res, err = tx.ExecContext(ctx, s.q(query), args...); err != nil {
		return 0, false, err
	}
	n, _ = res.RowsAffected()
	return n, false, tx.Commit()
}
