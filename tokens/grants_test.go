package tokens_test

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

func TestRefresh(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) {
		s, _, _ := service(t, dsn(t))
		first, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Scope: []string{"read", "write"}, Refreshable: true})
		if err != nil || !strings.HasPrefix(first.RefreshToken, "kwr_") {
			t.Fatalf("create: %+v %v", first, err)
		}
		if _, err := s.Refresh(t.Context(), first.RefreshToken, []string{"read", "admin"}); !errors.Is(err, tokens.ErrScopeWidened) {
			t.Fatalf("widening: %v", err)
		}
		second, err := s.Refresh(t.Context(), first.RefreshToken, []string{"read"})
		if err != nil {
			t.Fatalf("refresh after a refused widening: %v", err)
		}
		if second.Scope != "read" || second.TokenID == first.TokenID || second.RefreshToken == first.RefreshToken {
			t.Fatalf("second: %+v", second)
		}
		if _, err := s.Verify(t.Context(), first.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("old access token after refresh: %v", err)
		}
		if _, err := s.Verify(t.Context(), second.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatalf("new access token: %v", err)
		}
		// Reuse of the first refresh token: refused, and the whole family dies.
		if _, err := s.Refresh(t.Context(), first.RefreshToken, nil); !errors.Is(err, tokens.ErrRevoked) || !strings.Contains(err.Error(), "used before") {
			t.Fatalf("reuse: %v", err)
		}
		if _, err := s.Verify(t.Context(), second.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("family member after reuse: %v", err)
		}
		if _, err := s.Refresh(t.Context(), second.RefreshToken, nil); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("family refresh token after reuse: %v", err)
		}
		if _, err := s.Refresh(t.Context(), "kwr_nonsense", nil); !errors.Is(err, tokens.ErrInvalid) {
			t.Fatalf("unknown refresh token: %v", err)
		}

		// Concurrent refreshes of one token: exactly one success.
		grant := issue(t, s, tokens.Request{Subject: "race", Refreshable: true})
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Refresh(t.Context(), grant.RefreshToken, nil); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d concurrent refreshes succeeded, want 1", ok.Load())
		}
	})
}

func TestPairing(t *testing.T) {
	backends(t, func(t *testing.T, dsn func(testing.TB) string) {
		s, _, clk := service(t, dsn(t))
		var fe *tokens.FieldError
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example"}); !errors.Is(err, tokens.ErrRequest) || !errors.As(err, &fe) ||
			fe.Field != "exchange_url" || err.Error() != "exchange_url: is required" {
			t.Fatalf("missing URL: %v", err)
		}
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "ftp://a", ExchangeURL: "https://b/x"}); !errors.Is(err, tokens.ErrRequest) {
			t.Fatalf("ftp URL: %v", err)
		}
		if _, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "/relative", ExchangeURL: "https://b/x"}); !errors.Is(err, tokens.ErrRequest) {
			t.Fatalf("relative URL: %v", err)
		}
		p, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/exchange", PairingURL: "https://a.example/pair"})
		if err != nil || p.ExpiresIn != 300 {
			t.Fatalf("pairing: %+v %v", p, err)
		}
		// A pairing token is not an access token.
		if _, err := s.Verify(t.Context(), p.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrKind) {
			t.Fatalf("pairing token as access: %v", err)
		}
		var winners atomic.Int32
		var master tokens.Issued
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := s.RedeemPairing(t.Context(), p.AccessToken, 0)
				if err == nil {
					winners.Add(1)
					mu.Lock()
					master = m
					mu.Unlock()
				} else if !errors.Is(err, tokens.ErrRevoked) {
					t.Errorf("a losing redemption: %v", err)
				}
			}()
		}
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%d of 50 concurrent redemptions succeeded, want exactly 1", winners.Load())
		}
		c, err := s.Verify(t.Context(), master.AccessToken, tokens.VerifyOptions{})
		if err != nil || c.Kind != "master" || !strings.Contains(c.Ext, "https://a.example/exchange") || master.ExpiresIn != 365*24*3600 {
			t.Fatalf("master token: %+v %v", c, err)
		}
		if err := s.Revoke(t.Context(), master.TokenID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(t.Context(), master.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("revoked master: %v", err)
		}
		// Revoked and expired pairing tokens cannot be redeemed.
		p2, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(t.Context(), p2.TokenID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RedeemPairing(t.Context(), p2.AccessToken, 0); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("revoked pairing: %v", err)
		}
		p3, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://a.example", ExchangeURL: "https://a.example/x"})
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(6 * time.Minute)
		if _, err := s.RedeemPairing(t.Context(), p3.AccessToken, 0); !errors.Is(err, tokens.ErrExpired) {
			t.Fatalf("expired pairing: %v", err)
		}
	})
}

func TestRefreshNeverExtendsTheGrant(t *testing.T) {
	s, _, clk := service(t, dbtest.SQLite(t))
	grant, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Refreshable: true, ExpiresIn: 10 * time.Minute, RefreshTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(50 * time.Minute)
	next, err := s.Refresh(t.Context(), grant.RefreshToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(11 * time.Minute) // the grant's hour is over
	if _, err := s.Refresh(t.Context(), next.RefreshToken, nil); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("refresh past the grant's life: %v", err)
	}
	if _, err := s.Create(t.Context(), tokens.Request{Subject: "ci", Refreshable: true, RefreshTTL: -time.Second}); !errors.Is(err, tokens.ErrRequest) {
		t.Fatalf("negative refresh lifetime: %v", err)
	}
}

func TestPairingURLsCarryNoCredentials(t *testing.T) {
	s, _, _ := service(t, dbtest.SQLite(t))
	_, err := s.CreatePairing(t.Context(), tokens.PairingRequest{BaseURL: "https://admin:hunter2@a.example", ExchangeURL: "https://a.example/x"})
	if !errors.Is(err, tokens.ErrRequest) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("URL with credentials: %v", err)
	}
}
