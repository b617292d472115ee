// Package softhsmtest gives tests throwaway SoftHSM2 tokens (or the real
// device the KEYWARD_TEST_PKCS11_* variables name). It imports testing, so
// only tests import it: the shipped binary never links it.
package softhsmtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm"
)

// Environment variables that point the tests at a real device instead of
// SoftHSM2. The token they name must be dedicated to tests: the helper
// destroys every key on it before and after each test.
const (
	EnvTestModule = "KEYWARD_TEST_PKCS11_MODULE"
	EnvTestToken  = "KEYWARD_TEST_PKCS11_TOKEN"
	EnvTestPIN    = "KEYWARD_TEST_PKCS11_PIN"
)

var testHome struct {
	once   sync.Once
	dir    string
	module *hsm.Module // keeps the library loaded for the whole test binary
	err    error
	n      atomic.Int64
}

// external serializes tests on an external device: they share one token.
var external struct {
	sync.Mutex
	holderMu sync.Mutex
	holder   testing.TB // the test holding it
}

// NewTestToken returns a fresh, empty token for tb, removed from use when
// tb ends. Every test binary gets one SoftHSM2 home in a temporary
// directory; each call initializes a new token in it. When the
// KEYWARD_TEST_PKCS11_* variables are set, it returns that device's token
// instead, emptied of keys, and tests using it run one at a time. With
// neither, the test is skipped with the reason.
func NewTestToken(tb testing.TB) *softhsm.Token {
	tb.Helper()
	if os.Getenv(EnvTestModule) != "" {
		return externalToken(tb)
	}
	testHome.once.Do(func() {
		testHome.dir, testHome.err = os.MkdirTemp("", "keyward-softhsm-")
		if testHome.err != nil {
			return
		}
		if _, testHome.err = softhsm.Configure(testHome.dir); testHome.err != nil {
			return
		}
		var module string
		if module, testHome.err = softhsm.ModulePath(); testHome.err != nil {
			return
		}
		testHome.module, testHome.err = hsm.LoadModule(module)
	})
	if testHome.err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("SoftHSM2 is required in CI: %v", testHome.err)
		}
		tb.Skipf("no PKCS#11 device for this test: %v (install SoftHSM2: apt-get install softhsm2, or set %s, %s and %s)",
			testHome.err, EnvTestModule, EnvTestToken, EnvTestPIN)
	}
	label := fmt.Sprintf("kw-test-%d", testHome.n.Add(1))
	tok, err := softhsm.NewToken(testHome.dir, label)
	if err != nil {
		tb.Fatalf("softhsm: %v", err)
	}
	return tok
}

// CleanupTestTokens removes the test binary's SoftHSM2 home after m.Run;
// internal/testmain calls it for every test package.
func CleanupTestTokens() {
	if testHome.module != nil {
		testHome.module.Close()
	}
	if testHome.dir != "" {
		os.RemoveAll(testHome.dir)
	}
}

func externalToken(tb testing.TB) *softhsm.Token {
	tb.Helper()
	label, pin := os.Getenv(EnvTestToken), os.Getenv(EnvTestPIN)
	if label == "" || pin == "" {
		tb.Fatalf("%s is set: set %s and %s too", EnvTestModule, EnvTestToken, EnvTestPIN)
	}
	external.holderMu.Lock()
	again := external.holder == tb
	external.holderMu.Unlock()
	if again {
		tb.Skipf("this test needs two tokens; %s names only one", EnvTestToken)
	}
	external.Lock()
	external.holderMu.Lock()
	external.holder = tb
	external.holderMu.Unlock()
	tok := softhsm.External(os.Getenv(EnvTestModule), label, []byte(pin))
	wipe := func(ctx context.Context) {
		if err := wipeKeys(ctx, tok); err != nil {
			tb.Errorf("empty test token %s: %v", tok, err)
		}
	}
	wipe(tb.Context())
	tb.Cleanup(func() {
		wipe(context.Background()) // tb.Context() is done before cleanups run
		external.holderMu.Lock()
		external.holder = nil
		external.holderMu.Unlock()
		external.Unlock()
	})
	return tok
}

// wipeKeys destroys every key on the token.
func wipeKeys(ctx context.Context, tok *softhsm.Token) error {
	t, err := tok.Open(ctx)
	if err != nil {
		return err
	}
	defer t.Close()
	keys, err := t.List(ctx)
	if err != nil {
		return err
	}
	for _, info := range keys {
		k, err := t.Find(ctx, info.Label)
		if err != nil {
			return err
		}
		if err := t.Destroy(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// OpenTestToken is NewTestToken opened through hsm, closed when tb ends.
func OpenTestToken(tb testing.TB) (*softhsm.Token, *hsm.Token) {
	tb.Helper()
	tok := NewTestToken(tb)
	t, err := tok.Open(tb.Context())
	if err != nil {
		tb.Fatalf("open %s: %v", tok, err)
	}
	tb.Cleanup(func() { t.Close() })
	return tok, t
}

// PINCounted reads the token's PIN flags as the device reports them: true
// when it says it counts wrong PINs (SoftHSM2 does after one; NSS softokn
// never says).
func PINCounted(tb testing.TB, tok *softhsm.Token) bool {
	tb.Helper()
	mod, err := hsm.LoadModule(tok.Module)
	if err != nil {
		tb.Fatal(err)
	}
	defer mod.Close()
	infos, err := mod.Tokens()
	if err != nil {
		tb.Fatal(err)
	}
	for _, info := range infos {
		if info.Label == tok.Label {
			return info.PINCounted
		}
	}
	tb.Fatalf("token %q not listed by %s", tok.Label, tok.Module)
	return false
}
