package server_test

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/server"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

const (
	putOp    = "PUT /api/v1/store/{name}"
	getOp    = "GET /api/v1/store/{name}"
	deleteOp = "DELETE /api/v1/store/{name}"
	storeAt  = "/api/v1/store/"
)

// storeClient is a spec-checking client on a fresh node whose master key
// v1 is key, so a test can write records as an older keyward did, with
// an admin token and the node's database.
func storeClient(t *testing.T) (c *specClient, admin, dsn string, key []byte) {
	t.Helper()
	dsn = dbtest.SQLite(t)
	n, err := node.Open(t.Context(), node.Config{Device: softhsmtest.NewTestToken(t).Config(), DB: dsn, Home: t.TempDir(), MaxRecord: server.DefaultMaxRecord})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	key = make([]byte, 32)
	rand.Read(key)
	if _, err := n.Import(t.Context(), keyring.Master, bytes.Clone(key), hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := n.GenerateKey(t.Context(), keyring.Join, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	tok, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "admin", Scope: []string{server.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	sp := loadSpec(t)
	c = &specClient{t: t, sp: sp, ops: sp.operations(), h: server.New(n, server.Config{}).Handler(), tried: map[string]bool{}}
	return c, tok.AccessToken, dsn, key
}

// errorMessage is the first message of an error answer.
func errorMessage(a specAnswer) string {
	l, _ := a.json["errors"].([]any)
	if len(l) == 0 {
		return ""
	}
	e, _ := l[0].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func listedNames(t *testing.T, c *specClient, admin string) []string {
	t.Helper()
	a := c.do("GET /api/v1/store", "GET", "/api/v1/store", admin, nil)
	l, _ := a.json["records"].([]any)
	names := []string{}
	for _, r := range l {
		m, _ := r.(map[string]any)
		names = append(names, m["name"].(string))
	}
	return names
}

// TestStoreNameRule: a PUT takes a name the rule allows and refuses, with
// a 400 that states the rule, one it does not — however the path spells
// it (a trailing "/", %2F, percent-escaped format characters).
func TestStoreNameRule(t *testing.T) {
	c, admin, _, _ := storeClient(t)
	for path, name := range map[string]string{
		"base/secret":          "base/secret",
		"a/b.c/d-e_f":          "a/b.c/d-e_f",
		"caf%C3%A9/%C3%BC":     "café/ü",
		"caf\u00e9/\u00fc":     "café/ü",
		"team%2Fdb%2Fpassword": "team/db/password",
	} {
		if a := c.do(putOp, "PUT", storeAt+path, admin, []byte("v")); a.status != http.StatusOK || a.json["name"] != name {
			t.Errorf("PUT %s: %d %s, want 200 naming %q", path, a.status, a.body, name)
		}
		if a := c.do(getOp, "GET", storeAt+path, admin, nil); a.status != http.StatusOK || string(a.body) != "v" {
			t.Errorf("GET %s: %d %s", path, a.status, a.body)
		}
	}
	for path, why := range map[string]string{
		"base/secret/":   `ends with "/"`,
		"base/secret%2F": `ends with "/"`,
		"%2Fabs":         `starts with "/"`,
		"x%2F%2Fy":       "empty segment",
		"x%2F..%2Fy":     `a ".." segment`,
		".%2Fz":          `a "." segment`,
		"x/%2E%2E/y":     `a ".." segment`,
		"a%1Bb":          "control character U+001B",
		"rlm%E2%80%8Fx":  "format character U+200F",
		"rlo%E2%80%AEx":  "format character U+202E",
		"%EF%BB%BFbom":   "format character U+FEFF",
		"ls%E2%80%A8x":   "separator U+2028",
		"not-utf8%FF":    "not valid UTF-8",
	} {
		a := c.do(putOp, "PUT", storeAt+path, admin, []byte("v"))
		msg := errorMessage(a)
		if a.status != http.StatusBadRequest || specErrorCode(a) != "BAD_REQUEST" || !strings.Contains(msg, why) ||
			!strings.Contains(msg, `segments separated by "/"`) {
			t.Errorf("PUT %s: %d %s, want 400 BAD_REQUEST saying %q and the rule", path, a.status, a.body, why)
		}
		if strings.ContainsAny(msg, "\x1b\u200f\u202e\ufeff\u2028") {
			t.Errorf("PUT %s: the message holds the name raw: %q", path, msg)
		}
	}
	// A path with empty, "." or ".." segments is refused before routing,
	// saying how to send a "/" that is part of a name.
	for _, path := range []string{"x//y", "x/../y", "./z", "x/."} {
		a := c.do(getOp, "GET", storeAt+path, admin, nil)
		if a.status != http.StatusBadRequest || !strings.Contains(errorMessage(a), "%2F") {
			t.Errorf("GET %s: %d %s, want 400 naming %%2F", path, a.status, a.body)
		}
	}
	if a := c.do(getOp, "GET", storeAt, admin, nil); a.status != http.StatusBadRequest || !strings.Contains(errorMessage(a), "empty") {
		t.Errorf("GET with no name: %d %s", a.status, a.body)
	}
	if got, want := listedNames(t, c, admin), []string{"a/b.c/d-e_f", "base/secret", "café/ü", "team/db/password"}; !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// escapeName is a record name as a path carries any of them (docs/API.md):
// percent-escaped, every "/" as %2F, and a name "." or ".." as %2E or
// %2E%2E.
func escapeName(name string) string {
	if name == "." || name == ".." {
		return strings.ReplaceAll(name, ".", "%2E")
	}
	return url.PathEscape(name)
}

// TestStoreLegacyNames: records an older keyward stored under names the
// rule refuses are listed, read and deleted through the API, their names
// escaped by escapeName.
func TestStoreLegacyNames(t *testing.T) {
	c, admin, dsn, key := storeClient(t)
	legacy := []string{"x//y", "x/../y", "./z", "/abs", "base/secret/", "..", ".", "rlm\u200fx", "ls\u2028x", "esc\x1b[2J"}
	for _, name := range legacy {
		dbtest.InsertRecord(t, dsn, key, 1, name, []byte("value of "+name))
	}
	listed := listedNames(t, c, admin)
	for _, name := range legacy {
		if !slices.Contains(listed, name) {
			t.Errorf("%q is not listed: %q", name, listed)
		}
		path := storeAt + escapeName(name)
		if a := c.do(getOp, "GET", path, admin, nil); a.status != http.StatusOK || string(a.body) != "value of "+name {
			t.Errorf("GET %s: %d %q", path, a.status, a.body)
		}
		if a := c.do(putOp, "PUT", path, admin, []byte("new")); a.status != http.StatusBadRequest {
			t.Errorf("PUT %s over a legacy record: %d %s, want 400", path, a.status, a.body)
		}
		if a := c.do(deleteOp, "DELETE", path, admin, nil); a.status != http.StatusOK || a.json["name"] != name || a.json["deleted"] != true {
			t.Errorf("DELETE %s: %d %s", path, a.status, a.body)
		}
		if a := c.do(getOp, "GET", path, admin, nil); a.status != http.StatusNotFound {
			t.Errorf("GET %s after DELETE: %d %s", path, a.status, a.body)
		}
	}
	if l := listedNames(t, c, admin); len(l) != 0 {
		t.Errorf("left after deleting them all: %q", l)
	}
}
