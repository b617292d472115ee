package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
)

type issued struct {
	AccessToken  string `json:"access_token"`
	TokenID      string `json:"token_id"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
}

func (c *cli) createToken(args ...string) issued {
	c.t.Helper()
	var iss issued
	out := c.ok(append([]string{"token", "create"}, args...)...)
	if err := json.Unmarshal([]byte(out), &iss); err != nil {
		c.t.Fatalf("token create printed %q: %v", out, err)
	}
	return iss
}

func TestTokenVerbs(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	c.fails(2, "--subject is required", "token", "create")
	iss := c.createToken("--subject", "ci", "--scope", "read write", "--audience", "artifactory@*", "--expires-in", "10m")
	if iss.TokenType != "Bearer" || iss.ExpiresIn != 600 || iss.Scope != "read write" || iss.RefreshToken != "" || len(strings.Split(iss.AccessToken, ".")) != 3 {
		t.Fatalf("create: %+v", iss)
	}
	tokFile := c.writeFile("token", iss.AccessToken+"\n")
	out := c.ok("token", "verify", "--token-file", tokFile, "--audience", "artifactory@node-7")
	var claims map[string]any
	if err := json.Unmarshal([]byte(out), &claims); err != nil {
		t.Fatalf("token verify printed %q: %v", out, err)
	}
	if claims["sub"] != "ci" || claims["scp"] != "read write" || claims["jti"] != iss.TokenID || claims["knd"] != "access" {
		t.Fatalf("verify: %v", claims)
	}
	// From standard input too.
	if r := c.run(iss.AccessToken, nil, "token", "verify", "--audience", "artifactory@x"); r.code != 0 {
		t.Fatalf("stdin: %s", r)
	}
	c.fails(3, "wrong audience", "token", "verify", "--token-file", tokFile)
	c.fails(3, "algorithm not allowed", "token", "verify", "--token-file", tokFile, "--audience", "artifactory@x", "--alg", "ES256")
	c.fails(2, "algorithm not allowed", "token", "verify", "--token-file", tokFile, "--audience", "artifactory@x", "--alg", "none")
	parts := strings.Split(iss.AccessToken, ".")
	c.fails(3, "bad signature", "token", "verify", "--token-file", c.writeFile("forged", parts[0]+"."+parts[1]+"."+strings.Repeat("A", len(parts[2]))), "--audience", "artifactory@x")

	var intro map[string]any
	c.okJSON(&intro, "token", "introspect", "--token-file", tokFile, "--audience", "artifactory@x")
	if intro["active"] != true || intro["scope"] != "read write" {
		t.Fatalf("introspect: %v", intro)
	}
	c.ok("token", "revoke", "--token-file", tokFile)
	c.fails(3, "revoked", "token", "verify", "--token-file", tokFile, "--audience", "artifactory@x")
	if out := c.ok("token", "introspect", "--token-file", tokFile, "--audience", "artifactory@x"); strings.TrimSpace(out) != "{\n  \"active\": false\n}" {
		t.Fatalf("introspect revoked: %s", out)
	}
	other := c.createToken("--subject", "svc")
	c.ok("token", "revoke", "--id", other.TokenID)
	c.fails(2, "give --id or --token-file", "token", "revoke")
	if out := c.ok("token", "list"); strings.Contains(out, other.TokenID) {
		t.Fatalf("list shows a revoked token without --all: %s", out)
	}
	var list []map[string]any
	c.okJSON(&list, "--json", "token", "list", "--all", "--subject", "svc")
	if len(list) != 1 || list[0]["token_id"] != other.TokenID || list[0]["revoked_at"] == nil {
		t.Fatalf("list: %v", list)
	}
	for _, l := range list {
		if raw, err := json.Marshal(l); err != nil || strings.Contains(string(raw), "eyJ") {
			t.Fatal("token list shows a token")
		}
	}

	// Asymmetric: a signing key, a JWKS, an ES256 token.
	c.ok("key", "generate", "--role", "signing", "--type", "ec-p256")
	var set struct{ Keys []map[string]string }
	c.okJSON(&set, "token", "jwks")
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != "signing/v1" || set.Keys[0]["kty"] != "EC" {
		t.Fatalf("jwks: %v", set)
	}
	es := c.createToken("--subject", "svc", "--alg", "ES256")
	if r := c.run(es.AccessToken, nil, "token", "verify"); r.code != 0 {
		t.Fatalf("ES256 verify: %s", r)
	}
	// Rotation: v2 signs, v1 stays published while its token lives;
	// retired, a key pair signs no more; destroyed, its tokens fail.
	c.ok("key", "generate", "--role", "signing", "--type", "ec-p256")
	c.okJSON(&set, "token", "jwks")
	if len(set.Keys) != 2 {
		t.Fatalf("jwks after a second key pair, with a live token of the first: %v", set)
	}
	c.fails(1, "retire it first", "key", "destroy", "--role", "signing", "--version", "1", "--yes")
	for _, v := range []string{"2", "1"} {
		if r := c.run("", nil, "key", "retire", "--role", "signing", "--version", v); r.code != 0 || !strings.Contains(r.stderr, "stays in the JWKS") {
			t.Fatalf("key retire --role signing --version %s: %s", v, r)
		}
	}
	c.fails(1, "unretired signing key pair", "token", "create", "--subject", "x", "--alg", "ES256")
	c.okJSON(&set, "token", "jwks")
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != "signing/v1" {
		t.Fatalf("jwks with v1 retired but its token live and v2 retired unused: %v", set)
	}
	if r := c.run("", nil, "key", "destroy", "--role", "signing", "--version", "1", "--yes"); r.code != 0 || !strings.Contains(r.stderr, "stop verifying at once") {
		t.Fatalf("destroy a retired key pair with a live token: %s", r)
	}
	c.fails(3, "", "token", "verify", "--token-file", c.writeFile("es", es.AccessToken))
	c.fails(2, "algorithm not allowed", "token", "create", "--subject", "x", "--alg", "none")
}

// concurrently runs n keyward processes at once with the same stdin and
// returns how many exited 0.
func concurrently(t *testing.T, c *cli, n int, stdin string, args ...string) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(binary, args...)
			cmd.Env = c.env
			cmd.Stdin = strings.NewReader(stdin)
			out, err := cmd.CombinedOutput()
			c.printed(fmt.Sprintf("keyward %v", args), string(out))
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

func TestSingleUseAcrossProcesses(t *testing.T) {
	backends(t, func(t *testing.T, c *cli, dsn string) {
		c.ok("key", "generate", "--role", "join")
		grant := c.createToken("--subject", "ci", "--scope", "read write", "--refreshable")
		if n := concurrently(t, c, 8, grant.RefreshToken, "token", "refresh"); n != 1 {
			t.Fatalf("%d of 8 concurrent refresh processes succeeded, want 1", n)
		}
		// The losers were reuses: the whole family is revoked, the winner's too.
		var list []map[string]any
		c.okJSON(&list, "--json", "token", "list", "--subject", "ci")
		if len(list) != 0 {
			t.Fatalf("family not revoked after reuse: %v", list)
		}

		var p map[string]any
		c.okJSON(&p, "pairing", "create", "--base-url", "https://a.example", "--exchange-url", "https://a.example/exchange")
		if p["expires_in"] != 300.0 {
			t.Fatalf("pairing: %v", p)
		}
		pt := p["pairing_token"].(string)
		if n := concurrently(t, c, 10, pt, "pairing", "redeem"); n != 1 {
			t.Fatalf("%d of 10 concurrent redemptions succeeded, want 1", n)
		}
		r := c.run(pt, nil, "pairing", "redeem")
		if r.code != 3 || !strings.Contains(r.stderr, "revoked") {
			t.Fatalf("redeem again: %s", r)
		}
		c.fails(2, "--exchange-url is required", "pairing", "create", "--base-url", "https://a.example")
		var p2 map[string]any
		c.okJSON(&p2, "pairing", "create", "--base-url", "https://a", "--exchange-url", "http://b/x")
		c.ok("pairing", "revoke", "--id", p2["token_id"].(string))
		if r := c.run(p2["pairing_token"].(string), nil, "pairing", "redeem"); r.code != 3 {
			t.Fatalf("redeem revoked: %s", r)
		}
	})
}

func TestRefreshVerb(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	grant := c.createToken("--subject", "ci", "--scope", "read write", "--refreshable")
	rt := c.writeFile("rt", grant.RefreshToken)
	c.fails(2, "scope may only be narrowed", "token", "refresh", "--refresh-token-file", rt, "--scope", "admin")
	var next issued
	c.okJSON(&next, "token", "refresh", "--refresh-token-file", rt, "--scope", "read")
	if next.Scope != "read" || next.RefreshToken == "" || next.TokenID == grant.TokenID {
		t.Fatalf("refresh: %+v", next)
	}
	c.fails(3, "revoked", "token", "verify", "--token-file", c.writeFile("old", grant.AccessToken))
	if r := c.run(next.AccessToken, nil, "token", "verify"); r.code != 0 {
		t.Fatalf("new token: %s", r)
	}
}

func TestBootstrap(t *testing.T) {
	c := newCLI(t)
	c.env = append(c.env, "KEYWARD_DB="+dbtest.SQLite(t))
	home := filepath.Join(c.dir, "home")
	keys := filepath.Join(home, "bootstrap", "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	master, join := randomHex(32), randomHex(32)
	c.secret(master)
	c.secret(join)
	writeAt(t, filepath.Join(keys, "master.key"), master+"\n")
	writeAt(t, filepath.Join(keys, "join.key"), join+"\n")
	req := filepath.Join(keys, "generate.token.json")

	writeAt(t, req, `{"expires_in": 1000}`)
	r := c.run("", nil, "bootstrap", "--token-delete-after", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "expires_in must be 1 to 900 seconds") {
		t.Fatalf("a too long request: %s", r)
	}
	if _, err := os.Stat(req); err != nil {
		t.Fatal("a refused request file was removed")
	}
	// The keys were imported by that run already, and removed.
	for _, f := range []string{"master.key", "join.key"} {
		if _, err := os.Stat(filepath.Join(keys, f)); !os.IsNotExist(err) {
			t.Fatalf("%s not removed after import", f)
		}
	}
	if !strings.Contains(r.stdout, "KCV "+goKCV(t, master)) || !strings.Contains(r.stdout, "KCV "+goKCV(t, join)) {
		t.Fatalf("bootstrap key import: %s", r)
	}

	writeAt(t, req, `{"subject": "installer", "expires_in": 600}`)
	tokenJSON := filepath.Join(home, "etc", "keys", "token.json")
	done := make(chan result)
	go func() { done <- c.run("", nil, "bootstrap", "--token-delete-after", "2s") }()
	var tf struct {
		Token     string    `json:"token"`
		TokenID   string    `json:"token_id"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		raw, err := os.ReadFile(tokenJSON)
		if err == nil && json.Unmarshal(raw, &tf) == nil && tf.Token != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token.json never appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := os.Stat(tokenJSON); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("token.json mode %v", st.Mode())
	}
	// The request goes after token.json is in place (so a crash between
	// the two loses no request).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(req); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Error("generate.token.json not deleted")
			break
		}
	}
	if d := time.Until(tf.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Errorf("expires_at %v", tf.ExpiresAt)
	}
	var claims map[string]any
	r2 := c.run(tf.Token, nil, "token", "verify", "--audience", "keyward@some-node")
	if err := json.Unmarshal([]byte(r2.stdout), &claims); r2.code != 0 || err != nil || claims["sub"] != "installer" || claims["scp"] != "admin" || claims["knd"] != "bootstrap" {
		t.Fatalf("bootstrap token: %s (%v)", r2, err)
	}
	res := <-done
	if res.code != 0 || !strings.Contains(res.stdout, "deleted "+tokenJSON) {
		t.Fatalf("bootstrap run: %s", res)
	}
	if strings.Contains(res.stdout+res.stderr, tf.Token) {
		t.Fatal("bootstrap printed the token")
	}
	if _, err := os.Stat(tokenJSON); !os.IsNotExist(err) {
		t.Fatal("token.json still there after --token-delete-after")
	}
}

