package keystore

import (
	"context"
	"database/sql"
	"sync"
)

// rewrapped is one batch read and re-encrypted, waiting to be written.
type rewrapped struct {
	items []*rewrapItem
	err   error
}

// rewrapPipelined is Rewrap on SQLite. SQLite admits one writer, and a
// write transaction held across the device work left a core idle while
// the database read and wrote, so the work is a pipeline: one goroutine
// reads the next batch (outside any write transaction: WAL readers do not
// wait for the writer) and the device re-encrypts it while this one
// writes the batch before.
//
// A record is written back only if it still holds the ciphertext read
// (a GCM ciphertext never repeats): one changed in between, by a Put, a
// Delete or another rewrap, is left as it is now. Records still under an
// older version after a pass (put again by a node that had not seen the
// rotation) are picked up by another pass.
func (vt *Vault) rewrapPipelined(ctx context.Context, v int, k masterKey, batch, total int, progress func(done, total int)) (int, error) {
	done := 0
	for {
		wrote, skipped, err := vt.rewrapPass(ctx, v, k, batch, func(n int) {
			done += n
			if n > 0 && progress != nil {
				progress(done, total)
			}
		})
		if err != nil || skipped == 0 || wrote == 0 {
			return done, err
		}
	}
}

// rewrapPass walks the records under older versions once, in name order;
// wrote counts the records written back, skipped those changed since read.
func (vt *Vault) rewrapPass(ctx context.Context, v int, k masterKey, batch int, wrote func(int)) (written, skipped int, err error) {
	var reader sync.WaitGroup
	defer reader.Wait() // nothing of this rewrap runs once it returns
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()                   // stops the reader when a write fails
	ready := make(chan rewrapped, 1) // one batch ahead of the writer
	reader.Go(func() {
		defer close(ready)
		after := ""
		for {
			items, err := vt.store.readOlder(ctx, vt.store.db, "", v, batch, after)
			if err == nil && len(items) > 0 {
				err = vt.rewrapItems(ctx, v, k, items)
			}
			select {
			case ready <- rewrapped{items, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(items) == 0 {
				return
			}
			after = items[len(items)-1].name
		}
	})
	for b := range ready {
		if b.err != nil || len(b.items) == 0 {
			return written, skipped, b.err
		}
		n, err := vt.store.writeRewrapped(ctx, v, b.items)
		if err != nil {
			return written, skipped, err
		}
		written += n
		skipped += len(b.items) - n
		wrote(n)
	}
	return written, skipped, ctx.Err()
}

// writeRewrapped writes a batch back in one transaction, each record only
// if it still holds what was read, and returns how many were.
func (s *Store) writeRewrapped(ctx context.Context, v int, items []*rewrapItem) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.dbErr("rewrap", err)
	}
	defer tx.Rollback()
	st, err := tx.PrepareContext(ctx, `UPDATE records SET key_version = ?, ciphertext = ?, updated_at = ? WHERE name = ? AND ciphertext = ?`)
	if err != nil {
		return 0, s.dbErr("rewrap", err)
	}
	defer st.Close()
	t, n := now(), 0
	for _, it := range items {
		r, err := st.ExecContext(ctx, v, it.newBlob, t, it.name, it.blob)
		if err != nil {
			return 0, s.dbErr("rewrap", err)
		}
		n += int(rowsAffected(r))
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.recordRewrap(ctx, tx, v, n, t); err != nil {
		return 0, err
	}
	return n, s.dbErr("rewrap", tx.Commit())
}

// rowsAffected is r's count; SQLite always knows it.
func rowsAffected(r sql.Result) int64 {
	n, _ := r.RowsAffected()
	return n
}
