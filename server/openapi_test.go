package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
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
	"gopkg.in/yaml.v3"
)

// The package's TestMain (main_test.go) cleans up the SoftHSM2 home and
// the PostgreSQL cluster.

const specPath = "../docs/openapi.yaml"

// apiSpec is docs/openapi.yaml, parsed.
type apiSpec struct {
	doc map[string]any
}

func loadSpec(t *testing.T) *apiSpec {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", specPath, err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("%s: openapi %q, want 3.1.x", specPath, v)
	}
	return &apiSpec{doc: doc}
}

var specMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// operations maps "METHOD /path" (OpenAPI path) to its operation.
func (s *apiSpec) operations() map[string]map[string]any {
	ops := map[string]map[string]any{}
	paths, _ := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		m, _ := item.(map[string]any)
		for _, meth := range specMethods {
			if op, ok := m[meth].(map[string]any); ok {
				ops[strings.ToUpper(meth)+" "+p] = op
			}
		}
	}
	return ops
}

// pathItem is the path item of an OpenAPI path.
func (s *apiSpec) pathItem(p string) map[string]any {
	paths, _ := s.doc["paths"].(map[string]any)
	m, _ := paths[p].(map[string]any)
	return m
}

// resolve follows a local $ref ("#/components/schemas/X").
func (s *apiSpec) resolve(ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = s.doc
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q is not an object", ref)
	}
	return m, nil
}

// deref follows $ref until an object without one.
func (s *apiSpec) deref(m map[string]any) map[string]any {
	for i := 0; i < 10; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		r, err := s.resolve(ref)
		if err != nil {
			return nil
		}
		m = r
	}
	return nil
}

// response is the (dereferenced) response an operation documents for status.
func (s *apiSpec) response(op map[string]any, status int) map[string]any {
	rs, _ := op["responses"].(map[string]any)
	r, ok := rs[fmt.Sprint(status)].(map[string]any)
	if !ok {
		return nil
	}
	return s.deref(r)
}

// statuses lists the statuses an operation documents.
func (s *apiSpec) statuses(op map[string]any) []string {
	rs, _ := op["responses"].(map[string]any)
	var out []string
	for k := range rs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// routeToSpec turns a ServeMux pattern into the OpenAPI "METHOD /path":
// {name...} becomes {name}.
func routeToSpec(route string) string {
	return strings.ReplaceAll(route, "...}", "}")
}

// opSecurity is what an operation's security requirements say: public (no
// requirement, or an empty alternative), or the scopes that allow it (an
// empty scope list: any valid token).
type opSecurity struct {
	public   bool
	anyToken bool
	scopes   []string
}

func (s *apiSpec) security(op map[string]any) (opSecurity, error) {
	raw, ok := op["security"]
	if !ok {
		raw = s.doc["security"]
	}
	reqs, _ := raw.([]any)
	var sec opSecurity
	if len(reqs) == 0 {
		sec.public = true
		return sec, nil
	}
	for _, r := range reqs {
		m, _ := r.(map[string]any)
		if len(m) == 0 {
			sec.public = true
			continue
		}
		for name, v := range m {
			if name != "bearerAuth" {
				return sec, fmt.Errorf("unknown security scheme %q", name)
			}
			list, _ := v.([]any)
			if len(list) == 0 {
				sec.anyToken = true
			}
			for _, sc := range list {
				sec.scopes = append(sec.scopes, fmt.Sprint(sc))
			}
		}
	}
	return sec, nil
}

// validate checks v (decoded with UseNumber) against schema; it returns
// what does not match. Objects with properties are strict unless
// additionalProperties allows more: an undocumented field is an error.
func (s *apiSpec) validate(at string, schema map[string]any, v any) []string {
	if schema == nil {
		return []string{at + ": no schema"}
	}
	var errs []string
	if ref, ok := schema["$ref"].(string); ok {
		target, err := s.resolve(ref)
		if err != nil {
			return []string{at + ": " + err.Error()}
		}
		errs = append(errs, s.validate(at, target, v)...)
	}
	if types := schemaTypeList(schema["type"]); len(types) > 0 {
		got := jsonTypeOf(v)
		if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			return append(errs, fmt.Sprintf("%s: %s, want %v", at, got, types))
		}
	}
	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		errs = append(errs, fmt.Sprintf("%s: %v, want %v", at, v, c))
	}
	if enum, ok := schema["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			found = found || fmt.Sprint(e) == fmt.Sprint(v)
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
		}
	}
	for _, key := range []string{"oneOf", "anyOf"} {
		alts, ok := schema[key].([]any)
		if !ok {
			continue
		}
		matched := false
		for _, a := range alts {
			am, _ := a.(map[string]any)
			matched = matched || len(s.validate(at, am, v)) == 0
		}
		if !matched {
			errs = append(errs, fmt.Sprintf("%s: matches none of %s", at, key))
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, hasProps := schema["properties"].(map[string]any)
		for _, r := range yamlStrings(schema["required"]) {
			if _, ok := x[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required field %q missing", at, r))
			}
		}
		extra := schema["additionalProperties"]
		for k, fv := range x {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, s.validate(at+"."+k, ps, fv)...)
				continue
			}
			switch e := extra.(type) {
			case map[string]any:
				errs = append(errs, s.validate(at+"."+k, e, fv)...)
			case bool:
				if !e {
					errs = append(errs, fmt.Sprintf("%s: field %q is not documented", at, k))
				}
			default:
				if hasProps {
					errs = append(errs, fmt.Sprintf("%s: field %q is not documented", at, k))
				}
			}
		}
	case []any:
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range x {
				errs = append(errs, s.validate(fmt.Sprintf("%s[%d]", at, i), items, e)...)
			}
		}
		if n, ok := schema["minItems"].(int); ok && len(x) < n {
			errs = append(errs, fmt.Sprintf("%s: %d items, want at least %d", at, len(x), n))
		}
	}
	return errs
}

