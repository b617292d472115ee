package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

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
		// With one P, callers ready to queue would not run until this
		// goroutine blocks, so it yields once first (in-process create
		// on one core: 16k/s without, 26-32k/s with). With more, they
		// run on the others, and a yield sent this goroutine behind
		// every runnable one: behind keyward serve's HTTP work, each
		// batch waited ~25 µs to commit (create over HTTP at 65% of its
		// bound with it, 70% without; in process the same).
		yielded := runtime.GOMAXPROCS(0) > 1
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
	if err := s.db.file.check(); err != nil {
		return err // the prepared statement below would skip guardedDB's check
	}
	insert, err := s.writer.statement(ctx, s)
	if err != nil {
		return s.dbErr("record token", err)
	}
	if len(batch) == 1 && batch[0].refresh == nil {
		// One row commits by itself: no BEGIN and COMMIT round trips.
		_, err := insert.ExecContext(ctx, tokenArgs(batch[0].tok)...)
		s.committed()
		return s.dbErr("record token", err)
	}
	if s.postgres && !slices.ContainsFunc(batch, func(it issue) bool { return it.refresh != nil }) {
		// One statement is atomic by itself: one round trip for the
		// batch, not BEGIN, INSERT and COMMIT.
		_, err := s.db.ExecContext(ctx, insertTokensSQL(len(batch)), batchArgs(batch)...)
		return s.dbErr("record token", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("record token", err)
	}
	defer tx.Rollback()
	if s.postgres {
		// One statement for the batch: a round trip a row was what bound
		// PostgreSQL's create (under half a core busy, the rest waiting).
		if _, err := tx.ExecContext(ctx, insertTokensSQL(len(batch)), batchArgs(batch)...); err != nil {
			return s.dbErr("record token", err)
		}
	}
	st := tx.StmtContext(ctx, insert)
	for _, it := range batch {
		if !s.postgres {
			if _, err := st.ExecContext(ctx, tokenArgs(it.tok)...); err != nil {
				return s.dbErr("record token", err)
			}
		}
		if it.refresh != nil {
			if err := insertRefresh(ctx, tx, s, *it.refresh); err != nil {
				return s.dbErr("record token", err)
			}
		}
	}
	err = tx.Commit()
	s.committed()
	return s.dbErr("record token", err)
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

// insertTokensSQL inserts n tokens in one PostgreSQL statement.
func insertTokensSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO tokens (id, kind, subject, scope, audience, issued_at, expires_at, family, description) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range 9 {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString("$" + strconv.Itoa(i*9+j+1))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// batchArgs are insertTokensSQL's arguments for batch.
func batchArgs(batch []issue) []any {
	args := make([]any, 0, 9*len(batch))
	for _, it := range batch {
		args = append(args, tokenArgs(it.tok)...)
	}
	return args
}
