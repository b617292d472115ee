package tokens_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

// Two nodes, each with its own device holding the same join key, share one
// PostgreSQL database: tokens of one verify on the other, a revocation on
// one reaches the other, and a refresh token used on both at once works on
// exactly one.
func TestHANodes(t *testing.T) {
	dsn := dbtest.Postgres(t)
	a, _, _ := service(t, dsn)
	b, _, _ := service(t, dsn)
	if a.Issuer() != b.Issuer() {
		t.Fatalf("issuers differ: %s %s", a.Issuer(), b.Issuer())
	}
	iss, err := a.Create(t.Context(), tokens.Request{Subject: "svc", Refreshable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatalf("node b verifying node a's token: %v", err)
	}
	if err := b.Revoke(t.Context(), iss.TokenID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
		t.Fatalf("node a after node b revoked: %v", err)
	}
	grant := issue(t, a, tokens.Request{Subject: "race", Refreshable: true})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := []*tokens.Service{a, b}[i%2].Refresh(t.Context(), grant.RefreshToken, nil); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d refreshes of one token across two nodes succeeded, want 1", wins.Load())
	}
}

func TestOptionsDefaults(t *testing.T) {
	_, node, _ := service(t, dbtest.SQLite(t))
	set := tokens.Options{Leeway: time.Second, CacheSize: -1, RevocationRefresh: time.Minute, MaxLifetime: time.Hour}
	for _, tc := range []struct {
		name     string
		in, want tokens.Options
	}{
		{"zero takes the defaults", tokens.Options{}, tokens.Options{Leeway: 30 * time.Second, CacheSize: 10_000,
			RevocationRefresh: 250 * time.Millisecond, MaxLifetime: 365 * 24 * time.Hour}},
		{"set values stay", set, set},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tokens.New(t.Context(), node, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Settings(); got.Leeway != tc.want.Leeway || got.CacheSize != tc.want.CacheSize ||
				got.RevocationRefresh != tc.want.RevocationRefresh || got.MaxLifetime != tc.want.MaxLifetime {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRequestFieldErrors: a refused request names the field by its JSON
// name and says why, in words that name no CLI flag or command; it is
// ErrRequest (and ErrLifetimeOverMax or ErrAlgorithm where that is why).
func TestRequestFieldErrors(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	create := func(r tokens.Request) error {
		if r.Subject == "" {
			r.Subject = "svc"
		}
		_, err := s.Create(t.Context(), r)
		return err
	}
	pairing := func(p tokens.PairingRequest) func() error {
		return func() error { _, err := s.CreatePairing(t.Context(), p); return err }
	}
	req := func(r tokens.Request) func() error { return func() error { return create(r) } }
	for _, tc := range []struct {
		name  string
		do    func() error
		field string
		says  string
		also  error
	}{
		{"no subject", func() error { _, err := s.Create(t.Context(), tokens.Request{Subject: " "}); return err }, "subject", "subject: is required", nil},
		{"unknown kind", req(tokens.Request{Kind: "admin"}), "kind", `kind: "admin" is not a kind of token`, nil},
		{"zero lifetime", req(tokens.Request{ExpiresIn: -time.Second}), "expires_in", "expires_in: must be at least 1s", nil},
		{"lifetime over the longest", req(tokens.Request{ExpiresIn: 8761 * time.Hour}), "expires_in",
			"expires_in: 8761h0m0s is over the longest token lifetime, 8760h0m0s", tokens.ErrLifetimeOverMax},
		{"refresh lifetime over the longest", req(tokens.Request{Refreshable: true, RefreshTTL: 9000 * time.Hour}), "refresh_expires_in",
			"refresh_expires_in: 9000h0m0s is over the longest token lifetime, 8760h0m0s", tokens.ErrLifetimeOverMax},
		{"short refresh lifetime", req(tokens.Request{Refreshable: true, RefreshTTL: -time.Second}), "refresh_expires_in",
			"refresh_expires_in: must be at least 1s", nil},
		{"subject not UTF-8", req(tokens.Request{Subject: "sv\xff"}), "subject", "subject: must be UTF-8", nil},
		{"description not UTF-8", req(tokens.Request{Description: "\xff"}), "description", "description: must be UTF-8", nil},
		{"unknown alg", req(tokens.Request{Alg: "none"}), "alg", `alg: algorithm not allowed: "none"`, tokens.ErrAlgorithm},
		{"scope of two words", req(tokens.Request{Scope: []string{"read write"}}), "scope", `scope: "read write" must be one word`, nil},
		{"empty audience", req(tokens.Request{Audience: []string{""}}), "audience", `audience: "" must be one word`, nil},
		{"ext not JSON", req(tokens.Request{Ext: "{"}), "ext", "ext: must be JSON", nil},
		{"refreshable pairing token", req(tokens.Request{Kind: tokens.KindPairing, Refreshable: true}), "refreshable",
			"refreshable: only access tokens are refreshable", nil},
		{"no base URL", pairing(tokens.PairingRequest{ExchangeURL: "https://a/x"}), "base_url", "base_url: is required", nil},
		{"relative exchange URL", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "/x"}), "exchange_url",
			"exchange_url: is not an absolute http or https URL", nil},
		{"pairing URL with credentials", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "https://a/x", PairingURL: "https://u:p@a/p"}),
			"pairing_url", "pairing_url: https://u:xxxxx@a/p carries credentials", nil},
		{"pairing lifetime", pairing(tokens.PairingRequest{BaseURL: "https://a", ExchangeURL: "https://a/x", ExpiresIn: -time.Minute}),
			"expires_in", "expires_in: must be at least 1s", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			var fe *tokens.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, tokens.ErrRequest) || !strings.HasPrefix(err.Error(), tc.says) {
				t.Fatalf("got %v; want a FieldError of %s saying %q", err, tc.field, tc.says)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("%v is not %v", err, tc.also)
			}
			if strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "keyward ") {
				t.Fatalf("%v names a CLI flag or command", err)
			}
		})
	}
}

// TestMissingKeysNameNoCommand: signing without the key it needs fails
// with the key's sentinel, in words that name no CLI command.
func TestMissingKeysNameNoCommand(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	_, tok := softhsmtest.OpenTestToken(t)
	store, err := keystore.Open(t.Context(), dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	bare, err := keystore.NewVault(t.Context(), store, keyring.New(tok), keystore.VaultOptions{Joining: true}) // no join key imported
	if err != nil {
		t.Fatal(err)
	}
	noJoin, err := tokens.New(t.Context(), bare, tokens.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    *tokens.Service
		alg  string
		want error
		says string
	}{
		{"no join key", noJoin, tokens.HS256, keystore.ErrNoActiveKey, "no active join key"},
		{"no signing key", s, tokens.ES256, keyring.ErrNoKey, "ES256 tokens need an unretired signing key pair (EC)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.s.Create(t.Context(), tokens.Request{Subject: "svc", Alg: tc.alg})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "keyward ") {
				t.Fatalf("got %v; want %v saying %q and no command", err, tc.want, tc.says)
			}
		})
	}
}
