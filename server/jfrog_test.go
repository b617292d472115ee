package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/server"
)

// jfrogClient is a spec-checking client on a fresh node, with its admin
// token.
func jfrogClient(t *testing.T) (*specClient, string) {
	t.Helper()
	sp := loadSpec(t)
	n, admin := openAPINode(t)
	srv := server.New(n, server.Config{})
	return &specClient{t: t, sp: sp, ops: sp.operations(), h: srv.Handler(), tried: map[string]bool{}}, admin
}

const (
	createOp = "POST /access/api/v1/tokens"
	listOp   = "GET /access/api/v1/tokens"
	tokensAt = "/access/api/v1/tokens"
)

// listed is the token ids of a listing, in order.
func listed(t *testing.T, a specAnswer) []string {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("list: %d %s", a.status, a.body)
	}
	l, _ := a.json["tokens"].([]any)
	ids := []string{}
	for _, e := range l {
		m, _ := e.(map[string]any)
		ids = append(ids, m["token_id"].(string))
	}
	return ids
}

func TestJFrogCreate(t *testing.T) {
	c, admin := jfrogClient(t)
	// username is JFrog's subject; the caller is the default subject;
	// client_credentials is the default grant.
	for _, body := range []any{
		map[string]any{"username": "jenkins", "grant_type": "client_credentials"},
		url.Values{"username": {"jenkins"}},
	} {
		a := c.do(createOp, "POST", tokensAt, admin, body)
		if a.status != http.StatusOK {
			t.Fatalf("create with username: %d %s", a.status, a.body)
		}
		rec := c.do("GET /access/api/v1/tokens/{id}", "GET", tokensAt+"/"+answerField(t, a, "token_id"), admin, nil)
		if rec.json["subject"] != "jenkins" {
			t.Errorf("subject %v, want jenkins", rec.json["subject"])
		}
	}
	own := c.do(createOp, "POST", tokensAt, admin, map[string]any{"scope": "applied-permissions/admin"})
	rec := c.do("GET /access/api/v1/tokens/{id}", "GET", tokensAt+"/"+answerField(t, own, "token_id"), admin, nil)
	if rec.json["subject"] != "admin" {
		t.Errorf("no username: subject %v, want the caller's (admin)", rec.json["subject"])
	}
	// applied-permissions/admin is admin, and the default audience *@*
	// is accepted by this keyward.
	jfAdmin := answerField(t, own, "access_token")
	star := c.do(createOp, "POST", tokensAt, jfAdmin, map[string]any{"username": "svc", "audience": "*@*", "scope": "store:read"})
	if star.status != http.StatusOK {
		t.Fatalf("an applied-permissions/admin token creating a token: %d %s", star.status, star.body)
	}
	if a := c.do("GET /api/v1/store", "GET", "/api/v1/store", answerField(t, star, "access_token"), nil); a.status != http.StatusOK {
		t.Errorf("a token for audience *@*: %d %s", a.status, a.body)
	}
	// A caller without admin: its own subject, scopes it holds.
	svc := answerField(t, star, "access_token")
	if a := c.do(createOp, "POST", tokensAt, svc, map[string]any{"scope": "store:read", "expires_in": 60}); a.status != http.StatusOK {
		t.Errorf("a token for oneself with a scope held: %d %s", a.status, a.body)
	}
	if a := c.do(createOp, "POST", tokensAt, svc, map[string]any{"scope": "store:write"}); a.status != http.StatusForbidden {
		t.Errorf("a scope not held: %d %s", a.status, a.body)
	}
	if a := c.do(createOp, "POST", tokensAt, svc, map[string]any{"username": "other"}); a.status != http.StatusForbidden {
		t.Errorf("a token for another subject without admin: %d %s", a.status, a.body)
	}
	for name, body := range map[string]map[string]any{
		"unknown field":           {"username": "x", "colour": "blue"},
		"username and subject":    {"username": "x", "subject": "y"},
		"include_reference_token": {"username": "x", "include_reference_token": true},
		"project_key":             {"username": "x", "project_key": "p1"},
		"negative expires_in":     {"username": "x", "expires_in": -1},
		"over the longest":        {"username": "x", "expires_in": 10 * 365 * 24 * 3600},
	} {
		a := c.doUndocumented(createOp, "POST", tokensAt, admin, body)
		if a.status != http.StatusBadRequest || a.json["error"] != "invalid_request" {
			t.Errorf("%s: %d %s", name, a.status, a.body)
		}
	}
	if a := c.doUndocumented(createOp, "POST", tokensAt, admin, map[string]any{"username": "x", "colour": "blue"}); !strings.Contains(string(a.body), `\"colour\"`) {
		t.Errorf("the unknown field is not named: %s", a.body)
	}
	if a := c.doUndocumented(createOp, "POST", tokensAt, admin, map[string]any{"grant_type": "password"}); a.status != http.StatusBadRequest || a.json["error"] != "unsupported_grant_type" {
		t.Errorf("grant_type password: %d %s", a.status, a.body)
	}
}

