package keystore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL, registered as "pgx"
)

//go:embed migrations
var migrations embed.FS

// Store is the shared database: key registry, encrypted records, audit log.
// It holds only ciphertext; every encryption happens in the device (Vault).
type Store struct {
	db       *guardedDB
	postgres bool
	where    string // the database, for messages (no password)
	dsn      DSN
	actor    string // who the audit log names
	writer   writer // group commit of issued tokens
	warnings []string

	checkpoints *checkpointer // SQLite: checkpoints beside the writer (checkpoint.go)
}

// Open opens (creating if need be) the database named by dsn — a file path,
// a "sqlite:" URL, or a "postgres://" / "postgresql://" URL — and applies
// the embedded migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	d, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	s := &Store{actor: actorName(), where: d.String(), dsn: d, db: &guardedDB{}}
	if d.Postgres {
		s.postgres = true
		s.db.DB, err = sql.Open("pgx", d.conn)
	} else {
		path := d.conn
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrDatabase, d.scrub(err.Error()))
		}
		if s.warnings, err = prepareSQLiteFile(path); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrDatabase, d.scrub(err.Error()))
		}
		// WAL lets readers work beside the writer; a busy timeout makes
		// writers queue instead of failing; immediate transactions take the
		// write lock up front, so a rewrap batch cannot deadlock on upgrade.
		s.db.DB, err = sql.Open(sqliteDriver, "file:"+path+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate&_foreign_keys=on&_synchronous=NORMAL")
		if err == nil {
			s.db.file, err = openedFile(path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrDatabase, s.where, d.scrub(err.Error()))
	}
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("%w: %s cannot be reached: %s", ErrDatabase, s.where, d.scrub(err.Error()))
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if !s.postgres {
		s.startCheckpointer()
	}
	return s, nil
}

// prepareSQLiteFile creates a new database file 0600 (SQLite gives its
// -wal and -shm files the same mode) and warns of an existing one that
// group or others can access.
func prepareSQLiteFile(path string) ([]string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		if f != nil {
			f.Close()
		}
		return nil, nil
	}
	if err != nil || st.Mode().Perm()&0o077 == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("database %s is accessible to group or others (mode %04o): chmod 600 %s %s-wal %s-shm",
		path, st.Mode().Perm(), path, path, path)}, nil
}

// Warnings are what Open found worth saying that did not stop it: a
// database file others can read.
func (s *Store) Warnings() []string { return s.warnings }

// Close commits the tokens queued for the group commit, stops its writer
// and closes the database.
func (s *Store) Close() error {
	s.writer.stop()
	s.stopCheckpointer()
	return s.db.Close()
}

// Where names the database (a path, or a URL without its password).
func (s *Store) Where() string { return s.where }

// Postgres says the store is PostgreSQL.
func (s *Store) Postgres() bool { return s.postgres }

func actorName() string {
	host, _ := os.Hostname()
	user := os.Getenv("USER")
	if user == "" {
		user = strconv.Itoa(os.Getuid())
	}
	return user + "@" + host
}

// q rewrites "?" placeholders to PostgreSQL's "$n".
func (s *Store) q(query string) string {
	if !s.postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrate applies the embedded migrations not yet applied, each in a
// transaction, and refuses a database newer than this binary. A
// migration's version is its file's number, and the numbers may have
// gaps: a migration merged later with a lower number than one applied
// is applied then (each must stand on its own).
func (s *Store) migrate(ctx context.Context) error {
	known, err := migrationFiles(s.postgres)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return s.dbErr("create schema_version", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr("migrate", err)
	}
	defer tx.Rollback()
	if s.postgres {
		// One migrator at a time across HA nodes.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7261)`); err != nil {
			return s.dbErr("migrate lock", err)
		}
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return s.dbErr("read schema version", err)
	}
	for v := range applied {
		if _, ok := known[v]; !ok {
			return fmt.Errorf("%w: %s has schema version %d, which this keyward does not know; upgrade keyward", ErrSchemaNewer, s.where, v)
		}
	}
	versions := make([]int, 0, len(known))
	for v := range known {
		versions = append(versions, v)
	}
	sort.Ints(versions)
	for _, v := range versions {
		if !applied[v] {
			if err := s.applyMigration(ctx, tx, v, known[v]); err != nil {
				return err
			}
		}
	}
	return s.dbErr("migrate", tx.Commit())
}

// migrationFiles maps each embedded migration's number (0005_x.sql: 5)
// to its path.
func migrationFiles(postgres bool) (map[int]string, error) {
	dir := "migrations/sqlite"
	if postgres {
		dir = "migrations/postgres"
	}
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	known := map[int]string{}
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 || known[v] != "" {
			return nil, fmt.Errorf("migration %s: the name must start with a number of its own", e.Name())
		}
		known[v] = dir + "/" + e.Name()
	}
	return known, nil
}

func appliedVersions(ctx context.Context, tx *sql.Tx) (map[int]bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (s *Store) applyMigration(ctx context.Context, tx *sql.Tx, version int, path string) error {
	text, err := migrations.ReadFile(path)
	if err != nil {
		return err
	}
	for _, stmt := range strings.Split(string(text), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return s.dbErr("migration "+path, err)
		}
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO schema_version (version) VALUES (?)`), version)
	return s.dbErr("migrate", err)
}

// SchemaVersion is the database's schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v)
	return v, s.dbErr("read schema version", err)
}

// dbErr wraps a database error with ErrDatabase and what was being done.
func (s *Store) dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s: %s: %s", ErrDatabase, s.where, op, s.dsn.scrub(err.Error()))
}

func now() int64 { return time.Now().UnixMilli() }

// Audit appends an entry to the audit log: who, what, on what, never a value.
func (s *Store) Audit(ctx context.Context, action, subject, detail string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)`),
		now(), s.actor, action, subject, detail)
	return s.dbErr("audit", err)
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Subject string    `json:"subject"`
	Detail  string    `json:"detail,omitempty"`
}

// AuditLog returns the newest limit entries, oldest first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, actor, action, subject, detail FROM audit ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, s.dbErr("read audit log", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&at, &e.Actor, &e.Action, &e.Subject, &e.Detail); err != nil {
			return nil, s.dbErr("read audit log", err)
		}
		e.At = time.UnixMilli(at).UTC()
		out = append([]AuditEntry{e}, out...)
	}
	return out, s.dbErr("read audit log", rows.Err())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.dbErr("ping", s.db.PingContext(ctx))
}