func schemaTypeList(t any) []string {
	switch t := t.(type) {
	case string:
		return []string{t}
	case []any:
		return yamlStrings(t)
	}
	return nil
}

func yamlStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

func jsonTypeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// walkSpecRefs calls f with every $ref in v.
func walkSpecRefs(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if r, ok := e.(string); ok && k == "$ref" {
				f(r)
			}
			walkSpecRefs(e, f)
		}
	case []any:
		for _, e := range x {
			walkSpecRefs(e, f)
		}
	}
}

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

// specClient calls a server's handler in process and checks every answer
// against the spec.
type specClient struct {
	t     *testing.T
	sp    *apiSpec
	ops   map[string]map[string]any
	h     http.Handler
	tried map[string]bool // operations answered with a 2xx
}

type specAnswer struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// do sends method path (a concrete path) as the operation op ("METHOD
// /openapi/path"); body is nil, url.Values (a form), []byte (raw) or any
// other value (JSON). The answer's status must be documented and its body
// must match the documented schema.
func (c *specClient) do(op, method, path, token string, body any) specAnswer {
	c.t.Helper()
	return c.send(op, method, path, token, body, true)
}

// doUndocumented is do with a request body the spec does not document (to
// check the error it gets).
func (c *specClient) doUndocumented(op, method, path, token string, body any) specAnswer {
	c.t.Helper()
	return c.send(op, method, path, token, body, false)
}

func (c *specClient) send(op, method, path, token string, body any, documented bool) specAnswer {
	c.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ct = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	o := c.ops[op]
	if o == nil {
		c.t.Fatalf("%s is not in %s", op, specPath)
	}
	if documented {
		c.checkRequest(op, o, ct, body)
	}
	req := httptest.NewRequest(method, path, rd)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	a := specAnswer{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if a.status == http.StatusMethodNotAllowed || (a.status == http.StatusNotFound && string(a.body) == "404 page not found\n") {
		c.t.Fatalf("%s %s (%s): not served: %d %q", method, path, op, a.status, a.body)
	}
	r := c.sp.response(o, a.status)
	if r == nil {
		c.t.Errorf("%s %s (%s): status %d is not documented (documented: %v); body %s", method, path, op, a.status, c.sp.statuses(o), a.body)
		return a
	}
	if a.status/100 == 2 {
		c.tried[op] = true
	}
	content, _ := r["content"].(map[string]any)
	got, _, _ := strings.Cut(a.header.Get("Content-Type"), ";")
	if len(content) == 0 {
		if len(a.body) != 0 {
			c.t.Errorf("%s %s (%s): %d documents no body, got %q", method, path, op, a.status, a.body)
		}
		return a
	}
	media, ok := content[got].(map[string]any)
	if !ok {
		c.t.Errorf("%s %s (%s): %d answered Content-Type %q, documented %v", method, path, op, a.status, got, sortedKeys(content))
		return a
	}
	if got != "application/json" {
		return a
	}
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		c.t.Errorf("%s %s (%s): not JSON: %q", method, path, op, a.body)
		return a
	}
	a.json, _ = v.(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	for _, e := range c.sp.validate("body", schema, v) {
		c.t.Errorf("%s %s (%s) %d: %s\n%s", method, path, op, a.status, e, a.body)
	}
	return a
}

// checkRequest checks that a JSON or form request this test sends is one
// the spec documents: its media type, and (for JSON) its fields.
func (c *specClient) checkRequest(op string, o map[string]any, ct string, body any) {
	c.t.Helper()
	if body == nil {
		return
	}
	rb, _ := o["requestBody"].(map[string]any)
	content, _ := c.sp.deref(rb)["content"].(map[string]any)
	media, ok := content[ct].(map[string]any)
	if !ok {
		c.t.Errorf("%s: request body %s is not documented (documented: %v)", op, ct, sortedKeys(content))
		return
	}
	schema, _ := media["schema"].(map[string]any)
	var v any
	switch b := body.(type) {
	case url.Values:
		m := map[string]any{}
		for k, vs := range b {
			m[k] = vs[0]
		}
		v = m
	case []byte:
		return
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			c.t.Fatal(err)
		}
	}
	for _, e := range c.sp.validate("request", schema, v) {
		c.t.Errorf("%s: %s", op, e)
	}
}

func sortedKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func answerField(t *testing.T, a specAnswer, field string) string {
	t.Helper()
	s, ok := a.json[field].(string)
	if !ok || s == "" {
		t.Fatalf("answer lacks %q: %s", field, a.body)
	}
	return s
}

// samplePath fills an OpenAPI path with values for its parameters; a record
// name holds a slash, as {name...} allows.
func samplePath(p string) string {
	r := strings.NewReplacer("{id}", "01a2117c-0000-7000-8000-000000000000", "{name}", "openapi/sample")
	return r.Replace(p)
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