// waitForTokenFile waits until token.json holds a token other than not;
// if it never does, the test fails with what the bootstrap printed.
func waitForTokenFile(t *testing.T, path, not string, printed *lockedBuffer) (tf struct {
	Token   string `json:"token"`
	TokenID string `json:"token_id"`
}) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(raw, &tf) == nil && tf.Token != "" && tf.TokenID != not {
			return tf
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never held a new token; bootstrap printed:\n%s", path, printed)
	return tf
}

func TestBootstrapWatch(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	home := filepath.Join(c.dir, "home")
	keys := filepath.Join(home, "bootstrap", "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	tokenJSON := filepath.Join(home, "etc", "keys", "token.json")

	cmd := exec.Command(binary, "bootstrap", "--watch", "--token-delete-after", "1h")
	cmd.Env = c.env
	var out lockedBuffer // read while it runs, when a wait fails
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Two requests, each answered while it watches; the second is
	// dropped as soon as token.json appears, while the first request may
	// not be removed yet: it must be answered, not removed unread.
	writeBoot(t, keys, "generate.token.json", "{}")
	first := waitForTokenFile(t, tokenJSON, "", &out)
	writeBoot(t, keys, "generate.token.json", `{"subject":"second"}`)
	second := waitForTokenFile(t, tokenJSON, first.TokenID, &out)
	var claims map[string]any
	r := c.run(second.Token, nil, "token", "verify", "--audience", "keyward@n1")
	if err := json.Unmarshal([]byte(r.stdout), &claims); r.code != 0 || err != nil || claims["sub"] != "second" || claims["knd"] != "bootstrap" {
		t.Fatalf("second bootstrap token: %s (%v)", r, err)
	}

	// Interrupted, it stops watching and removes token.json at once
	// rather than leave an admin token behind for the hour.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bootstrap --watch after SIGINT: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("bootstrap --watch did not stop on SIGINT:\n%s", out.String())
	}
	if _, err := os.Stat(tokenJSON); !os.IsNotExist(err) {
		t.Fatalf("token.json left behind after SIGINT:\n%s", out.String())
	}
	c.printed("keyward bootstrap --watch", out.String())
	if strings.Contains(out.String(), first.Token) || strings.Contains(out.String(), second.Token) {
		t.Fatal("bootstrap printed a token")
	}
}
