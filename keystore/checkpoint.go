package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// SQLite copies its WAL back into the database file (a checkpoint) and
// syncs both files, by default inside the commit that takes the WAL past
// 1000 pages. Those two fsyncs took 4–8 ms here, so one token commit in
// about 450 held every request waiting on the group commit that long. A
// checkpointer goroutine of the store does the copying and syncing beside
// the writer instead (PASSIVE: it neither waits for nor blocks readers
// and writers), nudged by the commits and on a timer. Under a steady load
// a checkpoint beside the writer never finds the WAL still, so the WAL
// could not start over: a commit still checkpoints, but only past
// autocheckpointPages, and finds most of the work done.

// sqliteDriver is go-sqlite3 with that later mark on every connection.
const sqliteDriver = "sqlite3-keyward"

const (
	autocheckpointPages = 10000       // ~40 MB of WAL; SQLite's default is 1000
	checkpointCommits   = 250         // about SQLite's 1000 pages of token commits
	checkpointEvery     = time.Second // and at least this often
)

func init() {
	sql.Register(sqliteDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", autocheckpointPages), nil)
		return err
	}})
}

// checkpointer runs the SQLite store's checkpoints.
type checkpointer struct {
	nudge    chan struct{} // commits wrote pages
	commits  atomic.Int64  // since the store opened; every checkpointCommits-th nudges
	stop     chan struct{}
	stopOnce sync.Once // Close may be called twice
	done     sync.WaitGroup
}

func (s *Store) startCheckpointer() {
	c := &checkpointer{nudge: make(chan struct{}, 1), stop: make(chan struct{})}
	s.checkpoints = c
	c.done.Go(func() {
		tick := time.NewTicker(checkpointEvery)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-c.nudge:
			case <-tick.C:
			}
			// One that fails or cannot copy everything (a reader still
			// needs old pages) is done again at the next nudge or tick.
			s.db.DB.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		}
	})
}

// committed tells the checkpointer that a commit wrote to the WAL.
func (s *Store) committed() {
	c := s.checkpoints
	if c == nil || c.commits.Add(1)%checkpointCommits != 0 {
		return
	}
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

func (s *Store) stopCheckpointer() {
	if c := s.checkpoints; c != nil {
		c.stopOnce.Do(func() { close(c.stop) })
		c.done.Wait()
	}
}
