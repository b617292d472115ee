package test

import (
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
)

// The cluster tests: nodes with a SoftHSM2 token each, one database, and
// keys that move from device to device only wrapped for a device whose
// security officer admitted it, taken only from a sender its operator
// accepted. No key's hex exists anywhere: every key is generated in a
// device.

type nodeInfo struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Fingerprint string `json:"fingerprint"`
	Holds       string `json:"holds"`
	Waiting     int    `json:"waiting"`
}

// nodeInit runs keyward node init (idempotent) and returns the node.
func (c *cli) nodeInit() nodeInfo {
	c.t.Helper()
	var n nodeInfo
	if err := json.Unmarshal([]byte(c.ok("--json", "node", "init")), &n); err != nil || n.ID == "" || len(n.Fingerprint) != 79 {
		c.t.Fatalf("node init: %+v %v", n, err)
	}
	return n
}

// soEnv gives a keyward process this node's security officer PIN.
func (c *cli) soEnv() []string { return []string{"KEYWARD_SO_PIN=" + string(c.tok.SOPIN())} }

// admit has holder's SO admit c's node, and c's operator accept holder.
func admit(t *testing.T, holder, c *cli) {
	t.Helper()
	h, n := holder.nodeInit(), c.nodeInit()
	if r := holder.run("", holder.soEnv(), "node", "admit", n.ID, "--expect-fingerprint", strings.ToLower(n.Fingerprint)); r.code != 0 ||
		!strings.Contains(r.stderr, "keyward node accept "+h.ID) {
		t.Fatalf("admit %s on %s: %s", n.ID, h.ID, r)
	}
	c.ok("node", "accept", h.ID, "--expect-fingerprint", h.Fingerprint)
}

// kcv is the KCV of role's newest version in c's device.
func (c *cli) kcv(role string) string {
	c.t.Helper()
	return strings.TrimSpace(c.ok("key", "kcv", "--role", role))
}

// within polls cond until it holds, failing the test after d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func ready(s *served) bool {
	code, _ := s.call("GET", "/readyz", "", nil)
	return code == 200
}

