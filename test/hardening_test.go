package test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// TestFilesArePrivate: the SQLite database is created 0600 (its -wal and
// -shm files too), and an existing database or PIN file that group or
// others can read is used with a warning saying how to fix it.
func TestFilesArePrivate(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("store", "put", "db/password", "--from", writeTemp(t, "s3cret"))
	db := filepath.Join(c.dir, "home", "keyward.db")
	for _, p := range []string{db, db + "-wal", db + "-shm"} {
		st, err := os.Stat(p)
		if err != nil {
			if p == db {
				t.Fatal(err)
			}
			continue
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s is mode %04o, want 0600", p, st.Mode().Perm())
		}
	}
	if r := c.run("", nil, "key", "list"); strings.Contains(r.stderr, "warning") {
		t.Fatalf("a 0600 database is warned of: %s", r)
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", nil, "key", "list"); r.code != 0 || !strings.Contains(r.stderr, "keyward: warning: database "+db+" is accessible to group or others (mode 0644): chmod 600 "+db) {
		t.Fatalf("a 0644 database: %s", r)
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}

	pinFile := filepath.Join(c.dir, "pin")
	if err := os.WriteFile(pinFile, append(c.tok.PIN(), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"KEYWARD_PIN=", "KEYWARD_PIN_SOURCE=file:" + pinFile}
	if r := c.run("", env, "key", "list"); r.code != 0 || !strings.Contains(r.stderr, "keyward: warning: PIN file "+pinFile+" is accessible to group or others (mode 0644): chmod 600 "+pinFile) {
		t.Fatalf("a 0644 PIN file: %s", r)
	}
	if err := os.Chmod(pinFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := c.run("", env, "key", "list"); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("a 0600 PIN file: %s", r)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRecordNamesAndSizes: a record name with a control character or a
// bidirectional override is refused (exit 2); one already in the database
// (from an older keyward, or written straight to it) is listed escaped,
// never as raw terminal bytes. A value over --max-record (16 MiB by
// default) is refused before it is read whole.
func TestRecordNamesAndSizes(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	value := writeTemp(t, "v")
	for _, bad := range []string{"evil\x1b[2J", "bell\a", "del\x7f", "c1\u0085", "rtl\u202egnp.exe"} {
		name, err := strconv.Unquote(`"` + bad + `"`)
		if err != nil {
			t.Fatal(err)
		}
		c.fails(2, "invalid record name", "store", "put", name, "--from", value)
	}
	c.ok("store", "put", "db/ok", "--from", value)

	db := filepath.Join(c.dir, "home", "keyward.db")
	sqldb, err := sql.Open("sqlite3", db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqldb.Exec("INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) SELECT ?, key_version, ciphertext, created_at, updated_at FROM records WHERE name = 'db/ok'", "legacy\x1b]0;pwned\a"); err != nil {
		t.Fatal(err)
	}
	if err := sqldb.Close(); err != nil {
		t.Fatal(err)
	}
	out := c.ok("store", "list")
	if strings.ContainsAny(out, "\x1b\a") || !strings.Contains(out, `"legacy\x1b]0;pwned\a"`) {
		t.Fatalf("store list printed a name with control characters raw, or not escaped: %q", out)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(c.ok("--json", "store", "list")), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("--json store list: %v %v", recs, err)
	}
	// The legacy record can still be deleted by its name.
	c.ok("store", "delete", "legacy\x1b]0;pwned\a")

	small := writeTemp(t, strings.Repeat("x", 1001))
	c.fails(1, "over --max-record (1000 bytes)", "store", "put", "small", "--from", small, "--max-record", "1000")
	if r := c.run("", []string{"KEYWARD_MAX_RECORD=1001"}, "store", "put", "small", "--from", small); r.code != 0 {
		t.Fatalf("a value of exactly KEYWARD_MAX_RECORD: %s", r)
	}
	big := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(16<<20 + 1); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c.fails(1, "over --max-record (16777216 bytes)", "store", "put", "big", "--from", big)
}

// TestTokenLifetimes: a token lifetime under a second is a usage error
// (not a silent default of an hour), and no token, refresh grant or
// master token outlives --max-token-lifetime (one year by default).
func TestTokenLifetimes(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	c.fails(2, "--expires-in must be at least 1s, got 0s", "token", "create", "--subject", "svc", "--expires-in", "0s")
	c.fails(2, "--expires-in must be at least 1s", "token", "create", "--subject", "svc", "--expires-in", "-1h")
	c.fails(2, "--refresh-expires-in must be at least 1s", "token", "create", "--subject", "svc", "--refreshable", "--refresh-expires-in", "0s")
	c.fails(2, "--expires-in must be at least 1s", "pairing", "create", "--base-url", "https://a", "--exchange-url", "https://a/x", "--expires-in", "0s")
	c.fails(2, "--expires-in 8761h0m0s is over the longest token lifetime, 8760h0m0s; raise --max-token-lifetime", "token", "create", "--subject", "svc", "--expires-in", "8761h")
	c.fails(2, "refresh-expires-in 9000h0m0s is over the longest token lifetime", "token", "create", "--subject", "svc", "--refreshable", "--refresh-expires-in", "9000h")
	c.ok("token", "create", "--subject", "svc", "--expires-in", "8760h")
	c.fails(2, "over the longest token lifetime, 1h0m0s", "--max-token-lifetime", "1h", "token", "create", "--subject", "svc", "--expires-in", "2h")
	if r := c.run("", []string{"KEYWARD_MAX_TOKEN_LIFETIME=1h"}, "token", "create", "--subject", "svc", "--expires-in", "2h"); r.code != 2 {
		t.Fatalf("KEYWARD_MAX_TOKEN_LIFETIME=1h let a 2h token through: %s", r)
	}
	c.fails(2, "--max-token-lifetime must be at least 1s", "--max-token-lifetime", "0s", "token", "create", "--subject", "svc")

	// A master token over the limit is refused before the pairing token
	// is used up: it can still be redeemed within the limit.
	var p struct {
		PairingToken string `json:"pairing_token"`
	}
	c.okJSON(&p, "pairing", "create", "--base-url", "https://a", "--exchange-url", "https://a/x")
	if r := c.run(p.PairingToken, nil, "pairing", "redeem", "--expires-in", "9000h"); r.code != 2 || !strings.Contains(r.stderr, "over the longest token lifetime") {
		t.Fatalf("redeem for 9000h: %s", r)
	}
	if r := c.run(p.PairingToken, nil, "pairing", "redeem"); r.code != 0 {
		t.Fatalf("redeem within the limit after a refused one: %s", r)
	}
}

// TestRetireWarnsAndDecryptSaysRetired: retiring a master version warns
// that files encrypted under it become unreadable, and decrypting one then
// says the key was retired, not that it is missing from the device.
func TestRetireWarnsAndDecryptSaysRetired(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	enc := filepath.Join(c.dir, "backup.kw")
	c.ok("encrypt", "--in", writeTemp(t, "backup"), "--out", enc)
	c.ok("key", "rotate", "--role", "master")
	r := c.run("", nil, "key", "retire", "--role", "master", "--version", "1")
	if r.code != 0 || !strings.Contains(r.stderr, "keyward: warning: files encrypted under master key v1 cannot be decrypted any more") {
		t.Fatalf("key retire: %s", r)
	}
	r = c.fails(3, "which was retired: nothing encrypted under it can be decrypted", "decrypt", "--in", enc, "--out", filepath.Join(c.dir, "out"))
	if strings.Contains(r.stderr, "missing from the device") {
		t.Fatalf("decrypt under a retired key: %s", r)
	}
}

// TestTokenTextIsPrintable: the CLI has the library's input rules: a
// control or format character in a token's text is a usage error naming
// the flag and the code point; an empty --scope on refresh keeps the
// grant's scope.
func TestTokenTextIsPrintable(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	c.fails(2, "--subject holds U+001B", "token", "create", "--subject", "a\x1bb")
	c.fails(2, "--description holds U+000A", "token", "create", "--subject", "svc", "--description", "a\nX-Injected: 1")
	c.fails(2, "--scope holds U+202E", "token", "create", "--subject", "svc", "--scope", "read \u202eadmin")
	c.fails(2, "--audience holds U+2028", "token", "create", "--subject", "svc", "--audience", "a\u2028b")
	grant := c.createToken("--subject", "ci", "--scope", "read write", "--refreshable")
	var next issued
	c.okJSON(&next, "token", "refresh", "--refresh-token-file", c.writeFile("rt", grant.RefreshToken), "--scope", "")
	if next.Scope != "read write" {
		t.Fatalf("refresh with --scope '': scope %q, want the grant's", next.Scope)
	}
}
