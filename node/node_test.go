package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

var bg = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.Stop()
	softhsmtest.CleanupTestTokens()
	os.Exit(code)
}

func TestOpenDefaultsAndClose(t *testing.T) {
	tok := softhsmtest.NewTestToken(t)
	home := t.TempDir()
	n, err := node.Open(bg, node.Config{Device: tok.Config(), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "keyward.db")); err != nil || n.Home() != home || n.Device().Software == "" {
		t.Fatalf("opened in %s (device %+v): %v", n.Home(), n.Device(), err)
	}
	if _, err := n.GenerateKey(bg, keyring.Join, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	// Close commits the tokens queued for the group commit before it
	// closes the database.
	var wg sync.WaitGroup
	ids := make(chan string, 64)
	for range 64 {
		wg.Go(func() {
			iss, err := n.Tokens().Create(bg, tokens.Request{Subject: "close"})
			if err == nil {
				ids <- iss.TokenID
			}
		})
	}
	wg.Wait()
	close(ids)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Tokens().Create(bg, tokens.Request{Subject: "late"}); err == nil {
		t.Fatalf("create after Close: %v", err)
	}
	n2, err := node.Open(bg, node.Config{Device: tok.Config(), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	list, _ := n2.Tokens().List(bg, "close", true)
	if len(list) != 64 {
		t.Fatalf("%d of 64 tokens recorded", len(list))
	}
}

func TestOpenReconciles(t *testing.T) {
	dsn := dbtest.SQLite(t)
	a := softhsmtest.NewTestToken(t)
	na, err := node.Open(bg, node.Config{Device: a.Config(), DB: dsn, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := na.GenerateKey(bg, keyring.Master, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	na.Close()
	// Another device on the same database lacks the registered key.
	b := softhsmtest.NewTestToken(t)
	if _, err := node.Open(bg, node.Config{Device: b.Config(), DB: dsn, Home: t.TempDir()}); !errors.Is(err, keystore.ErrKeyMissing) {
		t.Fatalf("a node without the registered key opened: %v", err)
	}
	nb, err := node.Open(bg, node.Config{Device: b.Config(), DB: dsn, Home: t.TempDir(), Joining: true})
	if err != nil {
		t.Fatalf("joining: %v", err)
	}
	defer nb.Close()
	if m := nb.MissingKeys(); len(m) != 1 || m[0].Role != "master" {
		t.Fatalf("missing: %v", m)
	}
}

func TestOpenExplainsDeviceErrors(t *testing.T) {
	tok := softhsmtest.NewTestToken(t)
	cfg := tok.Config()
	cfg.PIN = hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return []byte("wrong-pin"), nil })
	_, err := node.Open(bg, node.Config{Device: cfg, Home: t.TempDir()})
	if !errors.Is(err, hsm.ErrPINIncorrect) || !strings.Contains(err.Error(), "check the PIN source") || strings.Contains(err.Error(), "wrong-pin") {
		t.Fatalf("wrong PIN: %v", err)
	}
	cfg = tok.Config()
	cfg.TokenLabel = "no-such-token"
	if _, err := node.Open(bg, node.Config{Device: cfg, Home: t.TempDir()}); !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Fatalf("missing token: %v", err)
	}
}