// Three nodes on PostgreSQL, each serving: A generates transferable keys
// and stores data; B and C join, are admitted on A, and within seconds
// hold the same keys, read A's data and accept A's tokens. A rotation on A
// reaches them while they serve. A node never admitted, and one revoked,
// receive nothing.
func TestClusterKeysMoveDeviceToDevice(t *testing.T) {
	dsn := dbtest.Postgres(t)
	ca, cb, cc, cd, ce := newCLI(t), newCLI(t), newCLI(t), newCLI(t), newCLI(t)
	for _, c := range []*cli{ca, cb, cc, cd, ce} {
		c.env = append(c.env, "KEYWARD_DB="+dsn)
	}
	ca.nodeInit()
	for _, args := range [][]string{
		{"--role", "master", "--transferable"}, {"--role", "join", "--transferable"},
		{"--role", "signing", "--type", "ec-p256", "--transferable"},
	} {
		if out := ca.ok(append([]string{"key", "generate"}, args...)...); !strings.Contains(out, "transferable") {
			t.Fatalf("key generate %v: %s", args, out)
		}
	}
	if r := ca.run("shared value", nil, "store", "put", "db/password", "--from", "-"); r.code != 0 {
		t.Fatalf("store put: %s", r)
	}
	a, b, c := ca.serve(nil), cb.serve(nil), cc.serve(nil)
	if ready(b) || ready(c) {
		t.Fatal("B or C ready before it holds the keys")
	}
	admin := ca.adminToken()
	hs := ca.createToken("--subject", "svc", "--audience", "svc@*").AccessToken
	es := ca.createToken("--subject", "svc", "--audience", "svc@*", "--alg", "ES256").AccessToken

	start := time.Now()
	admit(t, ca, cb)
	admit(t, ca, cc)
	took := within(t, 5*time.Second, "B and C ready", func() bool { return ready(b) && ready(c) })
	t.Logf("admit and accept on B and C, then every key usable there: %v (%v after the last accept)", time.Since(start).Round(time.Millisecond), took.Round(time.Millisecond))
	for _, role := range []string{"master", "join"} {
		want := ca.kcv(role)
		if got := cb.kcv(role); got != want {
			t.Fatalf("%s KCV on B %s, on A %s", role, got, want)
		}
		if got := cc.kcv(role); got != want {
			t.Fatalf("%s KCV on C %s, on A %s", role, got, want)
		}
	}
	for _, s := range []*served{b, c} {
		if code, body := s.call("GET", "/api/v1/store/db/password", admin, nil); code != 200 || string(body) != "shared value" {
			t.Fatalf("read A's record on %s: %d %q", s.url, code, body)
		}
		for _, tok := range []string{hs, es} {
			if r := s.json(200, "POST", "/oauth2/introspect", admin, "audience=svc@x&token="+url.QueryEscape(tok)); r["active"] != true {
				t.Fatalf("A's token on %s: %v", s.url, r)
			}
		}
	}
	if out := cb.ok("key", "list"); !strings.Contains(out, "received") || !strings.Contains(out, "transferable") {
		t.Fatalf("key list on B: %s", out)
	}

	// A rotation on A is in force on B and C while they serve.
	rotated := time.Now()
	ca.ok("key", "rotate", "--role", "join") // stays transferable, as the active version is
	v2 := ca.createToken("--subject", "svc", "--audience", "svc@*").AccessToken
	within(t, 5*time.Second, "join v2 on B and C", func() bool {
		for _, s := range []*served{b, c} {
			code, body := s.call("POST", "/oauth2/introspect", admin, "audience=svc@x&token="+url.QueryEscape(v2))
			if code != 200 || !strings.Contains(string(body), `"active":true`) {
				return false
			}
		}
		return true
	})
	reach := time.Since(rotated)
	t.Logf("join key rotated on A (keyward key rotate, a token signed with v2 on A): in force on B and C %v after the rotation began", reach.Round(time.Millisecond))
	if reach > 5*time.Second {
		t.Fatalf("the rotation took %v to reach B and C", reach)
	}
	if got, want := cc.kcv("join"), ca.kcv("join"); got != want {
		t.Fatalf("join v2 KCV on C %s, on A %s", got, want)
	}

	// D never admitted; E admitted, then revoked before it accepted A.
	d, e := cd.nodeInit(), ce.nodeInit()
	if r := ca.run("", ca.soEnv(), "node", "admit", e.ID, "--expect-fingerprint", e.Fingerprint); r.code != 0 {
		t.Fatalf("admit E: %s", r)
	}
	if out := ca.ok("node", "revoke", e.ID); !strings.Contains(out, "revoked") {
		t.Fatal(out)
	}
	an := ca.nodeInit()
	for _, x := range []*cli{cd, ce} {
		x.ok("node", "accept", an.ID, "--expect-fingerprint", an.Fingerprint)
		x.ok("node", "sync")
		var keys []any
		if err := json.Unmarshal([]byte(x.ok("--json", "key", "list")), &keys); err != nil || len(keys) != 0 {
			t.Fatalf("a pending or revoked node holds keys: %v %v", keys, err)
		}
	}
	var nodes []nodeInfo
	if err := json.Unmarshal([]byte(ca.ok("--json", "node", "list")), &nodes); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, n := range nodes {
		states[n.ID] = n.State
		if (n.ID == d.ID || n.ID == e.ID) && (n.Waiting != 0 || n.Holds != "") {
			t.Fatalf("node %s: %+v", n.ID, n)
		}
	}
	if states[d.ID] != "pending" || states[e.ID] != "revoked" || states[an.ID] != "admitted" && states[an.ID] != "pending" {
		t.Fatalf("node states: %v", states)
	}
	if !ready(a) {
		t.Fatal("A not ready")
	}
}

