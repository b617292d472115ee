package keystore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Token state: every token issued is recorded (so every token is
// revocable, however short its life), refresh tokens are kept only as
// SHA-256 hashes, and single use is one atomic UPDATE.

var (
	ErrTokenUsed    = errors.New("token already used")
	ErrTokenRevoked = errors.New("token revoked")
	ErrTokenExpired = errors.New("token expired")
	ErrTokenUnknown = errors.New("token unknown")
)

// TokenRecord is what the database knows of an issued token (never the
// token itself).
type TokenRecord struct {
	ID          string     `json:"token_id"`
	Kind        string     `json:"kind"`
	Subject     string     `json:"subject"`
	Scope       string     `json:"scope"`
	Audience    string     `json:"audience"` // space-separated
	Issued      time.Time  `json:"issued_at"`
	Expires     time.Time  `json:"expires_at"`
	Revoked     *time.Time `json:"revoked_at,omitempty"`
	Consumed    *time.Time `json:"consumed_at,omitempty"`
	Family      string     `json:"family"`
	Description string     `json:"description,omitempty"`
}

// RefreshRecord is a refresh token, by the SHA-256 hash of its value.
type RefreshRecord struct {
	Hash      []byte
	Family    string
	AccessID  string
	Subject   string
	Scope     string
	Audience  string
	Alg       string
	AccessTTL time.Duration
	Issued    time.Time
	Expires   time.Time
}

// InstanceID is the cluster's instance id (made on first use, shared by
// every node of the database): tokens are issued by keyward@<id>.
func (s *Store) InstanceID(ctx context.Context) (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES ('instance_id', ?) ON CONFLICT (name) DO NOTHING`), hex.EncodeToString(b)); err != nil {
		return "", s.dbErr("instance id", err)
	}
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'instance_id'`).Scan(&id)
	return id, s.dbErr("instance id", err)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

const insertTokenSQL = `INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, family, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

// tokenArgs are insertTokenSQL's arguments for t.
func tokenArgs(t TokenRecord) []any {
	return []any{t.ID, t.Kind, t.Subject, t.Scope, t.Audience, ms(t.Issued), ms(t.Expires), t.Family, t.Description}
}

func insertToken(ctx context.Context, tx *sql.Tx, s *Store, t TokenRecord) error {
	_, err := tx.ExecContext(ctx, s.q(insertTokenSQL), tokenArgs(t)...)
	return err
}

func insertRefresh(ctx context.Context, tx *sql.Tx, s *Store, r RefreshRecord) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_tokens (hash, family, access_id, subject, scope, audience, alg, access_ttl, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.Hash, r.Family, r.AccessID, r.Subject, r.Scope, r.Audience, r.Alg, r.AccessTTL.Milliseconds(), ms(r.Issued), ms(r.Expires))
	return err
}

// commitTimeout bounds one group commit.
const commitTimeout = 10 * time.Second

// issue is one RecordIssue waiting for the group commit.
type issue struct {
	tok     TokenRecord
	refresh *RefreshRecord
	done    chan error
}

// writer commits concurrent RecordIssue calls together: one transaction for
// all that are waiting, so issuing tokens is not bound by one commit each.
// It commits what is queued at once rather than wait for more: while one
// batch commits, the callers not in it sign the next (the device and the
// database work side by side).
type writer struct {
	once   sync.Once
	mu     sync.RWMutex // senders hold it shared; stop holds it alone
	closed bool
	ch     chan issue
	done   chan struct{} // closed when writeIssues has committed the last batch
	insert *sql.Stmt     // used by writeIssues alone
}

// stop commits what is queued and ends the writer; RecordIssue fails
// after it.
func (w *writer) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.closed = true
	if w.ch != nil {
		close(w.ch)
		<-w.done
	}
}

// RecordIssue records an issued token (and its refresh token) and returns
// once it is committed.
func (s *Store) RecordIssue(ctx context.Context, tok TokenRecord, refresh *RefreshRecord) error {
	w := &s.writer
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return fmt.Errorf("%w: record token: the database is closed", ErrDatabase)
	}
	w.once.Do(func() {
		w.ch = make(chan issue, 1024)
		w.done = make(chan struct{})
		go s.writeIssues()
	})
	it := issue{tok: tok, refresh: refresh, done: make(chan error, 1)}
	select {
	case w.ch <- it:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) writeIssues() {
	defer close(s.writer.done)
	for first := range s.writer.ch {
		batch := []issue{first}
		yielded := false
	collect:
		for len(batch) < 512 {
			select {
			case it, ok := <-s.writer.ch:
				if !ok {
					break collect // stopped: commit what came
				}
				batch = append(batch, it)
				continue
			default:
			}
			if yielded {
				break
			}
			// Let callers that are ready to run queue first: with few Ps
			// they would not run until this goroutine blocks.
			runtime.Gosched()
			yielded = true
		}
		err := s.commitIssues(batch)
		if err != nil && len(batch) > 1 {
			// One bad record must not fail the others.
			for _, it := range batch {
				it.done <- s.commitIssues([]issue{it})
			}
			continue
		}
		for _, it := range batch {
			it.done <- err
		}
	}
}

func (s *Store) commitIssues(batch []issue) error {
	// Bounded on PostgreSQL: a connection that stalls (rather than
	// failing) must not hold every later token of this node in the queue.
	// Not on SQLite, a local file: go-sqlite3 runs each statement of a
	// cancellable context on a goroutine of its own, which cost the group
	// commit a fifth of its time.
	ctx := context.Background()
	if s.postgres {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commitTimeout)
		defer cancel()
	}
	insert, err := s.writer.statement(ctx, s)
	if err != nil {
		return s.dbErr("record token", err)
	}
	if len(batch) == 1 && batch[0].refresh == nil {
		// One row commits by itself: no BEGIN and COMMIT round trips.
		_, err := insert.ExecContext(ctx, tokenArgs(batch[0].tok)...)
		return s.dbErr("record token", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("record token", err)
	}
	defer tx.Rollback()
	st := tx.StmtContext(ctx, insert)
	for _, it := range batch {
		if _, err := st.ExecContext(ctx, tokenArgs(it.tok)...); err != nil {
			return s.dbErr("record token", err)
		}
		if it.refresh != nil {
			if err := insertRefresh(ctx, tx, s, *it.refresh); err != nil {
				return s.dbErr("record token", err)
			}
		}
	}
	return s.dbErr("record token", tx.Commit())
}

// statement is the token insert, prepared once (database/sql keeps it
// prepared on each connection it is used on).
func (w *writer) statement(ctx context.Context, s *Store) (*sql.Stmt, error) {
	if w.insert != nil {
		return w.insert, nil
	}
	st, err := s.db.PrepareContext(ctx, s.q(insertTokenSQL))
	if err != nil {
		return nil, err
	}
	w.insert = st
	return st, nil
}

const tokenColumns = `id, kind, subject, scope, audience, issued_at, expires_at, revoked_at, consumed_at, family, description`

func scanToken(row interface{ Scan(...any) error }) (TokenRecord, error) {
	var t TokenRecord
	var issued, expires int64
	var revoked, consumed sql.NullInt64
	err := row.Scan(&t.ID, &t.Kind, &t.Subject, &t.Scope, &t.Audience, &issued, &expires, &revoked, &consumed, &t.Family, &t.Description)
	t.Issued, t.Expires = time.UnixMilli(issued).UTC(), time.UnixMilli(expires).UTC()
	if revoked.Valid {
		r := time.UnixMilli(revoked.Int64).UTC()
		t.Revoked = &r
	}
	if consumed.Valid {
		c := time.UnixMilli(consumed.Int64).UTC()
		t.Consumed = &c
	}
	return t, err
}

// Token returns the record of token id.
func (s *Store) Token(ctx context.Context, id string) (TokenRecord, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens WHERE id = ?`), id))
	if isNoRows(err) {
		return t, fmt.Errorf("%w: no token with id %q", ErrTokenUnknown, id)
	}
	return t, s.dbErr("read token", err)
}

