package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --db takes a path, a sqlite: URL, a postgres:// URL or a key=value
// string; anything else is a usage error that never repeats the string,
// and no password reaches a message or a file name (issue 10, defects 3
// and 4).
func TestDatabaseStrings(t *testing.T) {
	c := newCLI(t)
	for _, s := range []string{"X9secretZ", "My5ecretZ", "Q5ecretZ", "U5ecretZ"} {
		c.secret(s) // run fails the test if any output holds one
	}
	for _, tc := range []struct {
		db   string
		code int
		want string
	}{
		{"mysql://root:My5ecretZ@db/keyward", 2, `"mysql:" is not a database keyward speaks`},
		{"host=127.0.0.1 port=1 password=X9secretZ connect_timeout=2", 1, "password=xxxxx"},
		{"postgres://kw@127.0.0.1:1/keyward?password=Q5ecretZ&connect_timeout=2", 1, "postgres://kw@127.0.0.1:1/keyward?connect_timeout=2&…"},
		{"postgres://kw:U5ecretZ@127.0.0.1:1/keyward?connect_timeout=2", 1, "postgres://kw@127.0.0.1:1/keyward"},
	} {
		r := c.run("", []string{"KEYWARD_DB=" + tc.db}, "store", "list")
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, tc.db) {
			t.Errorf("--db %q: want exit %d saying %q, got %s", tc.db, tc.code, tc.want, r)
		}
		if r := c.run("", nil, "--db", tc.db, "store", "list"); r.code != tc.code {
			t.Errorf("--db flag %q: %s", tc.db, r)
		}
	}
	// Nothing was created under any of those names.
	filepath.Walk(c.dir, func(p string, _ os.FileInfo, _ error) error {
		if strings.Contains(p, "5ecret") || strings.Contains(p, "secretZ") || strings.Contains(p, "mysql") || strings.Contains(p, "host=") {
			t.Errorf("created %s", p)
		}
		return nil
	})
}
