package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// revokeIDs marks ids revoked and appends them to the revocation log that
// every node's verifier follows.
func revokeIDs(ctx context.Context, tx *sql.Tx, s *Store, now time.Time, ids ...string) error {
	if len(ids) > 0 && s.postgres {
		// Readers follow the log by seq. PostgreSQL hands out seqs when
		// rows are inserted, not when they commit: without this lock, seq
		// 11 could commit and be read before seq 10, and a reader past 11
		// would never see 10. Held to the commit, it makes seq order the
		// commit order. (SQLite serializes writers anyway.)
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+revocationLogLock+`)`); err != nil {
			return err
		}
	}
	for _, id := range ids {
		var expires int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT expires_at FROM tokens WHERE id = ?`), id).Scan(&expires)
		if isNoRows(err) {
			continue // pruned (expired long ago): nothing left to revoke
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), ms(now), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO revocations (token_id, expires_at, at) VALUES (?, ?, ?)`), id, expires, ms(now)); err != nil {
			return err
		}
	}
	return nil
}

// revocationLogLock is the advisory lock that orders the revocation log
// (7261 orders migrations).
const revocationLogLock = "7262"

// RevokeToken revokes token id and the refresh token issued with it (the
// rest of a refresh grant's family stays). A token already revoked, or
// expired with no live refresh token, is left as it is: anyone holding
// an old token may ask again and again, and no row is written for it.
func (s *Store) RevokeToken(ctx context.Context, id string, now time.Time) error {
	t, err := s.Token(ctx, id)
	if err != nil {
		return err
	}
	if t.Revoked != nil {
		return nil
	}
	expired := !t.Expires.After(now)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("revoke token", err)
	}
	defer tx.Rollback()
	if !expired {
		if err := revokeIDs(ctx, tx, s, now, id); err != nil {
			return s.dbErr("revoke token", err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE access_id = ? AND revoked_at IS NULL AND used_at IS NULL AND expires_at > ?`), ms(now), id, ms(now))
	if err != nil {
		return s.dbErr("revoke token", err)
	}
	if n, _ := res.RowsAffected(); expired && n == 0 {
		return nil // nothing it names can be used: nothing to write
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`), ms(now), s.actor, "token.revoke", id, ""); err != nil {
		return s.dbErr("revoke token", err)
	}
	return s.dbErr("revoke token", tx.Commit())
}

// RevokeFamily revokes every token and refresh token of a family.
func (s *Store) RevokeFamily(ctx context.Context, family string, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("revoke family", err)
	}
	defer tx.Rollback()
	// The grant's first token (id = family), then the ones its refreshes
	// made (the partial index tokens_family).
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM tokens WHERE id = ? AND revoked_at IS NULL
		UNION SELECT id FROM tokens WHERE family = ? AND family <> id AND revoked_at IS NULL`), family, family)
	if err != nil {
		return s.dbErr("revoke family", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return s.dbErr("revoke family", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return s.dbErr("revoke family", err)
	}
	rows.Close()
	if err := revokeIDs(ctx, tx, s, now, ids...); err != nil {
		return s.dbErr("revoke family", err)
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL`), ms(now), family)
	if err != nil {
		return s.dbErr("revoke family", err)
	}
	if n, _ := res.RowsAffected(); len(ids) == 0 && n == 0 {
		// Revoked before (a spent refresh token used again and again):
		// recorded once, the first time.
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`), ms(now), s.actor, "token.revoke-family", family, fmt.Sprintf("%d tokens", len(ids))); err != nil {
		return s.dbErr("revoke family", err)
	}
	return s.dbErr("revoke family", tx.Commit())
}

// RevokeRefresh revokes the whole grant of the refresh token hashed as
// hash: every access token and refresh token of its family.
func (s *Store) RevokeRefresh(ctx context.Context, hash []byte, now time.Time) error {
	var family string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT family FROM refresh_tokens WHERE hash = ?`), hash).Scan(&family)
	if isNoRows(err) {
		return fmt.Errorf("%w: this refresh token was never issued here", ErrTokenUnknown)
	}
	if err != nil {
		return s.dbErr("revoke refresh token", err)
	}
	return s.RevokeFamily(ctx, family, now)
}

// Revocation is an entry of the revocation log.
type Revocation struct {
	Seq     int64
	TokenID string
	Expires time.Time
}

// LiveRevocations returns the revocation log's entries of tokens that
// expire after after, and the log's last seq, read before them: a reader
// follows the log from there with RevocationsSince (an entry written
// meanwhile may come twice, never not at all).
func (s *Store) LiveRevocations(ctx context.Context, after time.Time) (last int64, live []Revocation, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM revocations`).Scan(&last)
	if err != nil {
		return 0, nil, s.dbErr("read revocations", err)
	}
	live, err = s.readRevocations(ctx, `SELECT seq, token_id, expires_at FROM revocations WHERE expires_at > ?`, ms(after))
	return last, live, err
}

// RevocationsSince returns the revocation log after seq, for verifiers to
// follow (on this node and every other).
func (s *Store) RevocationsSince(ctx context.Context, seq int64) ([]Revocation, error) {
	return s.readRevocations(ctx, `SELECT seq, token_id, expires_at FROM revocations WHERE seq > ? ORDER BY seq`, seq)
}

func (s *Store) readRevocations(ctx context.Context, query string, arg int64) ([]Revocation, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), arg)
	if err != nil {
		return nil, s.dbErr("read revocations", err)
	}
	defer rows.Close()
	var out []Revocation
	for rows.Next() {
		var r Revocation
		var exp int64
		if err := rows.Scan(&r.Seq, &r.TokenID, &exp); err != nil {
			return nil, s.dbErr("read revocations", err)
		}
		r.Expires = time.UnixMilli(exp)
		out = append(out, r)
	}
	return out, s.dbErr("read revocations", rows.Err())
}
