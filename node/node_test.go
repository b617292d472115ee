package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

func TestMain(m *testing.M) { testmain.Run(m) }

func TestOpenDefaultsAndClose(t *testing.T) {
	tok := softhsmtest.NewTestToken(t)
	home := t.TempDir()
	n, err := node.Open(t.Context(), node.Config{Device: tok.Config(), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, "keyward.db")); err != nil || n.Home() != home || n.Device().Software == "" {
		t.Fatalf("opened in %s (device %+v): %v", n.Home(), n.Device(), err)
	}
	if _, err := n.GenerateKey(t.Context(), keyring.Join, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	// Close commits the tokens queued for the group commit before it
	// closes the database.
	var wg sync.WaitGroup
	ids := make(chan string, 64)
	for range 64 {
		wg.Go(func() {
			iss, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "close"})
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
	if _, err := n.Tokens().Create(t.Context(), tokens.Request{Subject: "late"}); err == nil {
		t.Fatalf("create after Close: %v", err)
	}
	n2, err := node.Open(t.Context(), node.Config{Device: tok.Config(), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	page, err := n2.Tokens().List(t.Context(), keystore.TokenFilter{Subject: "close", All: true})
	list := page.Tokens
	if err != nil || len(list) != 64 {
		t.Fatalf("%d of 64 tokens recorded: %v", len(list), err)
	}
}

func TestOpenReconciles(t *testing.T) {
	dsn := dbtest.SQLite(t)
	a := softhsmtest.NewTestToken(t)
	na, err := node.Open(t.Context(), node.Config{Device: a.Config(), DB: dsn, Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := na.GenerateKey(t.Context(), keyring.Master, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	if err := na.Close(); err != nil {
		t.Fatal(err)
	}
	// Another device on the same database lacks the registered key.
	b := softhsmtest.NewTestToken(t)
	if _, err := node.Open(t.Context(), node.Config{Device: b.Config(), DB: dsn, Home: t.TempDir()}); !errors.Is(err, keystore.ErrKeyMissing) {
		t.Fatalf("a node without the registered key opened: %v", err)
	}
	nb, err := node.Open(t.Context(), node.Config{Device: b.Config(), DB: dsn, Home: t.TempDir(), Joining: true})
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
	_, err := node.Open(t.Context(), node.Config{Device: cfg, Home: t.TempDir()})
	if !errors.Is(err, hsm.ErrPINIncorrect) || !strings.Contains(err.Error(), "check the PIN source") || strings.Contains(err.Error(), "wrong-pin") {
		t.Fatalf("wrong PIN: %v", err)
	}
	cfg = tok.Config()
	cfg.TokenLabel = "no-such-token"
	if _, err := node.Open(t.Context(), node.Config{Device: cfg, Home: t.TempDir()}); !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Fatalf("missing token: %v", err)
	}
}

// The guard is the library's: a caller of node (or of keystore beneath
// it) cannot destroy a key that still opens data, whatever it checked.
func TestDestroyKeyRefusesKeysInUse(t *testing.T) {
	tok := softhsmtest.NewTestToken(t)
	n, err := node.Open(t.Context(), node.Config{Device: tok.Config(), Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.GenerateKey(t.Context(), keyring.Master, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Put(t.Context(), "db/password", []byte("s3cret")); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DestroyKey(t.Context(), keyring.Master, 1); !errors.Is(err, keystore.ErrKeyInUse) || node.KindOf(err) != node.KindKeyState {
		t.Fatalf("destroy the active master key: %v", err)
	}
	if _, err := n.RotateKey(t.Context(), keyring.Master, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DestroyKey(t.Context(), keyring.Master, 1); !errors.Is(err, keystore.ErrKeyInUse) {
		t.Fatalf("destroy a decrypt-only master key: %v", err)
	}
	if v, err := n.Get(t.Context(), "db/password"); err != nil || string(v) != "s3cret" {
		t.Fatalf("the record after refused destroys: %q %v", v, err)
	}
	if _, err := n.Rewrap(t.Context(), 10, nil); err != nil {
		t.Fatal(err)
	}
	if err := n.RetireKey(t.Context(), keyring.Master, 1); err != nil {
		t.Fatal(err)
	}
	if e, err := n.DestroyKey(t.Context(), keyring.Master, 1); err != nil || e.Label != "keyward/master/v1" {
		t.Fatalf("destroy the retired master key: %+v %v", e, err)
	}
	list, err := n.ListKeys(t.Context())
	if err != nil || len(list.Keys) != 1 || list.Keys[0].Version != 2 {
		t.Fatalf("keys after destroying v1: %+v %v", list, err)
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want node.Kind
	}{
		// A reused refresh token is revoked and used: used says more.
		{fmt.Errorf("%w: %w", tokens.ErrRevoked, keystore.ErrTokenUsed), node.KindAlreadyUsed},
		// A token with an algorithm not accepted is an invalid token; an
		// algorithm not accepted in a request is a usage error.
		{fmt.Errorf("%w: %w", tokens.ErrInvalid, tokens.ErrAlgorithm), node.KindInvalidToken},
		{&tokens.FieldError{Field: "alg", Err: tokens.ErrAlgorithm}, node.KindUsage},
		{fmt.Errorf("%w: x", keystore.ErrTooLarge), node.KindTooLarge},
		{fmt.Errorf("%w: x", keystore.ErrNotFound), node.KindNotFound},
		{fmt.Errorf("%w: x", hsm.ErrAuthentication), node.KindBadCiphertext},
		{fmt.Errorf("%w: x", keystore.ErrKeyMismatch), node.KindKeyMismatch},
		{fmt.Errorf("%w: x", hsm.ErrKCVMismatch), node.KindKeyMismatch},
		{fmt.Errorf("%w: x", keystore.ErrNoActiveKey), node.KindKeyState},
		{fmt.Errorf("%w: x", keystore.ErrDatabase), node.KindDatabaseUnavailable},
		{fmt.Errorf("%w: x", hsm.ErrDevice), node.KindDeviceUnavailable},
		{fmt.Errorf("%w: x", hsm.ErrPINIncorrect), node.KindDeviceUnavailable},
		{fmt.Errorf("%w: x", context.DeadlineExceeded), node.KindTimeout},
		{fmt.Errorf("%w: x", ceremony.ErrKeyLength), node.KindInvalid},
		{fmt.Errorf("%w: x", node.ErrNoModule), node.KindUsage},
		{errors.New("anything else"), node.KindInternal},
	} {
		if got := node.KindOf(tc.err); got != tc.want {
			t.Errorf("KindOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
