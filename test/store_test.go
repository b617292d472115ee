package test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"
)

// backends runs f with KEYWARD_DB set to a fresh SQLite file and a fresh
// PostgreSQL schema.
func backends(t *testing.T, f func(t *testing.T, c *cli, dsn string)) {
	for _, b := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", dbtest.SQLite}, {"postgres", dbtest.Postgres}} {
		t.Run(b.name, func(t *testing.T) {
			c := newCLI(t)
			dsn := b.dsn(t)
			c.env = append(c.env, "KEYWARD_DB="+dsn)
			f(t, c, dsn)
		})
	}
}

func TestStoreVerbs(t *testing.T) {
	backends(t, func(t *testing.T, c *cli, dsn string) {
		c.fails(1, "no active master key", "store", "put", "db/password", "--from", "-")
		c.ok("key", "generate", "--role", "master")
		if r := c.run("hunter2-value", nil, "store", "put", "db/password", "--from", "-"); r.code != 0 {
			t.Fatal(r)
		}
		c.fails(2, "--from FILE", "store", "put", "x")
		c.fails(2, "exactly one record NAME", "store", "get")
		r := c.run("", nil, "store", "get", "db/password")
		if r.code != 0 || r.stdout != "hunter2-value" {
			t.Fatalf("get: %s", r)
		}
		out := filepath.Join(c.dir, "value.txt")
		c.ok("store", "get", "db/password", "--out", out)
		if st, err := os.Stat(out); err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("--out mode %v", st.Mode())
		}
		var recs []map[string]any
		c.okJSON(&recs, "--json", "store", "list")
		if len(recs) != 1 || recs[0]["name"] != "db/password" || recs[0]["key_version"] != 1.0 {
			t.Fatalf("list: %v", recs)
		}
		c.ok("store", "delete", "db/password")
		c.fails(1, `no such record: "db/password"`, "store", "get", "db/password")
		c.fails(1, "no such record", "store", "delete", "db/password")
	})
}

func TestEncryptDecryptFiles(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	plain := make([]byte, 200_000)
	rand.Read(plain)
	in := filepath.Join(c.dir, "backup.tar")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(c.dir, "backup.kw")
	c.ok("encrypt", "--in", in, "--out", enc, "--context", "nightly")
	dec := filepath.Join(c.dir, "restored.tar")
	c.ok("decrypt", "--in", enc, "--out", dec, "--context", "nightly")
	if got := c.readFile(dec); got != string(plain) {
		t.Fatal("round trip differs")
	}
	// Through pipes too.
	r := c.run(string(plain[:1000]), nil, "encrypt")
	r2 := c.run(r.stdout, nil, "decrypt")
	if r2.code != 0 || r2.stdout != string(plain[:1000]) {
		t.Fatalf("pipes: %d %d", r.code, r2.code)
	}

	ct := []byte(c.readFile(enc))
	bad := filepath.Join(c.dir, "bad.kw")
	for name, data := range map[string][]byte{
		"truncated":  ct[:len(ct)-1000],
		"bit flip":   append(append([]byte(nil), ct[:5000]...), append([]byte{ct[5000] ^ 1}, ct[5001:]...)...),
		"chunk only": ct[:29+65564],
	} {
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(c.dir, "out-"+strings.ReplaceAll(name, " ", "-"))
		r := c.run("", nil, "decrypt", "--in", bad, "--out", out, "--context", "nightly")
		if r.code != 3 || !strings.Contains(r.stderr, "message authentication failed") || !strings.Contains(r.stderr, "master key v1") {
			t.Fatalf("%s: %s", name, r)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Fatalf("%s: a failed decryption left %s", name, out)
		}
	}
	r = c.run("", nil, "decrypt", "--in", enc, "--out", filepath.Join(c.dir, "x"), "--context", "other")
	if r.code != 3 {
		t.Fatalf("wrong context: %s", r)
	}
	// Nothing reaches standard output from a failed decryption either.
	if err := os.WriteFile(bad, ct[:len(ct)-1000], 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", nil, "decrypt", "--in", bad, "--context", "nightly"); r.code != 3 || r.stdout != "" {
		t.Fatalf("stdout on failure: %d bytes, exit %d", len(r.stdout), r.code)
	}
}

