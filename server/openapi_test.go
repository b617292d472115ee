package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
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

// The package's TestMain (main_test.go) cleans up the SoftHSM2 home and
// the PostgreSQL cluster.

// openAPINode opens a node on a fresh SoftHSM2 token and SQLite database
// with master and join keys and three signing key pairs (one per JWK
// shape, each the device can make), and returns it with an admin token.
func openAPINode(t *testing.T) (*node.Node, string) {
	t.Helper()
	tok := softhsmtest.NewTestToken(t)
	n, err := node.Open(t.Context(), node.Config{Device: tok.Config(), DB: dbtest.SQLite(t), Home: t.TempDir(), MaxRecord: server.DefaultMaxRecord})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for _, role := range []keyring.Role{keyring.Master, keyring.Join} {
		if _, err := n.GenerateKey(t.Context(), role, node.KeySpec{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []hsm.KeyPairType{hsm.ECP256, hsm.Ed25519, hsm.RSA2048} {
		_, err := n.GenerateKey(t.Context(), keyring.Signing, node.KeySpec{Type: kind})
		if errors.Is(err, hsm.ErrNotSupported) {
			// Said as a skipped subtest, so the output shows what the
			// spec checks went without.
			t.Run("signing-key-"+string(kind), func(t *testing.T) { t.Skip(err) })
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	admin, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "admin", Scope: []string{server.ScopeAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	return n, admin.AccessToken
}

// TestOpenAPIRoutes checks that docs/openapi.yaml describes exactly the
// routes the server serves, and is well formed where a reader relies on it.
func TestOpenAPIRoutes(t *testing.T) {
	sp := loadSpec(t)
	n, _ := openAPINode(t)
	srv := server.New(n, server.Config{})

	served := map[string]bool{}
	for _, r := range srv.Routes() {
		served[routeToSpec(r)] = true
	}
	ops := sp.operations()
	for r := range served {
		if ops[r] == nil {
			t.Errorf("route %q is served but not in %s", r, specPath)
		}
	}
	for r := range ops {
		if !served[r] {
			t.Errorf("%s documents %q, which the server does not serve", specPath, r)
		}
	}
	if len(served) != len(srv.Routes()) {
		t.Errorf("Routes() lists a pattern twice: %v", srv.Routes())
	}

	walkSpecRefs(sp.doc, func(ref string) {
		if _, err := sp.resolve(ref); err != nil {
			t.Errorf("%s: %v", specPath, err)
		}
	})
	ids := map[string]string{}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for key, op := range ops {
		id, _ := op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", key)
		} else if other, dup := ids[id]; dup {
			t.Errorf("operationId %q is used by %s and %s", id, key, other)
		}
		ids[id] = key
		if _, err := sp.security(op); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		// Every path parameter is declared, on the path or the operation.
		p := strings.SplitN(key, " ", 2)[1]
		declared := map[string]bool{}
		for _, list := range []any{sp.pathItem(p)["parameters"], op["parameters"]} {
			l, _ := list.([]any)
			for _, e := range l {
				m, _ := e.(map[string]any)
				if m = sp.deref(m); m != nil && m["in"] == "path" {
					declared[fmt.Sprint(m["name"])] = m["required"] == true
				}
			}
		}
		for _, m := range param.FindAllStringSubmatch(p, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared as a required path parameter", key, m[1])
			}
		}
		// Every status has a description; error statuses of JSON routes
		// use the Error schema (readyz's 503 is its own report).
		for _, st := range sp.statuses(op) {
			var code int
			if _, err := fmt.Sscan(st, &code); err != nil {
				t.Errorf("%s: status %q: %v", key, st, err)
				continue
			}
			r := sp.response(op, code)
			if r == nil || r["description"] == nil {
				t.Errorf("%s %s: no description", key, st)
				continue
			}
			if code >= 400 && key != "GET /readyz" {
				c, _ := r["content"].(map[string]any)
				j, _ := c["application/json"].(map[string]any)
				schema, _ := j["schema"].(map[string]any)
				if ref, _ := schema["$ref"].(string); ref != "#/components/schemas/Error" {
					t.Errorf("%s %s: the error body is not #/components/schemas/Error", key, st)
				}
			}
			if code == http.StatusServiceUnavailable {
				if h, _ := r["headers"].(map[string]any); h["Retry-After"] == nil {
					t.Errorf("%s 503: no Retry-After header", key)
				}
			}
			if code == http.StatusUnauthorized {
				if h, _ := r["headers"].(map[string]any); h["WWW-Authenticate"] == nil {
					t.Errorf("%s 401: no WWW-Authenticate header", key)
				}
			}
		}
	}
	scheme, err := sp.resolve("#/components/securitySchemes/bearerAuth")
	if err != nil || scheme["type"] != "http" || scheme["scheme"] != "bearer" {
		t.Errorf("bearerAuth is not an http bearer scheme: %v %v", scheme, err)
	}
	scopes, _ := scheme["x-scopes"].(map[string]any)
	for _, sc := range []string{server.ScopeAdmin, server.ScopeIntrospect, server.ScopeStoreRead, server.ScopeStoreWrite} {
		if _, ok := scopes[sc]; !ok {
			t.Errorf("bearerAuth x-scopes lacks %q", sc)
		}
	}
}

// TestOpenAPIServed calls every documented operation without credentials,
// with too narrow a scope and with each scope it documents: each is
// served, answers a documented status with the documented body, and
// authorizes as its security requirements say.
func TestOpenAPIServed(t *testing.T) {
	sp := loadSpec(t)
	n, admin := openAPINode(t)
	srv := server.New(n, server.Config{})
	c := &specClient{t: t, sp: sp, ops: sp.operations(), h: srv.Handler(), tried: map[string]bool{}}
	tokenWith := func(scope ...string) string {
		iss, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "openapi", Scope: scope})
		if err != nil {
			t.Fatal(err)
		}
		return iss.AccessToken
	}
	unrelated := tokenWith("unrelated")
	var names []string
	for k := range c.ops {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, op := range names {
		method, p, _ := strings.Cut(op, " ")
		sec, err := sp.security(c.ops[op])
		if err != nil {
			t.Fatal(err)
		}
		var body any
		switch method {
		case "POST":
			body = map[string]any{}
		case "PUT":
			body = []byte("x")
		}
		// The bodies are empty on purpose: credentials are checked first.
		a := c.doUndocumented(op, method, samplePath(p), "", body)
		switch {
		case !sec.public && a.status != http.StatusUnauthorized:
			t.Errorf("%s needs a token, yet without one it answered %d: %s", op, a.status, a.body)
		case !sec.public && a.header.Get("WWW-Authenticate") == "":
			t.Errorf("%s: a 401 without WWW-Authenticate", op)
		case sec.public && a.status == http.StatusUnauthorized && op != "POST /access/api/v1/tokens":
			t.Errorf("%s is documented as public, yet answered 401: %s", op, a.body)
		}
		if !sec.public || op == "POST /access/api/v1/tokens" {
			// A token in the URL is refused, even beside a good header.
			if a := c.doUndocumented(op, method, samplePath(p)+"?access_token=x", admin, body); a.status != http.StatusBadRequest || specErrorCode(a) != "BAD_REQUEST" {
				t.Errorf("%s with a token in the URL: %d %s", op, a.status, a.body)
			}
		}
		if sec.public || sec.anyToken {
			continue
		}
		if a := c.doUndocumented(op, method, samplePath(p), unrelated, body); a.status != http.StatusForbidden || specErrorCode(a) != "FORBIDDEN" {
			t.Errorf("%s with scope %q: %d, want 403: %s", op, "unrelated", a.status, a.body)
		}
		for _, sc := range sec.scopes {
			if a := c.doUndocumented(op, method, samplePath(p), tokenWith(sc), body); a.status == http.StatusUnauthorized || a.status == http.StatusForbidden {
				t.Errorf("%s with scope %q (documented as enough): %d %s", op, sc, a.status, a.body)
			}
		}
	}
}

// specErrorCode is the first code of an error body.
func specErrorCode(a specAnswer) string {
	l, _ := a.json["errors"].([]any)
	if len(l) == 0 {
		return ""
	}
	e, _ := l[0].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// TestOpenAPIAnswers walks through every operation as a client would and
// checks each answer (success and the usual errors) against the spec.
func TestOpenAPIAnswers(t *testing.T) {
	sp := loadSpec(t)
	n, admin := openAPINode(t)
	srv := server.New(n, server.Config{})
	c := &specClient{t: t, sp: sp, ops: sp.operations(), h: srv.Handler(), tried: map[string]bool{}}

	const tokensOp = "POST /access/api/v1/tokens"
	created := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, map[string]any{
		"subject": "ci", "scope": []string{"store:read", "store:write"}, "expires_in": 600, "refreshable": true, "description": "openapi test"})
	if created.status != http.StatusOK {
		t.Fatalf("create: %d %s", created.status, created.body)
	}
	access, refresh := answerField(t, created, "access_token"), answerField(t, created, "refresh_token")
	form := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, url.Values{"subject": {"ci"}, "scope": {"store:read"},
		"expires_in": {"300"}, "refreshable": {"true"}, "refresh_expires_in": {"3600"}, "alg": {"HS384"}, "audience": {"artifactory@* " + n.Tokens().Issuer()}})
	if form.status != http.StatusOK {
		t.Fatalf("create (form): %d %s", form.status, form.body)
	}
	es := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, map[string]any{"subject": "signed", "alg": "RS256"})
	if es.status != http.StatusOK {
		t.Fatalf("create RS256: %d %s", es.status, es.body)
	}
	refreshed := c.do(tokensOp, "POST", "/access/api/v1/tokens", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "scope": {"store:read"}})
	if refreshed.status != http.StatusOK || refreshed.json["scope"] != "store:read" {
		t.Fatalf("refresh: %d %s", refreshed.status, refreshed.body)
	}
	if a := c.do(tokensOp, "POST", "/access/api/v1/tokens", "", map[string]any{"grant_type": "refresh_token", "refresh_token": refresh}); a.status != http.StatusBadRequest || a.json["error"] != "invalid_grant" {
		t.Errorf("refresh token used twice: %d %s", a.status, a.body)
	}
	if a := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "x", "scope": "admin", "expires_in": 0}); a.status != http.StatusOK ||
		a.json["expires_in"] != json.Number(fmt.Sprint(int64(n.Tokens().MaxLifetime().Seconds()))) || !strings.Contains(string(a.body), "--max-token-lifetime") {
		t.Errorf("expires_in 0: %d %s", a.status, a.body)
	}
	if a := c.do(tokensOp, "POST", "/access/api/v1/tokens", "", map[string]any{"subject": "x"}); a.status != http.StatusUnauthorized {
		t.Errorf("create without credentials: %d %s", a.status, a.body)
	}
	if a := c.do(tokensOp, "POST", "/access/api/v1/tokens", access, map[string]any{"subject": "x"}); a.status != http.StatusUnauthorized {
		// access was revoked with its grant by the reuse above
		t.Errorf("create with a revoked token: %d %s", a.status, a.body)
	}

	ci := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, map[string]any{"subject": "ci", "scope": "store:read store:write introspect"})
	ciToken, ciID := answerField(t, ci, "access_token"), answerField(t, ci, "token_id")
	list := c.do("GET /access/api/v1/tokens", "GET", "/access/api/v1/tokens?subject=ci&all=true", admin, nil)
	if l, _ := list.json["tokens"].([]any); len(l) < 4 {
		t.Errorf("list: %s", list.body)
	}
	if a := c.do("GET /access/api/v1/tokens", "GET", "/access/api/v1/tokens?all=true", ciToken, nil); a.status != http.StatusOK || !onlySubject(a, "ci") {
		t.Errorf("list without admin (its own subject's only): %d %s", a.status, a.body)
	}
	if a := c.do("GET /access/api/v1/tokens", "GET", "/access/api/v1/tokens?username=other", ciToken, nil); a.status != http.StatusForbidden {
		t.Errorf("list another subject's tokens without admin: %d %s", a.status, a.body)
	}
	me := c.do("GET /access/api/v1/tokens/me", "GET", "/access/api/v1/tokens/me", ciToken, nil)
	if me.json["token_id"] != ciID || me.json["issuer"] != n.Tokens().Issuer() {
		t.Errorf("me: %s", me.body)
	}
	if a := c.do("GET /access/api/v1/tokens/{id}", "GET", "/access/api/v1/tokens/"+ciID, admin, nil); a.json["token_id"] != ciID {
		t.Errorf("get by id: %s", a.body)
	}
	in := c.do("POST /oauth2/introspect", "POST", "/oauth2/introspect", ciToken, url.Values{"token": {ciToken}})
	if in.json["active"] != true || in.json["sub"] != "ci" {
		t.Errorf("introspect: %s", in.body)
	}
	if a := c.do("POST /oauth2/introspect", "POST", "/oauth2/introspect", admin, map[string]any{"token": "not.a.token"}); a.json["active"] != false {
		t.Errorf("introspect garbage: %s", a.body)
	}

	// Store and transit, with the ci token's scopes.
	rec := "/api/v1/store/openapi/db/password"
	put := c.do("PUT /api/v1/store/{name}", "PUT", rec, ciToken, []byte("s3cr3t"))
	if put.json["name"] != "openapi/db/password" {
		t.Errorf("put: %s", put.body)
	}
	if got := c.do("GET /api/v1/store/{name}", "GET", rec, ciToken, nil); string(got.body) != "s3cr3t" {
		t.Errorf("get: %d %q", got.status, got.body)
	}
	recs := c.do("GET /api/v1/store", "GET", "/api/v1/store", ciToken, nil)
	if l, _ := recs.json["records"].([]any); len(l) != 1 {
		t.Errorf("records: %s", recs.body)
	}
	if a := c.do("PUT /api/v1/store/{name}", "PUT", rec, ciToken, make([]byte, 1<<20+1)); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("put 1 MiB + 1: %d %s", a.status, a.body)
	}
	if del := c.do("DELETE /api/v1/store/{name}", "DELETE", rec, ciToken, nil); del.json["deleted"] != true {
		t.Errorf("delete: %s", del.body)
	}
	if a := c.do("GET /api/v1/store/{name}", "GET", rec, ciToken, nil); a.status != http.StatusNotFound {
		t.Errorf("get deleted: %d %s", a.status, a.body)
	}
	if a := c.do("DELETE /api/v1/store/{name}", "DELETE", rec, ciToken, nil); a.status != http.StatusNotFound {
		t.Errorf("delete deleted: %d %s", a.status, a.body)
	}
	pt := base64.StdEncoding.EncodeToString([]byte("hello"))
	enc := c.do("POST /api/v1/encrypt", "POST", "/api/v1/encrypt", ciToken, map[string]any{"plaintext": pt, "context": "nightly"})
	ct := answerField(t, enc, "ciphertext")
	if dec := c.do("POST /api/v1/decrypt", "POST", "/api/v1/decrypt", ciToken, url.Values{"ciphertext": {ct}, "context": {"nightly"}}); dec.json["plaintext"] != pt {
		t.Errorf("decrypt: %s", dec.body)
	}
	if a := c.do("POST /api/v1/decrypt", "POST", "/api/v1/decrypt", ciToken, map[string]any{"ciphertext": ct, "context": "other"}); a.status != http.StatusBadRequest {
		t.Errorf("decrypt with another context: %d %s", a.status, a.body)
	}
	if a := c.do("POST /api/v1/encrypt", "POST", "/api/v1/encrypt", ciToken, url.Values{"plaintext": {"%%%"}}); a.status != http.StatusBadRequest {
		t.Errorf("encrypt non-base64: %d %s", a.status, a.body)
	}

	// Pairing.
	pair := c.do("POST /access/api/v1/pairing", "POST", "/access/api/v1/pairing", admin, map[string]any{
		"subject": "node-2", "base_url": "https://node-2.example.com", "expires_in": 120, "description": "openapi test"})
	pairing := answerField(t, pair, "pairing_token")
	c.do("POST /access/api/v1/pairing", "POST", "/access/api/v1/pairing", admin, nil)
	redeemed := c.do("POST /access/api/v1/pairing/redeem", "POST", "/access/api/v1/pairing/redeem", "", url.Values{"pairing_token": {pairing}, "expires_in": {"86400"}})
	if redeemed.json["expires_in"] != json.Number("86400") {
		t.Errorf("redeem: %s", redeemed.body)
	}
	if a := c.do("POST /access/api/v1/pairing/redeem", "POST", "/access/api/v1/pairing/redeem", "", map[string]any{"pairing_token": pairing}); a.status/100 != 4 {
		t.Errorf("pairing token redeemed twice: %d %s", a.status, a.body)
	}

	// Revocation: by id (the holder itself), by value, RFC 7009.
	if a := c.do("DELETE /access/api/v1/tokens/{id}", "DELETE", "/access/api/v1/tokens/"+ciID, ciToken, nil); a.json["revoked"] != true {
		t.Errorf("revoke own token: %s", a.body)
	}
	if a := c.do("GET /access/api/v1/tokens/me", "GET", "/access/api/v1/tokens/me", ciToken, nil); a.status != http.StatusUnauthorized {
		t.Errorf("revoked token still works: %d", a.status)
	}
	if a := c.do("DELETE /access/api/v1/tokens/{id}", "DELETE", "/access/api/v1/tokens/no-such-token", admin, nil); a.status != http.StatusNoContent {
		t.Errorf("revoke unknown id: %d %s", a.status, a.body)
	}
	jf := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "jfrog", "grant_type": "client_credentials"})
	if a := c.do("DELETE /access/api/v1/tokens/revoke", "DELETE", "/access/api/v1/tokens/revoke", admin, map[string]any{"token": answerField(t, jf, "access_token")}); a.json["revoked-token-id"] != answerField(t, jf, "token_id") {
		t.Errorf("JFrog revoke by value: %s", a.body)
	}
	if a := c.do("GET /access/api/v1/system/ping", "GET", "/access/api/v1/system/ping", "", nil); string(a.body) != "OK" {
		t.Errorf("ping: %d %q", a.status, a.body)
	}
	other := c.do(tokensOp, "POST", "/access/api/v1/tokens", admin, url.Values{"subject": {"other"}, "refreshable": {"true"}})
	if a := c.do("POST /access/api/v1/tokens/revoke", "POST", "/access/api/v1/tokens/revoke", "", map[string]any{"token": answerField(t, other, "access_token")}); a.json["revoked"] != true {
		t.Errorf("revoke by value: %s", a.body)
	}
	if a := c.do("POST /access/api/v1/tokens/revoke", "POST", "/access/api/v1/tokens/revoke", "", url.Values{"token": {"garbage"}}); a.status != http.StatusUnauthorized {
		t.Errorf("revoke garbage by value: %d %s", a.status, a.body)
	}
	for _, tok := range []string{answerField(t, other, "refresh_token"), "garbage"} {
		if a := c.do("POST /oauth2/revoke", "POST", "/oauth2/revoke", "", url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}); a.status != http.StatusOK {
			t.Errorf("oauth2 revoke: %d %s", a.status, a.body)
		}
	}

	// Keys, metadata, operations.
	jwks := c.do("GET /.well-known/jwks.json", "GET", "/.well-known/jwks.json", "", nil)
	if l, _ := jwks.json["keys"].([]any); len(l) != signingKeys(t, n) {
		t.Errorf("jwks: %s", jwks.body)
	}
	meta := c.do("GET /.well-known/oauth-authorization-server", "GET", "/.well-known/oauth-authorization-server", "", nil)
	if meta.json["issuer"] != n.Tokens().Issuer() {
		t.Errorf("metadata: %s", meta.body)
	}
	if oidc := c.do("GET /.well-known/openid-configuration", "GET", "/.well-known/openid-configuration", "", nil); string(oidc.body) != string(meta.body) {
		t.Errorf("openid-configuration %s, want the metadata %s", oidc.body, meta.body)
	}
	c.do("GET /healthz", "GET", "/healthz", "", nil)
	if a := c.do("GET /readyz", "GET", "/readyz", "", nil); a.json["ready"] != true {
		t.Errorf("readyz: %s", a.body)
	}
	if a := c.do("GET /metrics", "GET", "/metrics", "", nil); !bytes.Contains(a.body, []byte("keyward_http_requests_total")) {
		t.Errorf("metrics: %.300s", a.body)
	}
	if a := c.doUndocumented(tokensOp, "POST", "/access/api/v1/tokens", admin, bytes.Repeat([]byte("x"), 10)); a.status != http.StatusUnsupportedMediaType {
		t.Errorf("octet-stream token request: %d %s", a.status, a.body)
	}

	for op := range c.ops {
		if !c.tried[op] {
			t.Errorf("%s was never answered with a success", op)
		}
	}
}

// onlySubject says a listing holds tokens, all of subject.
func onlySubject(a specAnswer, subject string) bool {
	l, _ := a.json["tokens"].([]any)
	for _, e := range l {
		if m, _ := e.(map[string]any); m["subject"] != subject {
			return false
		}
	}
	return len(l) > 0
}

// signingKeys counts the signing keys in the node's device.
func signingKeys(t *testing.T, n *node.Node) int {
	t.Helper()
	list, err := n.ListKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, e := range list.Keys {
		if e.Role == keyring.Signing {
			count++
			if e.Type == hsm.TypeRSA.String() { // published for RS256 and for PS256
				count++
			}
		}
	}
	return count
}
