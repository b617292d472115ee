package test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// token list reads the tokens a page at a time and prints each as it
// comes: --json still prints one JSON array, the table one header.
func TestTokenListPages(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "join")
	var ids []string
	for range 7 {
		ids = append(ids, c.createToken("--subject", "pages").TokenID)
	}
	c.ok("token", "revoke", "--id", ids[3])
	// Newest first: ids are UUIDv7, in order of issue.
	slices.Sort(ids)
	slices.Reverse(ids)
	live := slices.Delete(slices.Clone(ids), 3, 4)

	listed := func(args ...string) []string {
		t.Helper()
		out := c.ok(append([]string{"--json", "token", "list", "--subject", "pages"}, args...)...)
		var list []struct {
			ID string `json:"token_id"`
		}
		if !json.Valid([]byte(out)) || json.Unmarshal([]byte(out), &list) != nil {
			t.Fatalf("token list %v printed no JSON array:\n%s", args, out)
		}
		var got []string
		for _, e := range list {
			got = append(got, e.ID)
		}
		return got
	}
	for _, size := range []string{"1", "3", "6", "7", "1000"} {
		if got := listed("--all", "--page-size", size); !slices.Equal(got, ids) {
			t.Errorf("--all --page-size %s: %v, want %v", size, got, ids)
		}
		if got := listed("--page-size", size); !slices.Equal(got, live) {
			t.Errorf("--page-size %s: %v, want %v", size, got, live)
		}
	}
	if out := c.ok("--json", "token", "list", "--subject", "nobody", "--page-size", "2"); out != "[]\n" {
		t.Errorf("an empty listing: %q", out)
	}

	lines := strings.Split(strings.TrimSpace(c.ok("token", "list", "--subject", "pages", "--all", "--page-size", "2")), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "ID ") {
		t.Fatalf("table in pages of 2: %q", lines)
	}
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, ids[i]+" ") {
			t.Errorf("table row %d: %q, want token %s", i, l, ids[i])
		}
	}
	for _, bad := range []string{"0", "-1", "1001"} {
		c.fails(2, "--page-size must be from 1 to 1000", "token", "list", "--page-size", bad)
	}
}
