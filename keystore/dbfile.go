package keystore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
)

// A SQLite database file removed or replaced while keyward has it open
// (rm keyward.db*, a restore over it) would take writes into the unlinked
// file: acknowledged, and gone at the next start. So every write, and the
// readiness ping, first checks that the path still names the file that
// was opened, and fails as the database being unavailable when it does
// not. (PostgreSQL has no such file.)

// guardedDB is the database handle, with that check on SQLite.
type guardedDB struct {
	*sql.DB
	file *dbFile // nil: PostgreSQL
}

// dbFile is the SQLite file as it was when opened.
type dbFile struct {
	path   string
	opened os.FileInfo
}

func openedFile(path string) (*dbFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &dbFile{path: path, opened: st}, nil
}

// check fails when path no longer names the file opened.
func (f *dbFile) check() error {
	if f == nil {
		return nil
	}
	st, err := os.Stat(f.path)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("%w: %s was removed while keyward had it open; nothing more is written into the removed file: restore it (or point --db at the right file) and restart", ErrDatabase, f.path)
	case err != nil:
		return fmt.Errorf("%w: %s: %v", ErrDatabase, f.path, err)
	case !os.SameFile(st, f.opened):
		return fmt.Errorf("%w: %s was replaced by another file while keyward had it open; nothing more is written into the old one: restart to open the new one", ErrDatabase, f.path)
	}
	return nil
}

func (g *guardedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := g.file.check(); err != nil {
		return nil, err
	}
	return g.DB.ExecContext(ctx, query, args...)
}

func (g *guardedDB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	if err := g.file.check(); err != nil {
		return nil, err
	}
	return g.DB.BeginTx(ctx, opts)
}

func (g *guardedDB) PingContext(ctx context.Context) error {
	if err := g.file.check(); err != nil {
		return err
	}
	return g.DB.PingContext(ctx)
}
