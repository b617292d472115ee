package test

import (
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
)

// TestRecordNameRule (issue 20): keyward store put refuses, stating the
// rule, every name the API could not carry as it is; records an older
// keyward stored under such names are listed, read, renamed (as
// docs/OPERATIONS.md says) and deleted by the CLI, and through the API
// with their names percent-escaped.
func TestRecordNameRule(t *testing.T) {
	c := newCLI(t)
	key := randomHex(32)
	c.secret(key)
	c.ok("key", "import", "--role", "master", "--from", c.writeFile("master.hex", key+"\n"), "--remove-source")
	c.ok("key", "generate", "--role", "join")
	value := writeTemp(t, "v")
	for _, bad := range []string{"x//y", "x/../y", "./z", "/abs", "base/secret/", "rlm\u200fx", "ls\u2028x", "\ufeffbom"} {
		r := c.fails(2, `segments separated by "/"`, "store", "put", bad, "--from", value)
		if strings.ContainsAny(r.stderr, "\u200f\u2028\ufeff") {
			t.Errorf("store put %q printed the name raw: %q", bad, r.stderr)
		}
	}
	c.ok("store", "put", "café/ü", "--from", value)

	raw, err := hex.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	legacy := []string{"x//y", "x/../y", "./z", "/abs", "base/secret/", "..", "rlm\u200fx"}
	for _, name := range legacy {
		dbtest.InsertRecord(t, filepath.Join(c.dir, "home", "keyward.db"), raw, 1, name, []byte("value of "+name))
	}
	var recs []struct{ Name string }
	c.okJSON(&recs, "--json", "store", "list")
	if len(recs) != len(legacy)+1 {
		t.Fatalf("store list: %v", recs)
	}
	for _, name := range legacy {
		if r := c.run("", nil, "store", "get", name); r.code != 0 || r.stdout != "value of "+name {
			t.Errorf("store get %q: %s", name, r)
		}
	}
	// The rename of docs/OPERATIONS.md.
	tmp := filepath.Join(c.dir, "value")
	c.ok("store", "get", "x//y", "--out", tmp)
	c.ok("store", "put", "x/y", "--from", tmp)
	c.ok("store", "delete", "x//y")
	os.Remove(tmp)
	if got := c.ok("store", "get", "x/y"); got != "value of x//y" {
		t.Errorf("renamed x//y to x/y: %q", got)
	}
	c.ok("store", "delete", "x/../y")

	s := c.serve(nil)
	admin := c.adminToken()
	l := s.json(200, "GET", "/api/v1/store", admin, nil)["records"].([]any)
	var listed []string
	for _, r := range l {
		listed = append(listed, r.(map[string]any)["name"].(string))
	}
	if want := []string{"..", "./z", "/abs", "base/secret/", "café/ü", "rlm\u200fx", "x/y"}; !slices.Equal(listed, want) {
		t.Fatalf("listed %q, want %q", listed, want)
	}
	for _, name := range []string{"./z", "/abs", "base/secret/", "..", "rlm\u200fx"} {
		path := "/api/v1/store/" + url.PathEscape(name)
		if name == ".." {
			path = "/api/v1/store/%2E%2E"
		}
		if code, b := s.call("GET", path, admin, nil); code != 200 || string(b) != "value of "+name {
			t.Errorf("GET %s: %d %q", path, code, b)
		}
		if code, b := s.call("PUT", path, admin, []byte("new")); code != 400 || errorCode(b) != "BAD_REQUEST" {
			t.Errorf("PUT %s: %d %s, want 400", path, code, b)
		}
		s.json(200, "DELETE", path, admin, nil)
	}
	if code, b := s.call("PUT", "/api/v1/store/base/secret%2F", admin, []byte("v")); code != 400 || !strings.Contains(string(b), `ends with \"/\"`) {
		t.Errorf("PUT base/secret%%2F: %d %s, want 400 saying it ends with \"/\"", code, b)
	}
	if l := s.json(200, "GET", "/api/v1/store", admin, nil)["records"].([]any); len(l) != 2 {
		t.Errorf("left: %v", l)
	}
}