// Copies altered in the database are refused and leave nothing behind; a
// local key is never wrapped; a node takes nothing from a sender its
// operator did not accept.
func TestClusterRefusesAlteredCopies(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cluster.db")
	ca, cb, cc := newCLI(t), newCLI(t), newCLI(t)
	for _, c := range []*cli{ca, cb, cc} {
		c.env = append(c.env, "KEYWARD_DB="+db)
	}
	ca.nodeInit()
	ca.ok("key", "generate", "--role", "master", "--transferable")
	ca.ok("key", "generate", "--role", "join") // local: never leaves A
	bn, cn := cb.nodeInit(), cc.nodeInit()
	an := ca.nodeInit()
	for _, n := range []nodeInfo{bn, cn} {
		if r := ca.run("", ca.soEnv(), "node", "admit", n.ID, "--expect-fingerprint", n.Fingerprint); r.code != 0 {
			t.Fatalf("admit %s: %s", n.ID, r)
		}
	}
	raw, err := sql.Open("sqlite3", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	count := func(where string, args ...any) int {
		t.Helper()
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM transfers WHERE `+where, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`role = 'join'`); n != 0 {
		t.Fatalf("%d copies of the local join key", n)
	}
	if count(`to_node = ?`, bn.ID) != 1 || count(`to_node = ?`, cn.ID) != 1 {
		t.Fatal("one copy of the master key for each admitted node expected")
	}
	// B has not accepted A: its copy waits, unopened.
	if r := cb.run("", nil, "node", "sync"); r.code != 0 || !strings.Contains(r.stderr, "has not accepted node "+an.ID) {
		t.Fatalf("sync before accepting: %s", r)
	}
	// C's copy is replaced by B's, re-addressed to C; B's is bit-flipped.
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`DELETE FROM transfers WHERE to_node = ?`, cn.ID)
	mustExec(`INSERT INTO transfers (to_node, to_fingerprint, from_node, kind, role, version, kcv, policy, public_key, challenge, proof, wrapped, signature, created_at)
		SELECT ?, ?, from_node, kind, role, version, kcv, policy, public_key, challenge, proof, wrapped, signature, created_at FROM transfers WHERE to_node = ?`, cn.ID, cn.Fingerprint, bn.ID)
	mustExec(`UPDATE transfers SET wrapped = substr(wrapped, 1, 100) || X'00' || substr(wrapped, 102) WHERE to_node = ?`, bn.ID)
	// Accepting A syncs at once: each altered copy is refused (exit 3).
	for _, x := range []*cli{cc, cb} {
		r := x.run("", nil, "node", "accept", an.ID, "--expect-fingerprint", an.Fingerprint)
		if r.code != 3 || !strings.Contains(r.stderr, "forged or altered") || strings.Contains(r.stdout, "received") {
			t.Fatalf("accept and sync with an altered copy waiting: %s", r)
		}
		if out := x.ok("--json", "key", "list"); strings.TrimSpace(out) != "[]" {
			t.Fatalf("an altered copy left a key: %s", out)
		}
	}
	if n := count(`1 = 1`); n != 0 {
		t.Fatalf("%d refused copies left in the database", n)
	}
	// A sends fresh copies; both nodes take them, with A's KCV.
	if out := ca.ok("node", "sync"); !strings.Contains(out, "2 copies") {
		t.Fatalf("A's sync after the refusals: %s", out)
	}
	for _, x := range []*cli{cb, cc} {
		if out := x.ok("node", "sync"); !strings.Contains(out, "received master/v1") {
			t.Fatalf("sync: %s", out)
		}
		if got, want := x.kcv("master"), ca.kcv("master"); got != want {
			t.Fatalf("master KCV %s, A's %s", got, want)
		}
	}
	// A wrong fingerprint admits nothing and exits 3.
	if r := ca.run("", ca.soEnv(), "node", "admit", bn.ID, "--expect-fingerprint", strings.Repeat("AB12 ", 16)); r.code != 3 || !strings.Contains(r.stderr, "fingerprint mismatch") {
		t.Fatalf("admit with a wrong fingerprint: %s", r)
	}
}
