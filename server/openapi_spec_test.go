package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

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
