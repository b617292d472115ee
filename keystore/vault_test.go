package keystore_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"
)

func TestRecords(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		n, _ := node(t, newDSN(t))
		if err := n.Put(t.Context(), "db/password", []byte("x")); !errors.Is(err, keystore.ErrNoActiveKey) {
			t.Fatalf("put without a master key: %v", err)
		}
		e, err := n.Generate(t.Context(), keyring.Master, 256, hsm.PolicyLocal)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Put(t.Context(), "db/password", []byte("hunter2")); err != nil {
			t.Fatal(err)
		}
		if err := n.Put(t.Context(), "api/token", bytes.Repeat([]byte("a"), 1024)); err != nil {
			t.Fatal(err)
		}
		if err := n.Put(t.Context(), "db/password", []byte("correct horse")); err != nil {
			t.Fatal(err)
		}
		got, err := n.Get(t.Context(), "db/password")
		if err != nil || string(got) != "correct horse" {
			t.Fatalf("get after overwrite: %q %v", got, err)
		}
		recs, err := n.Store().Records(t.Context())
		if err != nil || len(recs) != 2 || recs[0].Name != "api/token" || recs[1].KeyVersion != 1 {
			t.Fatalf("records: %+v %v", recs, err)
		}
		if err := n.Delete(t.Context(), "api/token"); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Get(t.Context(), "api/token"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
		if err := n.Delete(t.Context(), "api/token"); !errors.Is(err, keystore.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		st, err := n.KeyStatuses(t.Context())
		if err != nil || len(st) != 1 || st[0].Encryptions != 3 || st[0].Records != 1 || st[0].State != keystore.StateActive || st[0].KCV != e.KCV {
			t.Fatalf("registry: %+v %v", st, err)
		}
		log, err := n.Store().AuditLog(t.Context(), 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, a := range log {
			actions = append(actions, a.Action+" "+a.Subject)
			if strings.Contains(a.Detail, "hunter2") || strings.Contains(a.Detail, "horse") {
				t.Fatal("audit log holds a value")
			}
		}
		want := "key.register keyward/master/v1,store.put db/password,store.put api/token,store.put db/password,store.delete api/token"
		if strings.Join(actions, ",") != want {
			t.Fatalf("audit log %v", actions)
		}
	})
}

// rawDB opens the store's database directly, to play the attacker.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite3"
	if strings.HasPrefix(dsn, "postgres") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func q(dsn, query string) string {
	if strings.HasPrefix(dsn, "postgres") {
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	return query
}

func TestTamperedRecords(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		n, _ := node(t, dsn)
		e, err := n.Generate(t.Context(), keyring.Master, 256, hsm.PolicyLocal)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			if err := n.Put(t.Context(), name, []byte("secret "+name)); err != nil {
				t.Fatalf("setup: put %s: %v", name, err)
			}
		}
		db := rawDB(t, dsn)
		var blob []byte
		if err := db.QueryRow(q(dsn, `SELECT ciphertext FROM records WHERE name = ?`), "a").Scan(&blob); err != nil || len(blob) < 40 {
			t.Fatalf("setup: read record a: %v (%d bytes)", err, len(blob))
		}

		for _, tc := range []struct {
			name  string
			write func() (sql.Result, error)
			want  error
			says  string
		}{
			{"flipped ciphertext bit", func() (sql.Result, error) {
				c := bytes.Clone(blob)
				c[len(c)-20] ^= 1
				return db.Exec(q(dsn, `UPDATE records SET ciphertext = ? WHERE name = 'a'`), c)
			}, hsm.ErrAuthentication, "master key v1, KCV " + e.KCV},
			{"moved to another name", func() (sql.Result, error) {
				return db.Exec(q(dsn, `UPDATE records SET ciphertext = ? WHERE name = 'b'`), blob)
			}, hsm.ErrAuthentication, `record "b"`},
			{"header names another version", func() (sql.Result, error) {
				c := bytes.Clone(blob)
				c[9] = 7
				return db.Exec(q(dsn, `UPDATE records SET ciphertext = ? WHERE name = 'a'`), c)
			}, keystore.ErrKeyMissing, "master key v7"},
			{"header names another KCV", func() (sql.Result, error) {
				c := bytes.Clone(blob)
				c[12] ^= 0xff
				return db.Exec(q(dsn, `UPDATE records SET ciphertext = ? WHERE name = 'a'`), c)
			}, keystore.ErrKeyMismatch, "this device's master v1 has KCV " + e.KCV},
			{"not a ciphertext", func() (sql.Result, error) {
				return db.Exec(q(dsn, `UPDATE records SET ciphertext = ? WHERE name = 'a'`), []byte("plain"))
			}, keystore.ErrFormat, "KWE1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, err := tc.write(); err != nil {
					t.Fatalf("tamper: %v", err)
				}
				name := "a"
				if strings.Contains(tc.name, "moved") {
					name = "b"
				}
				pt, err := n.Get(t.Context(), name)
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || pt != nil {
					t.Fatalf("got %q, %v; want %v saying %q", pt, err, tc.want, tc.says)
				}
			})
		}
	})
}

