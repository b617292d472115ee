package keystore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Record is a stored record's metadata (never its value).
type Record struct {
	Name       string    `json:"name"`
	KeyVersion int       `json:"key_version"`
	Size       int       `json:"size"` // ciphertext bytes
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func (s *Store) getRecord(ctx context.Context, name string) (version int, ct []byte, err error) {
	err = s.db.QueryRowContext(ctx, s.q(`SELECT key_version, ciphertext FROM records WHERE name = ?`), name).Scan(&version, &ct)
	if isNoRows(err) {
		return 0, nil, ErrNotFound
	}
	return version, ct, s.dbErr("read record", err)
}

// Records lists the records' metadata by name.
func (s *Store) Records(ctx context.Context) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, key_version, LENGTH(ciphertext), created_at, updated_at FROM records ORDER BY name`)
	if err != nil {
		return nil, s.dbErr("list records", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var c, u int64
		if err := rows.Scan(&r.Name, &r.KeyVersion, &r.Size, &c, &u); err != nil {
			return nil, s.dbErr("list records", err)
		}
		r.Created, r.Updated = time.UnixMilli(c).UTC(), time.UnixMilli(u).UTC()
		out = append(out, r)
	}
	return out, s.dbErr("list records", rows.Err())
}

// deleteRecord removes name; ErrNotFound when there was none.
func (s *Store) deleteRecord(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM records WHERE name = ?`), name)
	if err != nil {
		return s.dbErr("delete record", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// countByVersion returns how many records each key version encrypts.
func (s *Store) countByVersion(ctx context.Context) (map[int]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key_version, COUNT(*) FROM records GROUP BY key_version`)
	if err != nil {
		return nil, s.dbErr("count records", err)
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, s.dbErr("count records", err)
		}
		out[v] = n
	}
	return out, s.dbErr("count records", rows.Err())
}

// putWithCount stores a record, counts its encryption and audits it, in
// one transaction.
func (s *Store) putWithCount(ctx context.Context, name string, version int, ct []byte) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("store record", err)
	}
	defer tx.Rollback()
	t := now()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET key_version = excluded.key_version, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`),
		name, version, ct, t, t); err != nil {
		return s.dbErr("store record", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET encryptions = encryptions + 1 WHERE role = 'master' AND version = ?`), version); err != nil {
		return s.dbErr("store record", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`),
		t, s.actor, "store.put", name, fmt.Sprintf("master v%d", version)); err != nil {
		return s.dbErr("store record", err)
	}
	return s.dbErr("store record", tx.Commit())
}
