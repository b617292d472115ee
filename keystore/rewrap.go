package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"

	"github.com/keyward/keyward/keyring"
)

// Rewrap re-encrypts every record under an older master version with the
// active one, batch records at a time, each batch in one transaction: a
// crash or kill at any point loses nothing (a batch commits whole or not at
// all) and running it again resumes. Two rewraps may run at once, on one
// node or on several: PostgreSQL hands each its own rows (FOR UPDATE SKIP
// LOCKED); on SQLite a record is written back only if it still holds what
// was read. progress, if not nil, is told records done and the total at
// the start; calls are serialized.
func (vt *Vault) Rewrap(ctx context.Context, batch int, progress func(done, total int)) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("%w: batch size must be at least 1", ErrKeyState)
	}
	v, k, err := vt.activeMaster()
	if err != nil {
		return 0, err
	}
	total, err := vt.store.countOlder(ctx, v)
	if err != nil {
		return 0, err
	}
	if !vt.store.postgres {
		return vt.rewrapPipelined(ctx, v, k, batch, total, progress)
	}
	// On PostgreSQL two lanes run at once, each batch in its own
	// transaction (SKIP LOCKED keeps their rows apart), so one lane's
	// device work overlaps the other's database round trips.
	var (
		mu    sync.Mutex
		done  int
		first error
		wg    sync.WaitGroup
	)
	for range 2 {
		wg.Go(func() {
			after := "" // this lane's cursor: names are walked in order
			for {
				m, last, err := vt.rewrapLockedBatch(ctx, v, k, batch, after)
				after = last
				mu.Lock()
				done += m
				if m > 0 && progress != nil {
					progress(done, total)
				}
				if err != nil && first == nil {
					first = err
				}
				stop := err != nil || m == 0 || first != nil
				mu.Unlock()
				if stop {
					return
				}
			}
		})
	}
	wg.Wait()
	return done, first
}

type rewrapItem struct {
	name    string
	oldVer  int
	blob    []byte
	newBlob []byte
	err     error
}

// olderQuery reads up to a batch of records under a master version older
// than the active one, named after a cursor, in name order (the primary
// key: no index on key_version, so that updates of the ciphertext stay
// cheap).
const olderQuery = `SELECT name, key_version, ciphertext FROM records WHERE name > ? AND key_version < ? ORDER BY name LIMIT ?`

// readOlder runs olderQuery (plus suffix) on q.
func (s *Store) readOlder(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, suffix string, v, batch int, after string) ([]*rewrapItem, error) {
	rows, err := q.QueryContext(ctx, s.q(olderQuery+suffix), after, v, batch)
	if err != nil {
		return nil, s.dbErr("rewrap", err)
	}
	defer rows.Close()
	var items []*rewrapItem
	for rows.Next() {
		it := &rewrapItem{}
		if err := rows.Scan(&it.name, &it.oldVer, &it.blob); err != nil {
			return nil, s.dbErr("rewrap", err)
		}
		items = append(items, it)
	}
	return items, s.dbErr("rewrap", rows.Err())
}

// rewrapItems decrypts each item and encrypts it under k (version v), the
// device work spread over the cores (SoftHSM2 and HSMs serve several
// sessions at once).
func (vt *Vault) rewrapItems(ctx context.Context, v int, k masterKey, items []*rewrapItem) error {
	var wg sync.WaitGroup
	next := make(chan *rewrapItem)
	for range min(runtime.GOMAXPROCS(0), len(items)) {
		wg.Go(func() {
			for it := range next {
				pt, err := vt.openBlob(ctx, it.name, it.blob)
				if err == nil {
					it.newBlob, err = sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, it.name, pt)
					clear(pt)
				}
				it.err = err
			}
		})
	}
	for _, it := range items {
		next <- it
	}
	close(next)
	wg.Wait()
	for _, it := range items {
		if it.err != nil {
			return fmt.Errorf("rewrap stopped, this batch rolled back: %w; restore or delete that record, then run rewrap again", it.err)
		}
	}
	return nil
}

// rewrapLockedBatch (PostgreSQL) rewraps up to batch records named after
// `after`, locked for this transaction, and returns how many and the last
// name seen.
func (vt *Vault) rewrapLockedBatch(ctx context.Context, v int, k masterKey, batch int, after string) (int, string, error) {
	s := vt.store
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, after, s.dbErr("rewrap", err)
	}
	defer tx.Rollback()
	items, err := s.readOlder(ctx, tx, ` FOR UPDATE SKIP LOCKED`, v, batch, after)
	if err != nil || len(items) == 0 {
		return 0, after, err
	}
	if err := vt.rewrapItems(ctx, v, k, items); err != nil {
		return 0, after, err
	}
	t := now()
	names, blobs, olds := make([]string, len(items)), make([][]byte, len(items)), make([]int64, len(items))
	for i, it := range items {
		names[i], blobs[i], olds[i] = it.name, it.newBlob, int64(it.oldVer)
	}
	if _, err = tx.ExecContext(ctx, `UPDATE records AS r SET key_version = $1, ciphertext = u.ct, updated_at = $2
		FROM unnest($3::text[], $4::bytea[], $5::bigint[]) AS u(name, ct, old)
		WHERE r.name = u.name AND r.key_version = u.old`, v, t, names, blobs, olds); err != nil {
		return 0, after, s.dbErr("rewrap", err)
	}
	if err := s.recordRewrap(ctx, tx, v, len(items), t); err != nil {
		return 0, after, err
	}
	if err := tx.Commit(); err != nil {
		return 0, after, s.dbErr("rewrap", err)
	}
	return len(items), items[len(items)-1].name, nil
}

// recordRewrap counts n more encryptions under master v and audits them,
// in tx.
func (s *Store) recordRewrap(ctx context.Context, tx *sql.Tx, v, n int, t int64) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET encryptions = encryptions + ? WHERE role = ? AND version = ?`), n, string(keyring.Master), v); err != nil {
		return s.dbErr("rewrap", err)
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`),
		t, s.actor, "store.rewrap", fmt.Sprintf("%d records", n), fmt.Sprintf("to master v%d", v))
	return s.dbErr("rewrap", err)
}

// countOlder counts the records under a master version older than v.
func (s *Store) countOlder(ctx context.Context, v int) (int, error) {
	var c int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM records WHERE key_version < ?`), v).Scan(&c)
	return c, s.dbErr("count records", err)
}