func TestReconcileRefusesOtherKeys(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		a, _ := node(t, dsn)
		ea, err := a.Import(t.Context(), keyring.Master, hexKey(1), hsm.PolicyLocal, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Put(t.Context(), "shared", []byte("v")); err != nil {
			t.Fatal(err)
		}

		// Node B with the same key: accepted, same version, reads A's data.
		_, tokB := softhsmtest.OpenTestToken(t)
		ringB := keyring.New(tokB)
		store, err := keystore.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		if _, err := keystore.NewVault(t.Context(), store, ringB, keystore.VaultOptions{}); !errors.Is(err, keystore.ErrKeyMissing) ||
			!strings.Contains(err.Error(), "master key v1 (KCV "+ea.KCV+") is registered") {
			t.Fatalf("node without the key: %v", err)
		}
		if _, err := ringB.ImportVersion(t.Context(), keyring.Master, 1, hexKey(1), hsm.PolicyLocal, ""); err != nil {
			t.Fatal(err)
		}
		b := nodeOn(t, dsn, tokB)
		if v, err := b.Get(t.Context(), "shared"); err != nil || string(v) != "v" {
			t.Fatalf("node B reads: %q %v", v, err)
		}

		// Node C holds a different key under the same label: refused.
		_, tokC := softhsmtest.OpenTestToken(t)
		ec, err := keyring.New(tokC).ImportVersion(t.Context(), keyring.Master, 1, hexKey(9), hsm.PolicyLocal, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = keystore.NewVault(t.Context(), store, keyring.New(tokC), keystore.VaultOptions{})
		want := fmt.Sprintf("master key v1: this device holds KCV %s, the database expects KCV %s", ec.KCV, ea.KCV)
		if !errors.Is(err, keystore.ErrKeyMismatch) || !strings.Contains(err.Error(), want) {
			t.Fatalf("node with another key: %v\nwant %q", err, want)
		}
	})
}

func TestRotateRewrapRetire(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		n, _ := node(t, newDSN(t))
		if _, err := n.Generate(t.Context(), keyring.Master, 256, hsm.PolicyLocal); err != nil {
			t.Fatal(err)
		}
		for i := range 120 {
			if err := n.Put(t.Context(), fmt.Sprintf("r%03d", i), []byte(fmt.Sprintf("value %d", i))); err != nil {
				t.Fatal(err)
			}
		}
		e2, err := n.Rotate(t.Context(), keyring.Master, 256, hsm.PolicyLocal)
		if err != nil || e2.Version != 2 {
			t.Fatalf("rotate: %+v %v", e2, err)
		}
		if err := n.Put(t.Context(), "new", []byte("under v2")); err != nil {
			t.Fatal(err)
		}
		if err := n.Retire(t.Context(), keyring.Master, 1); !errors.Is(err, keystore.ErrKeyInUse) || !strings.Contains(err.Error(), "120 records still use master key v1") {
			t.Fatalf("retire in use: %v", err)
		}
		if err := n.Retire(t.Context(), keyring.Master, 2); !errors.Is(err, keystore.ErrKeyInUse) {
			t.Fatalf("retire active: %v", err)
		}
		if err := n.CheckDestroy(t.Context(), keyring.Master, 1); !errors.Is(err, keystore.ErrKeyInUse) {
			t.Fatalf("destroy decrypt-only: %v", err)
		}
		// The library itself refuses: no caller can destroy a key that
		// still opens data, whatever it checked before.
		for _, v := range []int{1, 2} {
			if _, err := n.Destroy(t.Context(), keyring.Master, v); !errors.Is(err, keystore.ErrKeyInUse) {
				t.Fatalf("destroy master v%d (registered, not retired): %v", v, err)
			}
			if _, _, err := n.Ring().Get(t.Context(), keyring.Master, v); err != nil {
				t.Fatalf("master v%d gone after a refused destroy: %v", v, err)
			}
		}
		var calls []int
		done, err := n.Rewrap(t.Context(), 50, func(d, total int) {
			if total != 120 {
				t.Errorf("total %d", total)
			}
			calls = append(calls, d)
		})
		// Progress climbs by at most a batch to the total. (On PostgreSQL
		// two lanes share the rows, so a lane may find part of a batch
		// locked by the other: [50 70 120] is as right as [50 100 120].)
		steady := len(calls) > 0 && calls[len(calls)-1] == 120
		for i, c := range calls {
			prev := 0
			if i > 0 {
				prev = calls[i-1]
			}
			steady = steady && c > prev && c-prev <= 50
		}
		if err != nil || done != 120 || !steady || (!n.Store().Postgres() && fmt.Sprint(calls) != "[50 100 120]") {
			t.Fatalf("rewrap: %d %v %v", done, calls, err)
		}
		if again, err := n.Rewrap(t.Context(), 50, nil); again != 0 || err != nil {
			t.Fatalf("second rewrap did %d: %v", again, err)
		}
		for i := range 120 {
			v, err := n.Get(t.Context(), fmt.Sprintf("r%03d", i))
			if err != nil || string(v) != fmt.Sprintf("value %d", i) {
				t.Fatalf("record %d after rewrap: %q %v", i, v, err)
			}
		}
		recs, err := n.Store().Records(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.KeyVersion != 2 {
				t.Fatalf("%s still under v%d", r.Name, r.KeyVersion)
			}
		}
		if err := n.Retire(t.Context(), keyring.Master, 1); err != nil {
			t.Fatal(err)
		}
		if err := n.CheckDestroy(t.Context(), keyring.Master, 1); err != nil {
			t.Fatal(err)
		}
		if e, err := n.Destroy(t.Context(), keyring.Master, 1); err != nil || e.Label != "keyward/master/v1" {
			t.Fatalf("destroy retired v1: %+v %v", e, err)
		}
		if _, _, err := n.Ring().Get(t.Context(), keyring.Master, 1); !errors.Is(err, keyring.ErrNoKey) {
			t.Fatalf("master v1 after destroy: %v", err)
		}
		st, err := n.KeyStatuses(t.Context())
		if err != nil || len(st) != 2 || st[0].State != keystore.StateRetired || st[1].State != keystore.StateActive || st[1].Encryptions != 121 {
			t.Fatalf("registry: %+v %v", st, err)
		}
	})
}

