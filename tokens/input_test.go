package tokens_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// TestRequestTextIsPrintable: the text a token carries or its record keeps
// (subject, description, audience, scope words) holds no control or format
// character, for any caller of the library: a subject with ESC and a
// newline would reach terminals and logs as it is.
func TestRequestTextIsPrintable(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	for _, tc := range []struct {
		name, field string
		r           tokens.Request
	}{
		{"ESC and newline in subject", "subject", tokens.Request{Subject: "evil\x1b[31m\nX-Injected: 1"}},
		{"DEL in subject", "subject", tokens.Request{Subject: "a\x7fb"}},
		{"C1 control in subject", "subject", tokens.Request{Subject: "a\u0085b"}},
		{"right-to-left override in subject", "subject", tokens.Request{Subject: "admin\u202etxt.exe"}},
		{"zero-width space in subject", "subject", tokens.Request{Subject: "ad\u200bmin"}},
		{"newline in description", "description", tokens.Request{Subject: "svc", Description: "nightly\nX-Injected: 1"}},
		{"line separator in description", "description", tokens.Request{Subject: "svc", Description: "a\u2028b"}},
		{"paragraph separator in description", "description", tokens.Request{Subject: "svc", Description: "a\u2029b"}},
		{"tab in description", "description", tokens.Request{Subject: "svc", Description: "a\tb"}},
		{"ESC in a scope word", "scope", tokens.Request{Subject: "svc", Scope: []string{"read", "wr\x1bite"}}},
		{"line separator in a scope word", "scope", tokens.Request{Subject: "svc", Scope: []string{"read\u2028admin"}}},
		{"isolate in audience", "audience", tokens.Request{Subject: "svc", Audience: []string{"jfrt@\u2066x"}}},
		{"NUL in audience", "audience", tokens.Request{Subject: "svc", Audience: []string{"a\x00"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(t.Context(), tc.r)
			var fe *tokens.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, tokens.ErrRequest) {
				t.Fatalf("got %v; want a FieldError of %s", err, tc.field)
			}
			// The character is named by its code point, never written out.
			if !strings.Contains(err.Error(), "U+") || strings.ContainsFunc(err.Error(), func(r rune) bool { return r < ' ' || r > '~' }) {
				t.Fatalf("%q does not name the character by its code point alone", err)
			}
		})
	}
	_, err := s.CreatePairing(t.Context(), tokens.PairingRequest{Subject: "a\x1bb", BaseURL: "https://a", ExchangeURL: "https://a/x"})
	if fe := (*tokens.FieldError)(nil); !errors.As(err, &fe) || fe.Field != "subject" {
		t.Fatalf("a pairing token's subject with ESC: %v", err)
	}
	// A scope word or an audience holds no space of any kind: a token's
	// scope is split with strings.Fields, at each.
	for _, r := range []tokens.Request{{Subject: "svc", Scope: []string{"read\u00a0admin"}}, {Subject: "svc", Audience: []string{"a\u3000b"}}} {
		if _, err := s.Create(t.Context(), r); err == nil || !strings.Contains(err.Error(), "must be one word") {
			t.Errorf("%+v: %v", r, err)
		}
	}
	// Printable text of any script stays accepted.
	for _, r := range []tokens.Request{
		{Subject: "José Müller", Description: "für 日本のビルド 🚀, “quoted” — fine"},
		{Subject: "svc", Scope: []string{"applied-permissions/user", "store:read"}, Audience: []string{"jfrt@*"}},
		{Subject: "\ufffd", Description: "a replacement character, written out"},
	} {
		if _, err := s.Create(t.Context(), r); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

// TestRefreshWithEmptyScopeKeepsTheGrant: an empty scope (a form's or
// JSON's scope="") asks for the grant's scope, as no scope does; it never
// empties the grant for good.
func TestRefreshWithEmptyScopeKeepsTheGrant(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	grant := issue(t, s, tokens.Request{Subject: "ci", Scope: []string{"read", "write"}, Refreshable: true})
	next, err := s.RefreshWith(t.Context(), tokens.RefreshRequest{RefreshToken: grant.RefreshToken, Scope: []string{}})
	if err != nil || next.Scope != "read write" {
		t.Fatalf("refresh with an empty scope: %+v %v", next, err)
	}
	last, err := s.Refresh(t.Context(), next.RefreshToken, nil)
	if err != nil || last.Scope != "read write" {
		t.Fatalf("the refresh after: %+v %v", last, err)
	}
	// Narrowing still narrows.
	if n, err := s.Refresh(t.Context(), last.RefreshToken, []string{"read"}); err != nil || n.Scope != "read" {
		t.Fatalf("narrowed: %+v %v", n, err)
	}
}
