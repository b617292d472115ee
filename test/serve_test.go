package test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
)

// newServedCLI is a node with master and join keys and an admin token.
func newServedCLI(t *testing.T) (*cli, string) {
	t.Helper()
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	return c, c.adminToken()
}

func TestServeStartsReadyAndStopsGracefully(t *testing.T) {
	c, admin := newServedCLI(t)
	s := c.serve(nil)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+$`).MatchString(s.url) {
		t.Fatalf("ready line names %q", s.url)
	}
	if !regexp.MustCompile(`keyward: warning: the device is (SoftHSM2|NSS softokn), a software token`).MatchString(s.stderr.String()) {
		t.Fatalf("no software-token warning at start:\n%s", s.stderr)
	}
	if n := strings.Count(s.stderr.String(), "keyward: serving on"); n != 1 {
		t.Fatalf("%d ready lines", n)
	}
	if m := s.json(200, "GET", "/healthz", "", nil); m["status"] != "ok" {
		t.Fatalf("healthz: %v", m)
	}
	ready := s.json(200, "GET", "/readyz", admin, nil)
	dev, _ := ready["device"].(map[string]any)
	if ready["ready"] != true || dev["software_token"] != true || ready["warnings"] == nil || dev["label"] != c.tok.Label {
		t.Fatalf("readyz for an admin: %v", ready)
	}
	// Anyone else gets the verdict alone: no device name, no reasons.
	if anon := s.json(200, "GET", "/readyz", "", nil); anon["ready"] != true || strings.Contains(fmt.Sprint(anon), c.tok.Label) || anon["warnings"] != nil {
		t.Fatalf("readyz without credentials: %v", anon)
	}

	// SIGTERM under load: every token the server answered for is committed.
	load := startTokenLoad(s, admin, "load", 4)
	time.Sleep(700 * time.Millisecond)
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, s.stderr)
	}
	got, _ := load.finish()
	if len(got) == 0 {
		t.Fatal("no token was created under load")
	}
	var list []map[string]any
	c.okJSON(&list, "--json", "token", "list", "--all", "--subject", "load")
	have := map[string]bool{}
	for _, r := range list {
		have[r["token_id"].(string)] = true
	}
	for _, iss := range got {
		if !have[iss.TokenID] {
			t.Fatalf("token %s was answered 200 but is not in the database after SIGTERM (%d of %d recorded)", iss.TokenID, len(list), len(got))
		}
	}
}

func TestServeListenRules(t *testing.T) {
	c, _ := newServedCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"--listen", ":0"}, "not a loopback address"},
		{[]string{"--tls-cert", "x.pem"}, "give both --tls-cert and --tls-key"},
		{[]string{"--client-ca", "ca.pem"}, "--client-ca needs TLS"},
		{[]string{"--listen", "nonsense"}, "--listen"},
	} {
		r := c.run("", nil, append([]string{"serve"}, tc.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("serve %v: want exit 2 saying %q, got %s", tc.args, tc.want, r)
		}
	}
	// The environment twin works like the flag.
	if r := c.run("", []string{"KEYWARD_LISTEN=0.0.0.0:0"}, "serve"); r.code != 2 || !strings.Contains(r.stderr, "not a loopback address") {
		t.Errorf("KEYWARD_LISTEN: %s", r)
	}
}

func TestServeAPI(t *testing.T) {
	c, admin := newServedCLI(t)
	c.ok("key", "generate", "--role", "signing", "--type", "ec-p256")
	s := c.serve(nil, "--max-record", "1024")
	var secrets []string // every token and value: never in the log
	defer func() {
		log := s.stderr.String()
		for _, sec := range append(secrets, admin) {
			if strings.Contains(log, sec) {
				t.Errorf("the server's output holds a secret %.12q…:\n%s", sec, log)
			}
		}
	}()

	// Credentials: none, malformed, in the URL, a bad token, a narrow scope.
	code, b, h := s.callH("POST", "/access/api/v1/tokens", "", `{"subject":"x"}`)
	if code != 401 || errorCode(b) != "UNAUTHORIZED" || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %s", code, b)
	}
	if code, b := s.call("GET", "/access/api/v1/tokens?access_token="+url.QueryEscape(admin), "", nil); code != 400 || !strings.Contains(string(b), "never in the URL") {
		t.Fatalf("token in the query: %d %s", code, b)
	}
	if code, b := s.call("GET", "/access/api/v1/tokens", "garbage", nil); code != 401 || errorCode(b) != "INVALID_TOKEN" {
		t.Fatalf("bad token: %d %s", code, b)
	}
	reader := s.json(200, "POST", "/access/api/v1/tokens", admin, map[string]any{"subject": "reader", "scope": "store:read introspect", "expires_in": 600})
	rt := reader["access_token"].(string)
	secrets = append(secrets, rt)
	if reader["token_type"] != "Bearer" || reader["expires_in"] != 600.0 || reader["scope"] != "store:read introspect" || reader["token_id"] == "" {
		t.Fatalf("create: %v", reader)
	}
	if code, b := s.call("POST", "/access/api/v1/tokens", rt, `{"subject":"x"}`); code != 403 || errorCode(b) != "FORBIDDEN" {
		t.Fatalf("non-admin create: %d %s", code, b)
	}
	// Bad input.
	for body, want := range map[string]string{
		`{"subject":"x","expires_in":-5}`:       "expires_in must be",
		`{"subject":"x","expires_in":"soon"}`:   "expires_in must be",
		`{"subject":"x","colour":"blue"}`:       `unknown field \"colour\"`,
		`{"subject":"x","refreshable":"maybe"}`: "refreshable must be",
		`{"subject":"x"`:                        "not one JSON object",
		`{"subject":{"a":1}}`:                   "must be a string",
		`{"subject":"x","alg":"none"}`:          "algorithm not allowed",
		`grant_type=password`:                   `grant_type \"password\" is not supported`,
	} {
		if code, b := s.call("POST", "/access/api/v1/tokens", admin, body); code != 400 || !strings.Contains(string(b), want) {
			t.Errorf("create %s: want 400 saying %q, got %d %s", body, want, code, b)
		}
	}
	if code, b := s.call("POST", "/access/api/v1/tokens", admin, `{"subject":"`+strings.Repeat("x", 70<<10)+`"}`); code != 413 {
		t.Errorf("a 70 KiB body: %d %s", code, b)
	}

	// Form bodies, refresh, reuse.
	g := s.json(200, "POST", "/access/api/v1/tokens", admin, "subject=ci&scope=read+write&refreshable=true&audience=keyward-test")
	access, refresh := g["access_token"].(string), g["refresh_token"].(string)
	secrets = append(secrets, access, refresh)
	intro := s.json(200, "POST", "/oauth2/introspect", rt, "token="+url.QueryEscape(access))
	if intro["active"] != true || intro["sub"] != "ci" || intro["scope"] != "read write" || intro["jti"] != g["token_id"] {
		t.Fatalf("introspect: %v", intro)
	}
	if intro := s.json(200, "POST", "/oauth2/introspect", rt, "token="+url.QueryEscape(access)+"&audience=elsewhere"); intro["active"] != false {
		t.Fatalf("introspect for another audience: %v", intro)
	}
	// A token for another audience does not authenticate here.
	if code, b := s.call("GET", "/access/api/v1/tokens/me", access, nil); code != 401 || !strings.Contains(string(b), "wrong audience") {
		t.Fatalf("a token for another audience: %d %s", code, b)
	}
	plain := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"plain","scope":"read"}`)["access_token"].(string)
	secrets = append(secrets, plain)
	if code, _ := s.call("POST", "/oauth2/introspect", plain, "token=x"); code != 403 {
		t.Fatalf("introspect without the introspect scope: %d", code)
	}
	if intro := s.json(200, "POST", "/oauth2/introspect", admin, "token=garbage"); len(intro) != 1 || intro["active"] != false {
		t.Fatalf("introspect garbage: %v", intro)
	}
	g2 := s.json(200, "POST", "/access/api/v1/tokens", "", "grant_type=refresh_token&scope=read&refresh_token="+url.QueryEscape(refresh))
	secrets = append(secrets, g2["access_token"].(string), g2["refresh_token"].(string))
	if g2["scope"] != "read" || g2["token_id"] == g["token_id"] || g2["refresh_token"] == refresh {
		t.Fatalf("refresh: %v", g2)
	}
	if intro := s.json(200, "POST", "/oauth2/introspect", admin, "token="+url.QueryEscape(access)); intro["active"] != false {
		t.Fatalf("the old access token after a refresh: %v", intro)
	}
	if code, b := s.call("POST", "/access/api/v1/tokens", "", map[string]any{"grant_type": "refresh_token", "refresh_token": refresh}); code != 400 || errorCode(b) != "INVALID_GRANT" {
		t.Fatalf("refresh token reused: %d %s", code, b)
	}
	if intro := s.json(200, "POST", "/oauth2/introspect", admin, "token="+url.QueryEscape(g2["access_token"].(string))); intro["active"] != false {
		t.Fatalf("reuse did not revoke the family: %v", intro)
	}
	if code, _ := s.call("POST", "/access/api/v1/tokens", "", "grant_type=refresh_token&scope=write&refresh_token="+url.QueryEscape(g2["refresh_token"].(string))); code != 400 {
		t.Fatalf("refresh of a revoked family: %d", code)
	}

	// Me, list, revoke by id (admin or holder) and by value.
	own := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"svc"}`)
	ot := own["access_token"].(string)
	secrets = append(secrets, ot)
	if me := s.json(200, "GET", "/access/api/v1/tokens/me", ot, nil); me["token_id"] != own["token_id"] || me["subject"] != "svc" {
		t.Fatalf("me: %v", me)
	}
	list := s.json(200, "GET", "/access/api/v1/tokens?subject=svc", admin, nil)
	if toks, _ := list["tokens"].([]any); len(toks) != 1 {
		t.Fatalf("list: %v", list)
	}
	// A non-admin lists its own subject's tokens, and no one else's.
	if mine := s.json(200, "GET", "/access/api/v1/tokens", ot, nil); len(mine["tokens"].([]any)) != 1 || mine["tokens"].([]any)[0].(map[string]any)["subject"] != "svc" {
		t.Fatalf("list by a non-admin: %v", mine)
	}
	if code, _ := s.call("GET", "/access/api/v1/tokens?username=reader", ot, nil); code != 403 {
		t.Fatalf("list of another subject's tokens by a non-admin: %d", code)
	}
	if code, _ := s.call("DELETE", "/access/api/v1/tokens/"+reader["token_id"].(string), ot, nil); code != 403 {
		t.Fatalf("a holder revoked another's token: %d", code)
	}
	if code, b := s.call("DELETE", "/access/api/v1/tokens/no-such-id", admin, nil); code != 204 {
		t.Fatalf("revoke unknown: %d %s", code, b)
	}
	s.json(200, "DELETE", "/access/api/v1/tokens/"+own["token_id"].(string), ot, nil)
	if code, _ := s.call("GET", "/access/api/v1/tokens/me", ot, nil); code != 401 {
		t.Fatalf("a revoked token still authenticates: %d", code)
	}
	byValue := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"v"}`)["access_token"].(string)
	secrets = append(secrets, byValue)
	s.json(200, "POST", "/access/api/v1/tokens/revoke", "", "token="+url.QueryEscape(byValue))
	if intro := s.json(200, "POST", "/oauth2/introspect", admin, "token="+url.QueryEscape(byValue)); intro["active"] != false {
		t.Fatalf("revoke by value: %v", intro)
	}
	if code, _ := s.call("POST", "/oauth2/revoke", "", "token=garbage"); code != 200 {
		t.Fatalf("RFC 7009 revoke of garbage: %d", code)
	}

	// Pairing: once.
	p := s.json(200, "POST", "/access/api/v1/pairing", admin, `{}`)
	pt := p["pairing_token"].(string)
	secrets = append(secrets, pt)
	if p["expires_in"] != 300.0 {
		t.Fatalf("pairing: %v", p)
	}
	m := s.json(200, "POST", "/access/api/v1/pairing/redeem", "", "pairing_token="+url.QueryEscape(pt))
	mt := m["master_token"].(string)
	secrets = append(secrets, mt)
	if code, b := s.call("POST", "/access/api/v1/pairing/redeem", "", "pairing_token="+url.QueryEscape(pt)); code != 409 || errorCode(b) != "ALREADY_USED" {
		t.Fatalf("second redemption: %d %s", code, b)
	}
	if code, _ := s.call("POST", "/access/api/v1/pairing", mt, `{}`); code != 403 {
		t.Fatalf("a master token without admin created a pairing token: %d", code)
	}
	// A spoofed Host sends no redeemer elsewhere: the URLs are the
	// server's public URL.
	spoofed, _ := http.NewRequest("POST", s.url+"/access/api/v1/pairing", strings.NewReader(`{}`))
	spoofed.Host = "evil.example"
	spoofed.Header.Set("Authorization", "Bearer "+admin)
	spoofed.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(spoofed)
	if err != nil {
		t.Fatal(err)
	}
	var sp map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&sp); err != nil || resp.StatusCode != 200 {
		t.Fatalf("pairing with a spoofed Host: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	secrets = append(secrets, sp["pairing_token"].(string))
	if ext := claimsOf(t, sp["pairing_token"].(string))["ext"].(string); strings.Contains(ext, "evil.example") || !strings.Contains(ext, s.url) {
		t.Fatalf("a pairing token made with Host evil.example: ext %s, want the URLs under %s", ext, s.url)
	}

	// Store and transit, with scopes.
	writer := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"w","scope":"store:write"}`)["access_token"].(string)
	secrets = append(secrets, writer, "s3cret-value-42")
	s.json(200, "PUT", "/api/v1/store/db/password", writer, []byte("s3cret-value-42"))
	if code, _ := s.call("PUT", "/api/v1/store/db/password", rt, []byte("x")); code != 403 {
		t.Fatalf("store:read wrote: %d", code)
	}
	if code, _ := s.call("GET", "/api/v1/store/db/password", writer, nil); code != 403 {
		t.Fatalf("store:write read: %d", code)
	}
	if code, b := s.call("GET", "/api/v1/store/db/password", rt, nil); code != 200 || string(b) != "s3cret-value-42" {
		t.Fatalf("get: %d %q", code, b)
	}
	if l := s.json(200, "GET", "/api/v1/store", rt, nil); len(l["records"].([]any)) != 1 {
		t.Fatalf("list: %v", l)
	}
	if code, b := s.call("PUT", "/api/v1/store/big", admin, make([]byte, 1025)); code != 413 || errorCode(b) != "TOO_LARGE" {
		t.Fatalf("a record over --max-record: %d %s", code, b)
	}
	if code, _ := s.call("GET", "/api/v1/store/missing", admin, nil); code != 404 {
		t.Fatalf("missing record: %d", code)
	}
	if code, _ := s.call("PUT", "/api/v1/store/a%1Bb", admin, []byte("x")); code != 400 {
		t.Fatalf("a control character in a name: %d", code)
	}
	s.json(200, "DELETE", "/api/v1/store/db/password", writer, nil)
	if code, _ := s.call("GET", "/api/v1/store/db/password", admin, nil); code != 404 {
		t.Fatalf("deleted record: %d", code)
	}
	ct := s.json(200, "POST", "/api/v1/encrypt", writer, map[string]any{"plaintext": base64.StdEncoding.EncodeToString([]byte("s3cret-value-42")), "context": "app"})["ciphertext"].(string)
	pl := s.json(200, "POST", "/api/v1/decrypt", rt, map[string]any{"ciphertext": ct, "context": "app"})
	if dec, err := base64.StdEncoding.DecodeString(pl["plaintext"].(string)); err != nil || string(dec) != "s3cret-value-42" {
		t.Fatalf("decrypt: %v (%v)", pl, err)
	}
	raw, err := base64.StdEncoding.DecodeString(ct)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1
	for _, body := range []map[string]any{{"ciphertext": ct, "context": "other"}, {"ciphertext": base64.StdEncoding.EncodeToString(raw), "context": "app"}} {
		if code, b := s.call("POST", "/api/v1/decrypt", rt, body); code != 400 || errorCode(b) != "BAD_CIPHERTEXT" {
			t.Fatalf("decrypt %v: %d %s", body["context"], code, b)
		}
	}
	if code, _ := s.call("POST", "/api/v1/encrypt", writer, map[string]any{"plaintext": base64.StdEncoding.EncodeToString(make([]byte, 1025))}); code != 413 {
		t.Fatalf("transit over --max-record: %d", code)
	}

	// JWKS and metadata, without credentials; an ES256 token verifies
	// with the published key.
	jwks := s.json(200, "GET", "/.well-known/jwks.json", "", nil)
	keys, _ := jwks["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["kid"] != "signing/v1" || keys[0].(map[string]any)["crv"] != "P-256" {
		t.Fatalf("jwks: %v", jwks)
	}
	meta := s.json(200, "GET", "/.well-known/oauth-authorization-server", "", nil)
	if meta["jwks_uri"] != s.url+"/.well-known/jwks.json" || meta["introspection_endpoint"] != s.url+"/oauth2/introspect" || meta["issuer"] != s.url {
		t.Fatalf("metadata: %v", meta)
	}
	es := s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"es","alg":"ES256"}`)["access_token"].(string)
	secrets = append(secrets, es)
	if intro := s.json(200, "POST", "/oauth2/introspect", admin, "token="+url.QueryEscape(es)); intro["active"] != true {
		t.Fatalf("ES256 token: %v", intro)
	}

	// Routes that do not exist answer in JSON too; unclean paths are refused.
	if code, b := s.call("GET", "/no/such/route", "", nil); code != 404 || errorCode(b) != "NOT_FOUND" {
		t.Fatalf("unknown route: %d %s", code, b)
	}
	if code, b, h := s.callH("POST", "/healthz", "", nil); code != 405 || errorCode(b) != "METHOD_NOT_ALLOWED" || h.Get("Allow") != "GET" {
		t.Fatalf("wrong method: %d %s %v", code, b, h)
	}
	if code, b := s.call("PUT", "/api/v1/store/a//b", admin, []byte("x")); code != 400 {
		t.Fatalf("unclean path: %d %s", code, b)
	}

	// Metrics name routes, devices, tokens, failures.
	code, mb := s.call("GET", "/metrics", "", nil)
	for _, want := range []string{
		`keyward_http_requests_total{code="200",route="POST /access/api/v1/tokens"}`,
		`keyward_http_request_duration_seconds_bucket{route="POST /oauth2/introspect"`,
		`keyward_device_operation_duration_seconds_count{op="seal"}`,
		`keyward_device_operation_duration_seconds_count{op="hmac"}`,
		`keyward_device_operation_errors_total{op="open"} 2`,
		`keyward_device_sessions_in_use `, `keyward_token_verify_cache_hits_total `,
		`keyward_tokens_issued_total{kind="access"}`, `keyward_tokens_issued_total{kind="master"} 1`,
		`keyward_tokens_refreshed_total 1`, `keyward_auth_failures_total `,
	} {
		if code != 200 || !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// One JSON access-log line per request, naming the caller's token id.
	found := false
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["route"] == "GET /access/api/v1/tokens/me" && e["status"] == 200.0 && e["token_id"] == own["token_id"] {
			found = true
		}
	}
	if !found {
		t.Fatalf("no access-log line for GET /access/api/v1/tokens/me by %v:\n%s", own["token_id"], s.stderr)
	}
}

// A database that hangs (a partition, not a refusal) costs a caller at most
// --request-timeout, answered 503 with Retry-After; it recovers by itself.
func TestServeHungDatabase(t *testing.T) {
	if os.Getenv(dbtest.EnvPGURL) != "" {
		t.Skipf("%s names an external PostgreSQL server; this test freezes PostgreSQL, so it runs only on a throwaway cluster of its own", dbtest.EnvPGURL)
	}
	pg := dbtest.NewCluster(t)
	c := newCLI(t)
	c.env = append(c.env, "KEYWARD_DB="+pg.URL())
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	admin := c.adminToken()
	s := c.serve(nil, "--request-timeout", "2s")
	s.json(200, "POST", "/access/api/v1/tokens", admin, `{"subject":"before"}`)

	pg.Freeze(t)
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/access/api/v1/tokens", `{"subject":"during"}`},
		{"GET", "/api/v1/store", ""},
	} {
		start := time.Now()
		code, b, h := s.callH(req.method, req.path, admin, req.body)
		took := time.Since(start)
		if code != 503 || h.Get("Retry-After") == "" || took > 8*time.Second {
			t.Fatalf("%s %s with PostgreSQL frozen: %d after %v (Retry-After %q): %s", req.method, req.path, code, took, h.Get("Retry-After"), b)
		}
	}
	if code, _ := s.call("GET", "/readyz", "", nil); code != 503 {
		t.Fatalf("readyz with PostgreSQL frozen: %d", code)
	}
	if m := s.json(200, "GET", "/healthz", "", nil); m["status"] != "ok" {
		t.Fatalf("healthz: %v", m)
	}

	pg.Thaw(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, b := s.call("POST", "/access/api/v1/tokens", admin, `{"subject":"after"}`)
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery 20 s after PostgreSQL resumed: %d %s", code, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
