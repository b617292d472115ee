package main

import (
	"slices"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"kw", "store", "put", "a", "--from", "-"}, []string{"kw", "store", "put", "--from", "-", "a"}},
		{[]string{"kw", "--json", "store", "get", "a/b", "--out=x"}, []string{"kw", "--json", "store", "get", "--out=x", "a/b"}},
		{[]string{"kw", "--db", "x.db", "store", "get", "a/b", "--out", "x"}, []string{"kw", "--db", "x.db", "store", "get", "--out", "x", "a/b"}},
		{[]string{"kw", "store", "put", "--from", "f", "a"}, []string{"kw", "store", "put", "--from", "f", "a"}},
		{[]string{"kw", "store", "put", "a", "--max-record", "9", "--from", "f"}, []string{"kw", "store", "put", "--max-record", "9", "--from", "f", "a"}},
		{[]string{"kw", "store", "delete", "--", "-odd-name"}, []string{"kw", "store", "delete", "--", "-odd-name"}},
		{[]string{"kw", "store", "rewrap", "--batch", "5"}, []string{"kw", "store", "rewrap", "--batch", "5"}},
		{[]string{"kw", "key", "list"}, []string{"kw", "key", "list"}},
		{[]string{"kw", "no-such", "a", "--from", "f"}, []string{"kw", "no-such", "a", "--from", "f"}},
	} {
		if got := flagsFirst(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