func TestJFrogListFilters(t *testing.T) {
	c, admin := jfrogClient(t)
	create := func(body map[string]any) string {
		a := c.do(createOp, "POST", tokensAt, admin, body)
		return answerField(t, a, "token_id")
	}
	a := create(map[string]any{"username": "jenkins", "description": "nightly build", "refreshable": true})
	b := create(map[string]any{"username": "jenkins", "description": "release"})
	d := create(map[string]any{"username": "deploy", "description": "nightly deploy"})
	revoked := create(map[string]any{"username": "jenkins", "description": "gone"})
	if r := c.do("DELETE /access/api/v1/tokens/{id}", "DELETE", tokensAt+"/"+revoked, admin, nil); r.status != http.StatusOK {
		t.Fatal(r.status)
	}
	// Filters select (in an order of their own when tokens share their
	// creation second): compared as sets.
	for query, want := range map[string][]string{
		"username=jenkins":                   {a, b},
		"subject=jenkins":                    {a, b},
		"description=nightly*":               {a, d},
		"description=release":                {b},
		"description=nightly":                {},
		"refreshable=true":                   {a},
		"refreshable=false&username=jenkins": {b},
		"token_id=" + revoked:                {revoked},
		"username=jenkins&all=true":          {a, b, revoked},
	} {
		got := listed(t, c.do(listOp, "GET", tokensAt+"?"+query, admin, nil))
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", query, got, want)
		}
	}
	// Orders.
	ids := []string{a, b}
	slices.Sort(ids)
	desc := slices.Clone(ids)
	slices.Reverse(desc)
	for query, want := range map[string][]string{
		"order_by=token_id&descending_order=false&username=jenkins": ids,
		"order_by=token_id&username=jenkins":                        desc,
		"order_by=subject&descending_order=false&username=deploy":   {d},
	} {
		if got := listed(t, c.do(listOp, "GET", tokensAt+"?"+query, admin, nil)); !slices.Equal(got, want) {
			t.Errorf("?%s: %v, want %v", query, got, want)
		}
	}
	bySubject := c.do(listOp, "GET", tokensAt+"?order_by=subject&descending_order=false", admin, nil)
	var subjects []string
	for _, e := range bySubject.json["tokens"].([]any) {
		subjects = append(subjects, e.(map[string]any)["subject"].(string))
	}
	if !slices.IsSorted(subjects) || len(subjects) < 4 {
		t.Errorf("order_by=subject: %v", subjects)
	}
	for _, query := range []string{"user=jenkins", "page=2", "limit=0", "refreshable=maybe", "order_by=colour", "username=a&subject=b", "username=a&username=b"} {
		r := c.doUndocumented(listOp, "GET", tokensAt+"?"+query, admin, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("?%s: %d %s, want 400", query, r.status, r.body)
		}
	}
	if r := c.doUndocumented(listOp, "GET", tokensAt+"?user=jenkins", admin, nil); !strings.Contains(string(r.body), `\"user\"`) {
		t.Errorf("the unknown filter is not named: %s", r.body)
	}
	rec := c.do("GET /access/api/v1/tokens/{id}", "GET", tokensAt+"/"+a, admin, nil)
	for _, f := range []string{"expiry", "issued_at"} {
		if n, ok := rec.json[f].(json.Number); !ok || strings.Contains(string(n), ".") {
			t.Errorf("%s is not an epoch integer: %v", f, rec.json[f])
		}
	}
	if rec.json["refreshable"] != true || rec.json["issuer"] == "" {
		t.Errorf("record: %s", rec.body)
	}
}

func TestOAuthRefreshErrors(t *testing.T) {
	c, admin := jfrogClient(t)
	grant := c.do(createOp, "POST", tokensAt, admin, map[string]any{"username": "app", "scope": "store:read introspect", "refreshable": true, "expires_in": 600})
	access, refresh := answerField(t, grant, "access_token"), answerField(t, grant, "refresh_token")
	in := c.do("POST /oauth2/introspect", "POST", "/oauth2/introspect", admin, url.Values{"token": {refresh}})
	if in.json["active"] != true || in.json["token_type"] != "refresh_token" || in.json["sub"] != "app" {
		t.Errorf("introspecting a live refresh token: %s", in.body)
	}
	other := c.do(createOp, "POST", tokensAt, admin, map[string]any{"username": "app"})
	for name, tc := range map[string]struct {
		body map[string]any
		code string
	}{
		"widened scope":        {map[string]any{"scope": "admin"}, "invalid_scope"},
		"another access_token": {map[string]any{"access_token": answerField(t, other, "access_token")}, "invalid_request"},
		"another audience":     {map[string]any{"audience": "jfrt@*"}, "invalid_request"},
		"unknown field":        {map[string]any{"username": "x"}, "invalid_request"},
	} {
		tc.body["grant_type"], tc.body["refresh_token"] = "refresh_token", refresh
		if a := c.doUndocumented(createOp, "POST", tokensAt, "", tc.body); a.status != http.StatusBadRequest || a.json["error"] != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", name, a.status, a.body, tc.code)
		}
	}
	// JFrog's refresh: the old access token named, a new lifetime, and
	// refreshable false ends the grant.
	next := c.do(createOp, "POST", tokensAt, access, map[string]any{"grant_type": "refresh_token", "refresh_token": refresh, "access_token": access,
		"expires_in": 120, "refreshable": false, "token_type": "Bearer"})
	if next.status != http.StatusOK || next.json["expires_in"] != json.Number("120") || next.json["refresh_token"] != nil {
		t.Fatalf("refresh with expires_in 120, refreshable false: %d %s", next.status, next.body)
	}
	if in := c.do("POST /oauth2/introspect", "POST", "/oauth2/introspect", admin, url.Values{"token": {refresh}}); in.json["active"] != false {
		t.Errorf("a used refresh token introspects active: %s", in.body)
	}
	if a := c.do(createOp, "POST", tokensAt, "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"kwr_nonsense"}}); a.status != http.StatusBadRequest || a.json["error"] != "invalid_grant" {
		t.Errorf("an unknown refresh token: %d %s", a.status, a.body)
	}
	if a := c.doUndocumented("POST /oauth2/revoke", "POST", "/oauth2/revoke", "", url.Values{}); a.status != http.StatusBadRequest || a.json["error"] != "invalid_request" {
		t.Errorf("RFC 7009 revoke without token: %d %s", a.status, a.body)
	}
}
