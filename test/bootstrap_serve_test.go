package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// keyward serve does the bootstrap work itself, at start and while it
// runs: a container that starts it with key files and a token request
// mounted comes up with its keys and an admin token, and no file is left
// behind.

// bootDirs are the bootstrap directories of c's $KEYWARD_HOME.
func bootDirs(t *testing.T, c *cli) (keys, tokenFile string) {
	t.Helper()
	home := filepath.Join(c.dir, "home")
	keys = filepath.Join(home, "bootstrap", "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	return keys, filepath.Join(home, "etc", "keys", "token.json")
}

func writeBoot(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p+".tmp", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil { // whole, as an installer would drop it
		t.Fatal(err)
	}
	return p
}

func gone(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, os.ErrNotExist)
}

// bootToken reads token.json.
func bootToken(t *testing.T, p string) string {
	t.Helper()
	var tf struct {
		Token string `json:"token"`
	}
	b, err := os.ReadFile(p)
	if err != nil || json.Unmarshal(b, &tf) != nil || tf.Token == "" {
		t.Fatalf("token.json: %q %v", b, err)
	}
	return tf.Token
}

func TestServeBootstraps(t *testing.T) {
	c := newCLI(t)
	keys, tokenFile := bootDirs(t, c)
	master, join := randomHex(32), randomHex(32)
	c.secret(master)
	c.secret(join)
	files := []string{
		writeBoot(t, keys, "master.key", master+"\n"),
		writeBoot(t, keys, "join.key", join+"\n"),
		writeBoot(t, keys, "generate.token.json", `{"subject":"installer","expires_in":600}`),
	}
	s := c.serve(nil, "--bootstrap-token-delete-after", "4s")
	written := time.Now()
	for _, f := range files {
		if !gone(f) {
			t.Fatalf("%s is still there", f)
		}
	}
	if got, want := c.kcv("master"), goKCV(t, master); got != want {
		t.Fatalf("master KCV %s, the file's %s", got, want)
	}
	if got, want := c.kcv("join"), goKCV(t, join); got != want {
		t.Fatalf("join KCV %s, the file's %s", got, want)
	}
	admin := bootToken(t, tokenFile)
	if r := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"svc"}`); r["access_token"] == nil {
		t.Fatalf("create with the bootstrap token: %v", r)
	}
	if r := s.json(200, "GET", "/readyz", admin, nil); r["ready"] != true || fmt.Sprint(r["bootstrap"]) != "map[ok:true]" {
		t.Fatalf("readyz after bootstrap: %v", r)
	}
	within(t, 8*time.Second, "token.json deleted", func() bool { return gone(tokenFile) })
	if took := time.Since(written); took < 3*time.Second {
		t.Fatalf("token.json deleted after %v, before its delay", took)
	}

	// Dropped while serving: a token request is answered within seconds.
	writeBoot(t, keys, "generate.token.json", `{}`)
	within(t, 3*time.Second, "token.json for a request dropped while serving", func() bool { return !gone(tokenFile) })
	second := bootToken(t, tokenFile)
	if code, _ := s.call("GET", "/access/api/v1/tokens", second, nil); code != 200 {
		t.Fatalf("list with the second bootstrap token: %d", code)
	}
	// A key file that is not the node's key: refused by name, left as it
	// was, said by /readyz without its content.
	other := randomHex(32)
	c.secret(other)
	bad := writeBoot(t, keys, "master.key", other)
	var ready map[string]any
	within(t, 3*time.Second, "readyz reports the refused file", func() bool {
		_, b := s.call("GET", "/readyz", admin, nil)
		return json.Unmarshal(b, &ready) == nil && strings.Contains(fmt.Sprint(ready["bootstrap"]), bad)
	})
	if gone(bad) || !strings.Contains(fmt.Sprint(ready["bootstrap"]), "key mismatch") {
		t.Fatalf("a differing master.key: %v", ready["bootstrap"])
	}
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}

	// Killed before it could delete token.json: the next start deletes it
	// when its time comes.
	writeBoot(t, keys, "generate.token.json", `{}`)
	within(t, 3*time.Second, "a third token.json", func() bool {
		b, err := os.ReadFile(tokenFile)
		return err == nil && !strings.Contains(string(b), second)
	})
	third := time.Now()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	if gone(tokenFile) {
		t.Fatal("token.json gone with a killed server")
	}
	c.serve(nil, "--bootstrap-token-delete-after", "4s")
	within(t, 8*time.Second, "token.json deleted by the next start", func() bool { return gone(tokenFile) })
	if took := time.Since(third); took < 3*time.Second {
		t.Fatalf("token.json deleted %v after it was written, before its delay", took)
	}
}
