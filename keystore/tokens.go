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
	// Refreshable says a live refresh token was issued with it (listings
	// and Token say; a record being written does not).
	Refreshable bool `json:"refreshable"`
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

// scanToken reads tokenColumns into t, then any extra columns into extra.
func scanToken(row interface{ Scan(...any) error }, extra ...any) (TokenRecord, error) {
	var t TokenRecord
	var issued, expires int64
	var revoked, consumed sql.NullInt64
	dest := []any{&t.ID, &t.Kind, &t.Subject, &t.Scope, &t.Audience, &issued, &expires, &revoked, &consumed, &t.Family, &t.Description}
	err := row.Scan(append(dest, extra...)...)
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

// refreshableColumn says whether a token has a live refresh token: one
// look-up in refresh_tokens_access per record.
const refreshableColumn = `EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.access_id = tokens.id AND r.used_at IS NULL AND r.revoked_at IS NULL AND r.expires_at > ?)`

// Token returns the record of token id (Refreshable unset: Tokens with
// the id as filter says it).
func (s *Store) Token(ctx context.Context, id string) (TokenRecord, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenColumns+` FROM tokens WHERE id = ?`), id))
	if isNoRows(err) {
		return t, fmt.Errorf("%w: no token with id %q", ErrTokenUnknown, id)
	}
	return t, s.dbErr("read token", err)
}

// JoinAudience joins audiences for storage.
func JoinAudience(aud []string) string { return strings.Join(aud, " ") }

// RegisterIssuer records url as an issuer of this cluster's tokens (a
// server's public URL): every node accepts the tokens it signed.
func (s *Store) RegisterIssuer(ctx context.Context, url string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`),
		issuerPrefix+url, time.Now().UTC().Format(time.RFC3339))
	return s.dbErr("register issuer", err)
}

const issuerPrefix = "issuer "

// Issuers lists the issuers RegisterIssuer recorded.
func (s *Store) Issuers(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name FROM meta WHERE substr(name, 1, ?) = ?`), len(issuerPrefix), issuerPrefix)
	if err != nil {
		return nil, s.dbErr("read issuers", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, s.dbErr("read issuers", err)
		}
		out = append(out, strings.TrimPrefix(name, issuerPrefix))
	}
	return out, s.dbErr("read issuers", rows.Err())
}
