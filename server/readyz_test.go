package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/server"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

// readyNode is a node whose device operations are counted, with or
// without its master and join keys, and an admin token when it has them.
func readyNode(t *testing.T, keys bool) (*node.Node, *atomic.Int64, string) {
	t.Helper()
	tok := softhsmtest.NewTestToken(t)
	var ops atomic.Int64
	cfg := tok.Config()
	cfg.Observe = func(string, time.Duration, error) { ops.Add(1) }
	n, err := node.Open(t.Context(), node.Config{Device: cfg, DB: dbtest.SQLite(t), Home: t.TempDir(), MaxRecord: server.DefaultMaxRecord})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if !keys {
		return n, &ops, ""
	}
	for _, role := range []keyring.Role{keyring.Master, keyring.Join} {
		if _, err := n.GenerateKey(t.Context(), role, node.KeySpec{}); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "admin", Scope: []string{server.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return n, &ops, admin.AccessToken
}

func getReadyz(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/readyz", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// A flood of readiness probes costs about one check a second, not one
// each; anyone gets the verdict, an admin token the details too.
func TestReadyzCachedAndTerse(t *testing.T) {
	n, ops, admin := readyNode(t, true)
	ts := httptest.NewServer(server.New(n, server.Config{}).Handler())
	t.Cleanup(ts.Close)
	time.Sleep(1100 * time.Millisecond)
	before := ops.Load()
	if code, body := getReadyz(t, ts.URL, admin); code != 200 || body["device"].(map[string]any)["label"] == "" || body["warnings"] == nil {
		t.Fatalf("readyz for an admin: %d %v", code, body)
	}
	one := ops.Load() - before
	if one == 0 {
		t.Fatal("a readiness check made no device call: nothing to count")
	}
	time.Sleep(1100 * time.Millisecond)
	before = ops.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if code, body := getReadyz(t, ts.URL, ""); code != 200 || len(body) != 4 || body["warnings"] != nil {
					t.Errorf("readyz without credentials: %d %v", code, body)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	checks := float64(ops.Load()-before) / float64(one)
	if allowed := took.Seconds() + 2; checks > allowed {
		t.Fatalf("200 probes in %v ran %.1f readiness checks, want about one a second (%.0f at most)", took, checks, allowed)
	}
}

// A node whose registry has no active master or join key is not ready.
func TestReadyzNeedsActiveKeys(t *testing.T) {
	n, _, _ := readyNode(t, false)
	ts := httptest.NewServer(server.New(n, server.Config{ReadyzDetails: true}).Handler())
	t.Cleanup(ts.Close)
	code, body := getReadyz(t, ts.URL, "")
	keys, _ := body["keys"].(map[string]any)
	if code != http.StatusServiceUnavailable || body["ready"] != false || !strings.Contains(keys["error"].(string), "no active master or join key") {
		t.Fatalf("readyz without keys: %d %v", code, body)
	}
}
