package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
)

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