func TestConcurrentRewrapsOnTwoNodes(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		a, _ := node(t, dsn)
		if _, err := a.Import(t.Context(), keyring.Master, hexKey(1), hsm.PolicyLocal, ""); err != nil {
			t.Fatal(err)
		}
		const records = 400
		for i := range records {
			if err := a.Put(t.Context(), fmt.Sprintf("r%04d", i), []byte(fmt.Sprintf("value %d", i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Import(t.Context(), keyring.Master, hexKey(2), hsm.PolicyLocal, ""); err != nil {
			t.Fatal(err)
		}

		_, tokB := softhsmtest.OpenTestToken(t)
		ringB := keyring.New(tokB)
		for v := 1; v <= 2; v++ {
			if _, err := ringB.ImportVersion(t.Context(), keyring.Master, v, hexKey(byte(v)), hsm.PolicyLocal, ""); err != nil {
				t.Fatal(err)
			}
		}
		b := nodeOn(t, dsn, tokB)
		if err := a.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}

		var wg sync.WaitGroup
		counts := make([]int, 2)
		errs := make([]error, 2)
		for i, n := range []*keystore.Vault{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				counts[i], errs[i] = n.Rewrap(t.Context(), 25, nil)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatal(errs)
		}
		if counts[0]+counts[1] != records {
			t.Fatalf("nodes rewrapped %d + %d records, want %d in all (none twice)", counts[0], counts[1], records)
		}
		st, err := a.KeyStatuses(t.Context())
		if err != nil || len(st) != 2 {
			t.Fatalf("registry: %+v %v", st, err)
		}
		if st[1].Encryptions != records {
			t.Fatalf("v2 encrypted %d times, want %d", st[1].Encryptions, records)
		}
		for i := range records {
			if v, err := b.Get(t.Context(), fmt.Sprintf("r%04d", i)); err != nil || string(v) != fmt.Sprintf("value %d", i) {
				t.Fatalf("record %d: %q %v", i, v, err)
			}
		}
		t.Logf("node A rewrapped %d, node B %d", counts[0], counts[1])
	})
}

func TestFailedWriteKeepsOldValue(t *testing.T) {
	backends(t, func(t *testing.T, newDSN func(testing.TB) string) {
		dsn := newDSN(t)
		n, tok := node(t, dsn)
		if _, err := n.Generate(t.Context(), keyring.Master, 256, hsm.PolicyLocal); err != nil {
			t.Fatal(err)
		}
		if err := n.Put(t.Context(), "cfg", []byte("old")); err != nil {
			t.Fatal(err)
		}
		// The database goes away mid-life.
		n.Store().Close()
		if err := n.Put(t.Context(), "cfg", []byte("new")); !errors.Is(err, keystore.ErrDatabase) {
			t.Fatalf("put on a closed database: %v", err)
		}
		n2 := nodeOn(t, dsn, tok)
		if v, err := n2.Get(t.Context(), "cfg"); err != nil || string(v) != "old" {
			t.Fatalf("after a failed write: %q %v", v, err)
		}
	})
}

func TestDatabaseErrors(t *testing.T) {
	dsn := dbtest.SQLite(t)
	s, err := keystore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != 5 {
		t.Fatalf("schema version %d: %v", v, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, dsn)
	if _, err := db.Exec(`INSERT INTO schema_version (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	if _, err := keystore.Open(t.Context(), dsn); !errors.Is(err, keystore.ErrSchemaNewer) || !strings.Contains(err.Error(), "upgrade keyward") {
		t.Fatalf("newer schema: %v", err)
	}
	_, err = keystore.Open(t.Context(), "postgres://keyward:secretpw@127.0.0.1:1/keyward?sslmode=disable&connect_timeout=2")
	if !errors.Is(err, keystore.ErrDatabase) || !strings.Contains(err.Error(), "cannot be reached") || strings.Contains(err.Error(), "secretpw") {
		t.Fatalf("dead database: %v", err)
	}
}
