package keystore_test

import (
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { testmain.Run(m) }

// backends runs f against SQLite and PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, newDSN func(testing.TB) string)) {
	t.Run("sqlite", func(t *testing.T) { f(t, dbtest.SQLite) })
	t.Run("postgres", func(t *testing.T) { f(t, dbtest.Postgres) })
}

// node opens a store at dsn and a fresh token, and reconciles them.
func node(t testing.TB, dsn string) (*keystore.Vault, *hsm.Token) {
	t.Helper()
	_, tok := softhsmtest.OpenTestToken(t)
	return nodeOn(t, dsn, tok), tok
}

func nodeOn(t testing.TB, dsn string, tok *hsm.Token) *keystore.Vault {
	t.Helper()
	store, err := keystore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	n, err := keystore.NewVault(t.Context(), store, keyring.New(tok), keystore.VaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hexKey(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}
