package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/server"
	"github.com/keyward/keyward/tokens"
)

// pageIDs is the token ids of a listing's page, and its next cursor.
func pageIDs(t *testing.T, a specAnswer) ([]string, string) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("list: %d %s", a.status, a.body)
	}
	var ids []string
	l, _ := a.json["tokens"].([]any)
	for _, e := range l {
		m, _ := e.(map[string]any)
		ids = append(ids, m["token_id"].(string))
	}
	next, _ := a.json["next"].(string)
	return ids, next
}

// A listing is answered a page at a time: "next" until the last page,
// every token once, newest first, each caller's own rule kept.
func TestListTokensPages(t *testing.T) {
	n, admin := openAPINode(t)
	c := &specClient{t: t, sp: loadSpec(t), h: server.New(n, server.Config{}).Handler(), tried: map[string]bool{}}
	c.ops = c.sp.operations()
	var issued []string
	for range 25 {
		iss, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "pg"})
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, iss.TokenID)
	}
	other, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "other"})
	if err != nil {
		t.Fatal(err)
	}
	// By id, newest first: ids are UUIDv7, in order of issue to the
	// millisecond (and by their random bits within one).
	slices.Sort(issued)
	slices.Reverse(issued)
	const op = "GET /access/api/v1/tokens"
	list := func(token string, q url.Values) ([]string, []int) {
		var ids []string
		var sizes []int
		for {
			page, next := pageIDs(t, c.do(op, "GET", "/access/api/v1/tokens?"+q.Encode(), token, nil))
			ids, sizes = append(ids, page...), append(sizes, len(page))
			if next == "" {
				return ids, sizes
			}
			q.Set("cursor", next)
		}
	}
	ids, sizes := list(admin, url.Values{"username": {"pg"}, "limit": {"10"}})
	if !slices.Equal(ids, issued) || !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("admin, pages of 10: %v in pages of %v, want %v", ids, sizes, issued)
	}
	ids, sizes = list(other.AccessToken, url.Values{"limit": {"1"}})
	if !slices.Equal(ids, []string{other.TokenID}) || !slices.Equal(sizes, []int{1}) {
		t.Errorf("a non-admin's listing: %v in pages of %v, want its own token only", ids, sizes)
	}
	if ids, _ := pageIDs(t, c.do(op, "GET", "/access/api/v1/tokens", admin, nil)); len(ids) != 27 {
		t.Errorf("one default page of 27 tokens: %d", len(ids))
	}

	_, next := pageIDs(t, c.do(op, "GET", "/access/api/v1/tokens?limit=3", admin, nil))
	for q, field := range map[string]string{
		"limit=0": "limit", "limit=-1": "limit", "limit=1001": "limit", "limit=ten": "limit",
		"cursor=garbage": "cursor",
		"cursor=" + next + "&descending_order=false": "cursor",
		"cursor=" + next + "&order_by=expiry":        "cursor",
	} {
		a := c.do(op, "GET", "/access/api/v1/tokens?"+q, admin, nil)
		if a.status != http.StatusBadRequest || !strings.Contains(string(a.body), field) {
			t.Errorf("%s: %d %s, want a 400 naming %s", q, a.status, a.body, field)
		}
	}
}