// Tokens lists token records, newest first; subject filters when not
// empty; all includes expired and revoked ones.
func (s *Store) Tokens(ctx context.Context, subject string, all bool, now time.Time) ([]TokenRecord, error) {
	q := `SELECT ` + tokenColumns + ` FROM tokens WHERE 1 = 1`
	var args []any
	if subject != "" {
		q += ` AND subject = ?`
		args = append(args, subject)
	}
	if !all {
		q += ` AND revoked_at IS NULL AND consumed_at IS NULL AND expires_at > ?`
		args = append(args, ms(now))
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY issued_at DESC, id DESC`), args...)
	if err != nil {
		return nil, s.dbErr("list tokens", err)
	}
	defer rows.Close()
	var out []TokenRecord
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, s.dbErr("list tokens", err)
		}
		out = append(out, t)
	}
	return out, s.dbErr("list tokens", rows.Err())
}

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

// RevokeToken revokes token id (and, for a refresh grant's access token,
// leaves the rest of the family alone).
func (s *Store) RevokeToken(ctx context.Context, id string, now time.Time) error {
	if _, err := s.Token(ctx, id); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("revoke token", err)
	}
	defer tx.Rollback()
	if err := revokeIDs(ctx, tx, s, now, id); err != nil {
		return s.dbErr("revoke token", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE access_id = ? AND revoked_at IS NULL`), ms(now), id); err != nil {
		return s.dbErr("revoke token", err)
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
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL`), ms(now), family); err != nil {
		return s.dbErr("revoke family", err)
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

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.dbErr("ping", s.db.PingContext(ctx))
}

// Revocation is an entry of the revocation log.
type Revocation struct {
	Seq     int64
	TokenID string
	Expires time.Time
}

// RevocationsSince returns the revocation log after seq, for verifiers to
// follow (on this node and every other).
func (s *Store) RevocationsSince(ctx context.Context, seq int64) ([]Revocation, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, token_id, expires_at FROM revocations WHERE seq > ? ORDER BY seq`), seq)
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
	if err := insertRefresh(ctx, tx, s, next); err != nil {
		return s.dbErr("refresh", err)
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

// JoinAudience joins audiences for storage.
func JoinAudience(aud []string) string { return strings.Join(aud, " ") }
