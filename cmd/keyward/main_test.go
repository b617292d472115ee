package main

import (
	"slices"
	"testing"
)

func TestHoistFlags(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"kw", "store", "put", "a", "--from", "-"}, []string{"kw", "store", "put", "--from", "-", "a"}},
		{[]string{"kw", "--json", "store", "get", "a/b", "--out=x"}, []string{"kw", "--json", "store", "get", "--out=x", "a/b"}},
		{[]string{"kw", "store", "put", "--from", "f", "a"}, []string{"kw", "store", "put", "--from", "f", "a"}},
		{[]string{"kw", "store", "delete", "--", "-odd-name"}, []string{"kw", "store", "delete", "--", "-odd-name"}},
		{[]string{"kw", "store", "rewrap", "--batch", "5"}, []string{"kw", "store", "rewrap", "--batch", "5"}},
		{[]string{"kw", "key", "list"}, []string{"kw", "key", "list"}},
	} {
		if got := hoistFlags(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("hoistFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
