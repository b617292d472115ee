package keystore

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// SeedRecords stores count records of size bytes named seed-000000… under
// the active master key, sealed in the device like Put but inserted in
// large transactions: benchmarks need 100,000 of them quickly.
func SeedRecords(ctx context.Context, n *Vault, count, size int) error {
	v, k, err := n.activeMaster()
	if err != nil {
		return err
	}
	value := make([]byte, size)
	const batch = 2000
	for start := 0; start < count; start += batch {
		end := min(start+batch, count)
		blobs := make([][]byte, end-start)
		var wg sync.WaitGroup
		errs := make(chan error, runtime.GOMAXPROCS(0))
		per := (len(blobs) + cap(errs) - 1) / cap(errs)
		for w := 0; w < len(blobs); w += per {
			wg.Add(1)
			go func(lo, hi int) {
				defer wg.Done()
				for i := lo; i < hi; i++ {
					b, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, seedName(start+i), value)
					if err != nil {
						errs <- err
						return
					}
					blobs[i] = b
				}
			}(w, min(w+per, len(blobs)))
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		tx, err := n.store.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, n.store.q(`INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`))
		if err != nil {
			tx.Rollback()
			return err
		}
		for i, b := range blobs {
			if _, err := st.ExecContext(ctx, seedName(start+i), v, b, now(), now()); err != nil {
				tx.Rollback()
				return err
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return n.store.countEncryptions(ctx, "master", v, count)
}

func seedName(i int) string { return fmt.Sprintf("seed-%06d", i) }

// HoldRevocation revokes token id in a transaction it leaves open until
// commit is called: the test of the revocation log's order.
func (s *Store) HoldRevocation(ctx context.Context, id string, at time.Time) (commit func() error, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := revokeIDs(ctx, tx, s, at, id); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx.Commit, nil
}
