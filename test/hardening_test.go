package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	os.Chmod(db, 0o644)
	if r := c.run("", nil, "key", "list"); r.code != 0 || !strings.Contains(r.stderr, "keyward: warning: database "+db+" is accessible to group or others (mode 0644): chmod 600 "+db) {
		t.Fatalf("a 0644 database: %s", r)
	}
	os.Chmod(db, 0o600)

	pinFile := filepath.Join(c.dir, "pin")
	os.WriteFile(pinFile, append(c.tok.PIN(), '\n'), 0o644)
	env := []string{"KEYWARD_PIN=", "KEYWARD_PIN_SOURCE=file:" + pinFile}
	if r := c.run("", env, "key", "list"); r.code != 0 || !strings.Contains(r.stderr, "keyward: warning: PIN file "+pinFile+" is accessible to group or others (mode 0644): chmod 600 "+pinFile) {
		t.Fatalf("a 0644 PIN file: %s", r)
	}
	os.Chmod(pinFile, 0o600)
	if r := c.run("", env, "key", "list"); r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("a 0600 PIN file: %s", r)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "value")
	os.WriteFile(p, []byte(content), 0o600)
	return p
}
