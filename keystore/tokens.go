package keystore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Token state: every token issued is recorded (so every token is
// revocable, however short its life), refresh tokens are kept only as
// SHA-256 hashes, and single use is one atomic UPDATE.
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

// JoinAudience joins audiences for storage.
func JoinAudience(aud []string) string { return strings.Join(aud, " ") }
