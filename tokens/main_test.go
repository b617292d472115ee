package tokens_test

import (
	"encoding/base64"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

func TestMain(m *testing.M) { testmain.Run(m) }

const joinHex = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// service makes a node on a fresh token and database at dsn with the known
// join key, and its token service.
func service(t testing.TB, dsn string) (*tokens.Service, *keystore.Vault, *clock) {
	t.Helper()
	_, tok := softhsmtest.OpenTestToken(t)
	store, err := keystore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	node, err := keystore.NewVault(t.Context(), store, keyring.New(tok), keystore.VaultOptions{Joining: true})
	if err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(joinHex)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.Import(t.Context(), keyring.Join, key, hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	s, err := tokens.New(t.Context(), node, tokens.Options{Now: clk.Now, RevocationRefresh: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, node, clk
}

// issue creates a token with s, failing tb if it cannot.
func issue(tb testing.TB, s *tokens.Service, r tokens.Request) tokens.Issued {
	tb.Helper()
	iss, err := s.Create(tb.Context(), r)
	if err != nil {
		tb.Fatalf("create %s token for %q: %v", r.Kind, r.Subject, err)
	}
	return iss
}

// unverified reads a token's claims without verifying it.
func unverified(tb testing.TB, token string) jwt.MapClaims {
	tb.Helper()
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		tb.Fatal(err)
	}
	return c
}

// unb64 decodes a token segment (base64url, no padding).
func unb64(tb testing.TB, seg string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatalf("token segment %q: %v", seg, err)
	}
	return b
}

func backends(t *testing.T, f func(t *testing.T, dsn func(testing.TB) string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, dbtest.SQLite) })
	t.Run("postgres", func(t *testing.T) { f(t, dbtest.Postgres) })
}
