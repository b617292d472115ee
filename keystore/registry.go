package keystore

import (
	"context"
	"fmt"
	"time"
)

// Key states in the registry.
const (
	StateActive      = "active"       // encrypts new data (the newest version of a role)
	StateDecryptOnly = "decrypt-only" // older versions: read, rewrap away
	StateRetired     = "retired"      // no record uses it; the device object may go
)

// NonceLimit is NIST SP 800-38D's bound on encryptions under one key with
// random 96-bit nonces; WarnEncryptions is where keyward starts warning.
const (
	NonceLimit      = 1 << 32
	WarnEncryptions = NonceLimit / 2
)

// KeyRecord is one registered key version.
type KeyRecord struct {
	Role        string    `json:"role"`
	Version     int       `json:"version"`
	Label       string    `json:"label"`
	KCV         string    `json:"kcv"`
	Origin      string    `json:"origin"`
	Policy      string    `json:"policy"` // local or transferable (hsm.Policy)
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
	Encryptions int64     `json:"encryptions"`
}

// Keys lists the registry, by role then version.
func (s *Store) Keys(ctx context.Context) ([]KeyRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT role, version, label, kcv, origin, policy, state, created_at, encryptions FROM keys ORDER BY role, version`)
	if err != nil {
		return nil, s.dbErr("read key registry", err)
	}
	defer rows.Close()
	var out []KeyRecord
	for rows.Next() {
		var k KeyRecord
		var created int64
		if err := rows.Scan(&k.Role, &k.Version, &k.Label, &k.KCV, &k.Origin, &k.Policy, &k.State, &created, &k.Encryptions); err != nil {
			return nil, s.dbErr("read key registry", err)
		}
		k.Created = time.UnixMilli(created).UTC()
		out = append(out, k)
	}
	return out, s.dbErr("read key registry", rows.Err())
}

// register adds version k and makes it the active one of its role (older
// active versions become decrypt-only). A version registered already with
// the same KCV is left as it is; with another KCV it is ErrKeyMismatch.
func (s *Store) register(ctx context.Context, k KeyRecord) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("register key", err)
	}
	defer tx.Rollback()
	var kcv string
	err = tx.QueryRowContext(ctx, s.q(`SELECT kcv FROM keys WHERE role = ? AND version = ?`), k.Role, k.Version).Scan(&kcv)
	switch {
	case err == nil && kcv == k.KCV:
		return nil
	case err == nil:
		return fmt.Errorf("%w: %s key v%d: this device holds KCV %s, the database expects KCV %s", ErrKeyMismatch, k.Role, k.Version, k.KCV, kcv)
	case !isNoRows(err):
		return s.dbErr("register key", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET state = ? WHERE role = ? AND state = ? AND version < ?`),
		StateDecryptOnly, k.Role, StateActive, k.Version); err != nil {
		return s.dbErr("register key", err)
	}
	state := StateActive
	var newer int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM keys WHERE role = ? AND version > ?`), k.Role, k.Version).Scan(&newer); err != nil {
		return s.dbErr("register key", err)
	}
	if newer > 0 {
		state = StateDecryptOnly
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (role, version, label, kcv, origin, policy, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		k.Role, k.Version, k.Label, k.KCV, k.Origin, k.Policy, state, now()); err != nil {
		return s.dbErr("register key", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`),
		now(), s.actor, "key.register", k.Label, "KCV "+k.KCV+", "+k.Origin+", "+k.Policy); err != nil {
		return s.dbErr("register key", err)
	}
	return s.dbErr("register key", tx.Commit())
}

// countEncryptions adds n to version v's encryption count.
func (s *Store) countEncryptions(ctx context.Context, role string, v int, n int) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE keys SET encryptions = encryptions + ? WHERE role = ? AND version = ?`), n, role, v)
	return s.dbErr("count encryptions", err)
}

// setState changes a version's state.
func (s *Store) setState(ctx context.Context, role string, v int, state string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE keys SET state = ? WHERE role = ? AND version = ?`), state, role, v)
	return s.dbErr("set key state", err)
}