// TestRotateRewrapKilled rotates, kills a rewrap with SIGKILL mid-way, and
// resumes it: nothing is lost and nothing is encrypted twice.
func TestRotateRewrapKilled(t *testing.T) {
	backends(t, func(t *testing.T, c *cli, dsn string) {
		c.ok("key", "generate", "--role", "master")
		const records = 1500
		seed(t, c, dsn, records)
		c.ok("key", "rotate", "--role", "master")

		cmd := exec.Command(binary, "store", "rewrap", "--batch", "20")
		cmd.Env = c.env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		db := openRaw(t, dsn)
		deadline := time.Now().Add(60 * time.Second)
		for {
			var n int
			err := db.QueryRow(`SELECT COUNT(*) FROM records WHERE key_version = 2`).Scan(&n)
			if err == nil && n >= 100 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rewrap made no progress (%d records moved, %v): %s", n, err, out.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait() // "signal: killed", or nil if it finished first (skipped below)
		c.printed("keyward store rewrap (killed)", out.String())
		var moved int
		if err := db.QueryRow(`SELECT COUNT(*) FROM records WHERE key_version = 2`).Scan(&moved); err != nil {
			t.Fatal(err)
		}
		if moved == records {
			t.Skip("rewrap finished before it could be killed")
		}
		t.Logf("killed after %d of %d records", moved, records)

		res := c.ok("store", "rewrap", "--batch", "100")
		if !strings.Contains(res, fmt.Sprintf("%d records rewrapped", records-moved)) {
			t.Fatalf("resume: %s (want %d)", res, records-moved)
		}
		var st []map[string]any
		c.okJSON(&st, "--json", "key", "list")
		if st[1]["encryptions"] != float64(records) {
			t.Fatalf("master v2 made %v encryptions, want exactly %d", st[1]["encryptions"], records)
		}
		for _, i := range []int{0, 1, records / 2, records - 1} {
			r := c.run("", nil, "store", "get", fmt.Sprintf("r%04d", i))
			if r.code != 0 || r.stdout != fmt.Sprintf("value-%d\n", i) {
				t.Fatalf("record %d after resume: %s", i, r)
			}
		}
		c.ok("key", "retire", "--role", "master", "--version", "1")
	})
}

// seed puts n records through the library, in this process, on the same
// token and database the CLI uses (a keyward process per record would take
// minutes).
func seed(t *testing.T, c *cli, dsn string, n int) {
	t.Helper()
	ctx := t.Context()
	tok, err := c.tok.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	store, err := keystore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	node, err := keystore.NewVault(ctx, store, keyring.New(tok), keystore.VaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := node.Put(ctx, fmt.Sprintf("r%04d", i), []byte(fmt.Sprintf("value-%d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func openRaw(t *testing.T, dsn string) *sql.DB {
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

// TestHANodes: two devices loaded with the same master key share one
// PostgreSQL database; a third device with another key is refused.
func TestHANodes(t *testing.T) {
	a := newCLI(t)
	dsn := dbtest.Postgres(t)
	a.env = append(a.env, "KEYWARD_DB="+dsn)
	master := randomHex(32)
	a.secret(master)
	masterFile := a.writeFile("master.hex", master)
	a.ok("key", "import", "--role", "master", "--from", masterFile)

	other := softhsmtest.NewTestToken(t)
	nodeB := append(other.Env(), "KEYWARD_PIN="+string(other.PIN()))
	r := a.run("", nodeB, "store", "list")
	if r.code != 3 || !strings.Contains(r.stderr, "is registered") || !strings.Contains(r.stderr, "not in token") {
		t.Fatalf("node B before its import: %s", r)
	}
	if r := a.run(master, nodeB, "key", "import", "--role", "master", "--from", "-"); r.code != 0 || !strings.Contains(r.stdout, "keyward/master/v1") {
		t.Fatalf("node B import: %s", r)
	}
	a.run("shared config", nil, "store", "put", "cfg", "--from", "-")
	if r := a.run("", nodeB, "store", "get", "cfg"); r.code != 0 || r.stdout != "shared config" {
		t.Fatalf("node B reads node A's record: %s", r)
	}
	// Rotation for a cluster: the same new key on every node, then rewrap anywhere.
	next := randomHex(32)
	a.secret(next)
	a.run(next, nil, "key", "import", "--role", "master", "--from", "-")
	if r := a.run("", nodeB, "store", "rewrap"); r.code != 3 {
		t.Fatalf("node B rewrap before it has v2: %s", r)
	}
	a.run(next, nodeB, "key", "import", "--role", "master", "--from", "-")
	if r := a.run("", nodeB, "store", "rewrap"); r.code != 0 || !strings.Contains(r.stdout, "1 records rewrapped") {
		t.Fatalf("node B rewrap: %s", r)
	}
	if r := a.run("", nil, "store", "get", "cfg"); r.stdout != "shared config" {
		t.Fatalf("node A reads after B's rewrap: %s", r)
	}

	third := softhsmtest.NewTestToken(t)
	nodeC := append(third.Env(), "KEYWARD_PIN="+string(third.PIN()))
	wrong := randomHex(32)
	a.secret(wrong)
	// Node C was loaded against another database: its master v1 is a
	// different key. Against the cluster's database it is refused at once.
	elsewhere := append(append([]string(nil), nodeC...), "KEYWARD_DB="+filepath.Join(a.dir, "elsewhere.db"))
	if r := a.run(wrong, elsewhere, "key", "import", "--role", "master", "--from", "-"); r.code != 0 || !strings.Contains(r.stdout, "keyward/master/v1") {
		t.Fatalf("node C import elsewhere: %s", r)
	}
	want := fmt.Sprintf("master key v1: this device holds KCV %s, the database expects KCV %s", goKCV(t, wrong), goKCV(t, master))
	for _, args := range [][]string{{"store", "get", "cfg"}, {"key", "list"}, {"store", "rewrap"}} {
		if r := a.run("", nodeC, args...); r.code != 3 || !strings.Contains(r.stderr, want) || r.stdout != "" {
			t.Fatalf("node C %v: %s\nwant exit 3 with %q", args, r, want)
		}
	}
	if r := a.run("", nodeC, "doctor"); r.code != 1 || !strings.Contains(r.stdout, "FAIL  device matches the key registry: key mismatch") {
		t.Fatalf("doctor on node C: %s", r)
	}
}

func TestNonceLimitWarning(t *testing.T) {
	c := newCLI(t)
	dsn := dbtest.SQLite(t)
	c.env = append(c.env, "KEYWARD_DB="+dsn)
	c.ok("key", "generate", "--role", "master")
	r := c.run("", nil, "key", "list")
	if strings.Contains(r.stderr, "warning") {
		t.Fatalf("warning on a fresh key: %s", r)
	}
	if _, err := openRaw(t, dsn).Exec(`UPDATE keys SET encryptions = 3000000000 WHERE version = 1`); err != nil {
		t.Fatal(err)
	}
	r = c.run("", nil, "key", "list")
	if r.code != 0 || !strings.Contains(r.stderr, "keyward/master/v1 has made 3000000000 encryptions") || !strings.Contains(r.stderr, "key rotate --role master") {
		t.Fatalf("no nonce-limit warning: %s", r)
	}
	var list []map[string]any
	c.okJSON(&list, "--json", "key", "list")
	if list[0]["near_nonce_limit"] != true {
		t.Fatalf("json: %v", list)
	}
}
