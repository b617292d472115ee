package hsm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestBadInput(t *testing.T) {
	st := softhsmtest.NewTestToken(t)
	wrongPIN := hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return []byte("not-the-pin"), nil })

	_, tok := softhsmtest.OpenTestToken(t)
	if _, err := tok.GenerateAES(t.Context(), "taken", 256, hsm.UsageEncrypt, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		run  func() error
		want error
		says string // what the message must tell a person
	}{
		{"relative module path", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: "libsofthsm2.so", TokenLabel: st.Label, PIN: st.PINSource()})
			return err
		}, hsm.ErrConfig, "not absolute"},
		{"missing module file", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: "/nonexistent/libpkcs11.so", TokenLabel: st.Label, PIN: st.PINSource()})
			return err
		}, hsm.ErrModule, "/nonexistent/libpkcs11.so"},
		{"module is not a library", func() error {
			p := filepath.Join(t.TempDir(), "fake.so")
			os.WriteFile(p, []byte("not an ELF file"), 0o600)
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: p, TokenLabel: st.Label, PIN: st.PINSource()})
			return err
		}, hsm.ErrModule, "could not be loaded"},
		{"unknown token label", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: st.Module, TokenLabel: "no-such-token", PIN: st.PINSource()})
			return err
		}, hsm.ErrTokenNotFound, `"no-such-token"`},
		{"two token selectors", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: st.Module, TokenLabel: st.Label, TokenSerial: st.Serial, PIN: st.PINSource()})
			return err
		}, hsm.ErrConfig, "exactly one"},
		{"PIN variable unset", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: st.Module, TokenLabel: st.Label, PIN: hsm.PINFromEnv("KEYWARD_TEST_UNSET_PIN")})
			return err
		}, hsm.ErrPINSource, "KEYWARD_TEST_UNSET_PIN"},
		{"wrong PIN", func() error {
			_, err := hsm.Open(t.Context(), hsm.Config{ModulePath: st.Module, TokenLabel: st.Label, PIN: wrongPIN})
			return err
		}, hsm.ErrPINIncorrect, "CKR_PIN_INCORRECT"},
		{"20-byte AES key", func() error {
			_, err := tok.ImportAES(t.Context(), "short", make([]byte, 20), hsm.UsageEncrypt, hsm.PolicyLocal, "")
			return err
		}, hsm.ErrInvalidKey, "16, 24 or 32 bytes"},
		{"AES key of 100 bits", func() error {
			_, err := tok.GenerateAES(t.Context(), "odd", 100, hsm.UsageEncrypt, hsm.PolicyLocal)
			return err
		}, hsm.ErrInvalidKey, "128, 192 or 256"},
		{"duplicate label", func() error {
			_, err := tok.GenerateAES(t.Context(), "taken", 256, hsm.UsageEncrypt, hsm.PolicyLocal)
			return err
		}, hsm.ErrKeyExists, `"taken"`},
		{"duplicate label on import", func() error {
			_, err := tok.ImportAES(t.Context(), "taken", make([]byte, 32), hsm.UsageEncrypt, hsm.PolicyLocal, "")
			return err
		}, hsm.ErrKeyExists, `"taken"`},
		{"unknown label", func() error {
			_, err := tok.Find(t.Context(), "keyward/master/v9")
			return err
		}, hsm.ErrKeyNotFound, `"keyward/master/v9"`},
	}
	seen := map[error]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("message %q does not say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), string(st.PIN())) {
				t.Errorf("message %q contains the PIN", err)
			}
			seen[tc.want] = true
		})
	}
	if len(seen) < 8 {
		t.Errorf("only %d distinct sentinels", len(seen))
	}
	// The wrong PIN was tried once: the right one still works.
	ok, err := st.Open(t.Context())
	if err != nil {
		t.Fatalf("right PIN after a wrong one: %v", err)
	}
	ok.Close()
}

func TestSecondOpenSharesLogin(t *testing.T) {
	st, a := softhsmtest.OpenTestToken(t)
	b, err := st.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	k, err := a.GenerateAES(t.Context(), "shared", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.Find(t.Context(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	// a is still logged in after b's Close.
	sealed, err := k.Seal(t.Context(), []byte("x"), nil)
	if err != nil {
		t.Fatalf("after closing the second handle: %v", err)
	}
	if _, err := kb.Open(t.Context(), sealed, nil); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("key of a closed handle: %v, want ErrClosed", err)
	}
	// A second Open with a wrong PIN is refused, not waved through by
	// CKR_USER_ALREADY_LOGGED_IN.
	bad := st.Config()
	bad.PIN = hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return []byte("wrong"), nil })
	if _, err := hsm.Open(t.Context(), bad); !errors.Is(err, hsm.ErrPINIncorrect) {
		t.Fatalf("second Open with a wrong PIN: %v", err)
	}
}

