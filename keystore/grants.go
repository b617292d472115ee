package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// UseRefresh consumes the refresh token hashed as hash with one atomic
// UPDATE, then, in the same transaction, lets build make the new tokens
// from the old grant, records them and revokes the old access token. A
// refresh token used before revokes its whole family and is
// ErrTokenUsed.
func (s *Store) UseRefresh(ctx context.Context, hash []byte, now time.Time,
	build func(old RefreshRecord) (TokenRecord, RefreshRecord, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("refresh", err)
	}
	defer tx.Rollback()
	var old RefreshRecord
	var ttl, issued, expires int64
	err = tx.QueryRowContext(ctx, s.q(`UPDATE refresh_tokens SET used_at = ?
		WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?
		RETURNING family, access_id, subject, scope, audience, alg, access_ttl, issued_at, expires_at`), ms(now), hash, ms(now)).
		Scan(&old.Family, &old.AccessID, &old.Subject, &old.Scope, &old.Audience, &old.Alg, &ttl, &issued, &expires)
	if isNoRows(err) {
		tx.Rollback()
		return s.refreshRefused(ctx, hash, now)
	}
	if err != nil {
		return s.dbErr("refresh", err)
	}
	old.Hash, old.AccessTTL = hash, time.Duration(ttl)*time.Millisecond
	old.Issued, old.Expires = time.UnixMilli(issued).UTC(), time.UnixMilli(expires).UTC()
	tok, next, err := build(old)
	if err != nil {
		return err // rolled back: the refresh token stays usable
	}
	if err := insertToken(ctx, tx, s, tok); err != nil {
		return s.dbErr("refresh", err)
	}
	if next.Hash != nil { // none: the grant ends with this refresh
		if err := insertRefresh(ctx, tx, s, next); err != nil {
			return s.dbErr("refresh", err)
		}
	}
	if err := revokeIDs(ctx, tx, s, now, old.AccessID); err != nil {
		return s.dbErr("refresh", err)
	}
	return s.dbErr("refresh", tx.Commit())
}

// refreshRefused says why a refresh token was not consumed, revoking the
// family of one used before.
func (s *Store) refreshRefused(ctx context.Context, hash []byte, now time.Time) error {
	var family string
	var used, revoked sql.NullInt64
	var expires int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT family, used_at, revoked_at, expires_at FROM refresh_tokens WHERE hash = ?`), hash).Scan(&family, &used, &revoked, &expires)
	switch {
	case isNoRows(err):
		return fmt.Errorf("%w: this refresh token was never issued here", ErrTokenUnknown)
	case err != nil:
		return s.dbErr("refresh", err)
	case used.Valid:
		if err := s.RevokeFamily(ctx, family, now); err != nil {
			return err
		}
		return fmt.Errorf("%w: this refresh token was used before; every token of its grant is now revoked", ErrTokenUsed)
	case revoked.Valid:
		return fmt.Errorf("%w: this refresh token was revoked", ErrTokenRevoked)
	}
	return fmt.Errorf("%w: this refresh token expired at %s", ErrTokenExpired, time.UnixMilli(expires).UTC().Format(time.RFC3339))
}

// ConsumePairing uses pairing token id once, atomically, and in the same
// transaction lets build make the master token, records it and revokes the
// pairing token.
func (s *Store) ConsumePairing(ctx context.Context, id string, now time.Time, build func(pairing TokenRecord) (TokenRecord, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET consumed_at = ?
		WHERE id = ? AND kind = 'pairing' AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > ?`), ms(now), id, ms(now))
	if err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		tx.Rollback()
		t, err := s.Token(ctx, id)
		switch {
		case err != nil:
			return err
		case t.Kind != "pairing":
			return fmt.Errorf("%w: token %s is a %s token, not a pairing token", ErrTokenUnknown, id, t.Kind)
		case t.Consumed != nil:
			return fmt.Errorf("%w: pairing token %s was redeemed at %s", ErrTokenUsed, id, t.Consumed.Format(time.RFC3339))
		case t.Revoked != nil:
			return fmt.Errorf("%w: pairing token %s", ErrTokenRevoked, id)
		}
		return fmt.Errorf("%w: pairing token %s expired at %s", ErrTokenExpired, id, t.Expires.Format(time.RFC3339))
	}
	pairing, err := scanToken(tx.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens WHERE id = ?`), id))
	if err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	master, err := build(pairing)
	if err != nil {
		return err
	}
	if err := insertToken(ctx, tx, s, master); err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	if err := revokeIDs(ctx, tx, s, now, id); err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`),
		ms(now), s.actor, "pairing.redeem", id, "master token "+master.ID); err != nil {
		return s.dbErr("redeem pairing token", err)
	}
	return s.dbErr("redeem pairing token", tx.Commit())
}

// LiveRefresh returns the refresh token of hash when it may still be used
// (issued here, not used, revoked or expired at now); ErrTokenUnknown
// otherwise, whatever the reason (introspection says no more).
func (s *Store) LiveRefresh(ctx context.Context, hash []byte, now time.Time) (RefreshRecord, error) {
	r := RefreshRecord{Hash: hash}
	var ttl, issued, expires int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT family, access_id, subject, scope, audience, alg, access_ttl, issued_at, expires_at FROM refresh_tokens
		WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?`), hash, ms(now)).
		Scan(&r.Family, &r.AccessID, &r.Subject, &r.Scope, &r.Audience, &r.Alg, &ttl, &issued, &expires)
	if isNoRows(err) {
		return r, fmt.Errorf("%w: no live refresh token", ErrTokenUnknown)
	}
	if err != nil {
		return r, s.dbErr("read refresh token", err)
	}
	r.AccessTTL = time.Duration(ttl) * time.Millisecond
	r.Issued, r.Expires = time.UnixMilli(issued).UTC(), time.UnixMilli(expires).UTC()
	return r, nil
}
