package main

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/tokens"
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

// The library names a request field by its API name and no flag; the CLI
// names the flag and adds what to do, and classifies by node.KindOf.
func TestMessageAndExitCode(t *testing.T) {
	over := &tokens.FieldError{Field: "refresh_expires_in", Err: fmt.Errorf("9000h0m0s is %w, 8760h0m0s", tokens.ErrLifetimeOverMax)}
	for _, tc := range []struct {
		err  error
		msg  string
		code int
	}{
		{over, "--refresh-expires-in 9000h0m0s is over the longest token lifetime, 8760h0m0s; raise --max-token-lifetime (KEYWARD_MAX_TOKEN_LIFETIME) to allow more", exitUsage},
		{fmt.Errorf("pairing: %w", &tokens.FieldError{Field: "exchange_url", Err: errors.New("is required")}), "pairing: --exchange-url is required", exitUsage},
		{fmt.Errorf("%w: the registry in x.db has no active master key", keystore.ErrNoActiveKey), "no active key: the registry in x.db has no active master key; generate one with keyward key generate --role ROLE, or import one", exitError},
		{fmt.Errorf("%w: tampered", hsm.ErrAuthentication), "message authentication failed: tampered", exitCheckFailed},
		{fmt.Errorf("%w: %w", tokens.ErrInvalid, tokens.ErrAlgorithm), "invalid token: algorithm not allowed", exitCheckFailed},
		{usagef("--role is required"), "--role is required", exitUsage},
		{errors.New("something else"), "something else", exitError},
	} {
		if got := message(tc.err); got != tc.msg {
			t.Errorf("message(%v) =\n%q, want\n%q", tc.err, got, tc.msg)
		}
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}