// mixedOps runs one of each operation keyward does all day.
func mixedOps(ctx context.Context, tok *hsm.Token, gcm, mac *hsm.Key, signer crypto.Signer, i int) error {
	msg := []byte(fmt.Sprintf("message %d", i))
	switch i % 4 {
	case 0:
		sealed, err := gcm.Seal(ctx, msg, []byte("aad"))
		if err != nil {
			return err
		}
		pt, err := gcm.Open(ctx, sealed, []byte("aad"))
		if err != nil || !bytes.Equal(pt, msg) {
			return fmt.Errorf("round trip: %v", err)
		}
	case 1:
		m, err := mac.HMAC(ctx, crypto.SHA256, msg)
		if err != nil {
			return err
		}
		return mac.VerifyHMAC(ctx, crypto.SHA256, msg, m)
	case 2:
		d := sha256.Sum256(msg)
		_, err := signer.Sign(nil, d[:], crypto.SHA256)
		return err
	case 3:
		if _, err := tok.Find(ctx, "gcm"); err != nil {
			return err
		}
		_, err := gcm.KCV(ctx)
		return err
	}
	return nil
}

func setupMixed(t *testing.T, tok *hsm.Token) (gcm, mac *hsm.Key, signer crypto.Signer) {
	t.Helper()
	gcm, err := tok.GenerateAES(t.Context(), "gcm", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	join, err := tok.GenerateAES(t.Context(), "join", 256, hsm.UsageDerive, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	mac, err = tok.DeriveHMACKey(t.Context(), join, hmacData(), "mac")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tok.GenerateKeyPair(t.Context(), "sign", hsm.ECP256, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pair.Signer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return gcm, mac, s
}

func TestConcurrentMixedOperations(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	gcm, mac, signer := setupMixed(t, tok)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if err := mixedOps(t.Context(), tok, gcm, mac, signer, g+i); err != nil {
					errs <- fmt.Errorf("goroutine %d op %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRecoversFromLostSessionsAndLogin(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	gcm, mac, signer := setupMixed(t, tok)
	// Fill the pool with several sessions first.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); mixedOps(t.Context(), tok, gcm, mac, signer, g) }()
	}
	wg.Wait()

	for _, tc := range []struct {
		name   string
		break_ func(*hsm.Token) error
	}{
		{"all sessions closed", hsm.CloseAllSessions},
		{"logged out", hsm.LogoutBehindBack},
		{"closed again", hsm.CloseAllSessions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.break_(tok); err != nil {
				t.Fatal(err)
			}
			for i := range 8 {
				if err := mixedOps(t.Context(), tok, gcm, mac, signer, i); err != nil {
					t.Fatalf("op %d after %s: %v", i, tc.name, err)
				}
			}
		})
	}
}

func TestPoolWaitHonoursContext(t *testing.T) {
	st := softhsmtest.NewTestToken(t)
	cfg := st.Config()
	cfg.MaxSessions = 1
	tok, err := hsm.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	k, err := tok.GenerateAES(t.Context(), "k", 128, hsm.UsageEncrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	// A caller already gone asks nothing of the device...
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := k.Seal(ctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("seal with a cancelled context: %v", err)
	}
	if _, err := k.Seal(t.Context(), []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	// ...and with the only session taken, a waiter gives up on its deadline.
	release := hsm.HoldSession(tok)
	defer release()
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := k.Seal(ctx, []byte("x"), nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

// TestWrongPINSaysTheTokenCountsIt: after a refused login the token's
// retry flags are read and said, before the token locks (SoftHSM2 sets
// CKF_USER_PIN_COUNT_LOW after a wrong PIN). A device in the quirks table
// sets them as its NoPINRetryFlags says.
func TestWrongPINSaysTheTokenCountsIt(t *testing.T) {
	st := softhsmtest.NewTestToken(t)
	cfg := st.Config()
	cfg.PIN = hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return []byte("wrong-pin"), nil })
	_, err := hsm.Open(t.Context(), cfg)
	if !errors.Is(err, hsm.ErrPINIncorrect) {
		t.Fatalf("wrong PIN: %v; want ErrPINIncorrect", err)
	}
	counted := softhsmtest.PINCounted(t, st)
	tok, oerr := st.Open(t.Context())
	if oerr != nil {
		t.Fatalf("the right PIN after the wrong one: %v", oerr)
	}
	q := hsm.QuirksOf(tok)
	tok.Close()
	if q.Name != "" && q.NoPINRetryFlags == counted {
		t.Errorf("%s: the table says NoPINRetryFlags=%v, but after a wrong PIN the token's flags say counted=%v", q.Name, q.NoPINRetryFlags, counted)
	}
	if !counted {
		t.Skipf("token %q sets no PIN retry flag after a wrong PIN (CKF_USER_PIN_COUNT_LOW): there is no count to report", st.Label)
	}
	if !strings.Contains(err.Error(), "warning: the token has counted wrong PINs") ||
		!strings.Contains(err.Error(), "CKF_USER_PIN_COUNT_LOW") {
		t.Fatalf("wrong PIN: %v; want ErrPINIncorrect with the retry warning", err)
	}
}

// TestPINFileModeWarns: a PIN file group or others can read is used, with
// a warning that says how to fix it; a 0600 one gets none.
func TestPINFileModeWarns(t *testing.T) {
	st := softhsmtest.NewTestToken(t)
	path := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(path, append(st.PIN(), '\n'), 0o600)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o600, 0o400} {
		os.Chmod(path, mode)
		cfg := st.Config()
		cfg.PIN = hsm.PINFromFile(path)
		tok, err := hsm.Open(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := tok.Warnings()
		tok.Close()
		if open := mode&0o077 != 0; open != (len(w) == 1 && strings.Contains(w[0], "chmod 600 "+path)) {
			t.Errorf("mode %04o: warnings %q", mode, w)
		}
	}
}
