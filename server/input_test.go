package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// rawAnswer is an answer to a body sent byte for byte, as a hostile client
// would: its status, error_description and the message of errors[0].
type rawAnswer struct {
	status        int
	desc, message string
	body          map[string]any
}

// postRaw sends body as it is, of type ct, to the tokens endpoint.
func postRaw(t *testing.T, h http.Handler, bearer, ct, body string) rawAnswer {
	t.Helper()
	req := httptest.NewRequest("POST", tokensAt, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := rawAnswer{status: rec.Code}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.UseNumber()
	if err := dec.Decode(&a.body); err != nil {
		t.Fatalf("%q: answer %d is not JSON: %q", body, rec.Code, rec.Body)
	}
	a.desc, _ = a.body["error_description"].(string)
	if errs, _ := a.body["errors"].([]any); len(errs) == 1 {
		a.message, _ = errs[0].(map[string]any)["message"].(string)
	}
	return a
}

// refused checks a 400 invalid_request whose error_description and
// errors[0].message both name field, as said.
func (a rawAnswer) refused(t *testing.T, name, field, said string) {
	t.Helper()
	if a.status != http.StatusBadRequest || a.body["error"] != "invalid_request" || a.desc != a.message || !strings.Contains(a.desc, said) {
		t.Errorf("%s: %d %v; want 400 invalid_request naming %s (%q)", name, a.status, a.body, field, said)
	}
}

const (
	jsonCT = "application/json"
	formCT = "application/x-www-form-urlencoded"
)

// TestRepeatedJSONMember: a JSON member given twice is refused, as a form
// field given twice is, not read as the last one.
func TestRepeatedJSONMember(t *testing.T) {
	c, admin := jfrogClient(t)
	for name, body := range map[string]string{
		"scope twice":                 `{"scope":"read","scope":"admin"}`,
		"scope twice, the first null": `{"subject":"svc","scope":null,"scope":"admin"}`,
		"scope twice, spaced":         "{\"scope\" : \"read\",\n \"subject\":\"svc\", \"scope\":[\"admin\"]}",
		"scope twice, once escaped":   `{"scope":"read","sc\u006fpe":"admin"}`,
	} {
		postRaw(t, c.h, admin, jsonCT, body).refused(t, name, "scope", `field "scope" is given more than once`)
	}
	postRaw(t, c.h, "", jsonCT, `{"grant_type":"refresh_token","refresh_token":"kwr_x","grant_type":"client_credentials"}`).
		refused(t, "grant_type twice", "grant_type", `field "grant_type" is given more than once`)
	postRaw(t, c.h, admin, formCT, "scope=read&scope=admin").refused(t, "a form's scope twice", "scope", `field "scope" is given more than once`)
	// Still one object, and only strings, numbers, booleans and lists of
	// strings.
	for name, body := range map[string]string{
		"two objects":  `{"subject":"a"}{"subject":"b"}`,
		"a brace more": `{"subject":"a"}}`,
		"a list":       `["subject","a"]`,
		"bad syntax":   `{"subject":"a",}`,
		"nested":       `{"subject":{"scope":"admin"}}`,
		"list of ints": `{"scope":[1]}`,
	} {
		if a := postRaw(t, c.h, admin, jsonCT, body); a.status != http.StatusBadRequest {
			t.Errorf("%s: %d %v", name, a.status, a.body)
		}
	}
	if a := postRaw(t, c.h, admin, jsonCT, ` {"subject":"svc","scope":["store:read","introspect"],"expires_in":60,"refreshable":false,"alg":null} `); a.status != http.StatusOK || a.body["scope"] != "store:read introspect" {
		t.Errorf("a good body: %d %v", a.status, a.body)
	}
}

// TestInvalidUTF8 is refused naming the field, in JSON (where encoding/json
// would put U+FFFD in its place) and in a form (where it would go through
// as it is).
func TestInvalidUTF8(t *testing.T) {
	c, admin := jfrogClient(t)
	for _, tc := range []struct{ name, ct, body, field string }{
		{"JSON subject", jsonCT, "{\"subject\":\"ev\xffil\"}", "subject"},
		{"JSON description", jsonCT, "{\"subject\":\"svc\",\"description\":\"\xc3\x28\"}", "description"},
		{"JSON audience list", jsonCT, "{\"subject\":\"svc\",\"audience\":[\"jfrt@*\",\"\xe2\x82\"]}", "audience"},
		{"JSON lone surrogate", jsonCT, `{"subject":"a\udc00b"}`, "subject"},
		{"JSON surrogate cut short", jsonCT, `{"description":"\ud83d\u0041"}`, "description"},
		{"form subject", formCT, "subject=ev%FFil", "subject"},
		{"form scope", formCT, "subject=svc&scope=read+%C3%28", "scope"},
	} {
		postRaw(t, c.h, admin, tc.ct, tc.body).refused(t, tc.name, tc.field, `"`+tc.field+`" is not UTF-8`)
	}
	// A query string is a form too.
	req := httptest.NewRequest("GET", tokensAt+"?subject=a%FF", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `field \"subject\" is not UTF-8`) {
		t.Errorf("a query string not UTF-8: %d %s", rec.Code, rec.Body)
	}
	// Text of any script, escaped or not, and U+FFFD written out, pass.
	for _, body := range []string{
		`{"subject":"José","description":"日本 \u00e9 \ud83d\ude80 \ufffd �"}`,
		"subject=Jos%C3%A9&description=%F0%9F%9A%80",
	} {
		ct := jsonCT
		if !strings.HasPrefix(body, "{") {
			ct = formCT
		}
		if a := postRaw(t, c.h, admin, ct, body); a.status != http.StatusOK {
			t.Errorf("%q: %d %v", body, a.status, a.body)
		}
	}
}

// TestControlCharacters in the text a token carries or its record keeps
// are refused naming the field: the tokens library's rule, reached
// through the API.
func TestControlCharacters(t *testing.T) {
	c, admin := jfrogClient(t)
	for _, tc := range []struct{ name, ct, body, field string }{
		{"ESC and newline in subject", jsonCT, `{"subject":"evil\u001b[31m\nX-Injected: 1"}`, "subject"},
		{"ESC in username", jsonCT, `{"username":"evil\u001b[31m"}`, "username"},
		{"newline in description", jsonCT, `{"subject":"svc","description":"a\nX-Injected: 1"}`, "description"},
		{"bidi override in subject", jsonCT, `{"subject":"admin\u202etxt"}`, "subject"},
		{"line separator in description", jsonCT, `{"subject":"svc","description":"a\u2028b"}`, "description"},
		{"paragraph separator in audience", jsonCT, `{"subject":"svc","audience":["jfrt@\u2029"]}`, "audience"},
		{"ESC in a scope word", jsonCT, `{"subject":"svc","scope":"store:read wr\u001bite"}`, "scope"},
		{"form: ESC and newline in subject", formCT, "subject=evil%1B%5B31m%0AX-Injected%3A+1", "subject"},
		{"form: CR in description", formCT, "subject=svc&description=a%0Db", "description"},
	} {
		postRaw(t, c.h, admin, tc.ct, tc.body).refused(t, tc.name, tc.field, tc.field+": holds U+")
	}
}

// TestRefreshWithEmptyScope keeps the grant's scope, in a form and in
// JSON (a string or a list); an empty scope on create still makes a token
// without scope.
func TestRefreshWithEmptyScope(t *testing.T) {
	c, admin := jfrogClient(t)
	grant := c.do(createOp, "POST", tokensAt, admin, map[string]any{"username": "app", "scope": "store:read introspect", "refreshable": true})
	rt := answerField(t, grant, "refresh_token")
	for _, tc := range []struct{ ct, body string }{
		{formCT, "grant_type=refresh_token&scope=&refresh_token="},
		{jsonCT, `{"grant_type":"refresh_token","scope":"","refresh_token":"%s"}`},
		{jsonCT, `{"grant_type":"refresh_token","scope":[],"refresh_token":"%s"}`},
		{jsonCT, `{"grant_type":"refresh_token","refresh_token":"%s"}`},
	} {
		body := tc.body + rt
		if tc.ct == jsonCT {
			body = strings.Replace(tc.body, "%s", rt, 1)
		}
		a := postRaw(t, c.h, "", tc.ct, body)
		if a.status != http.StatusOK || a.body["scope"] != "store:read introspect" {
			t.Fatalf("refresh with %s: %d, scope %q %s; want the grant's scope", tc.body, a.status, a.body["scope"], a.desc)
		}
		rt, _ = a.body["refresh_token"].(string)
	}
	for _, body := range []any{map[string]any{"username": "app", "scope": ""}, map[string]any{"username": "app", "scope": []string{}}} {
		if a := c.do(createOp, "POST", tokensAt, admin, body); a.status != http.StatusOK || a.json["scope"] != "" {
			t.Errorf("create with an empty scope: %d %s", a.status, a.body)
		}
	}
}
