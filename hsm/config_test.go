package hsm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
)

func TestParseURI(t *testing.T) {
	u, err := hsm.ParseURI("pkcs11:token=keyward%20prod;serial=1a2b;slot-id=3;object=keyward%2Fmaster%2Fv1;id=%01%02;type=secret-key;manufacturer=x?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:HSM_PIN")
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != "keyward prod" || u.Serial != "1a2b" || u.SlotID == nil || *u.SlotID != 3 ||
		u.Object != "keyward/master/v1" || string(u.ID) != "\x01\x02" || u.Type != "secret-key" ||
		u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" || u.PINSource != "env:HSM_PIN" {
		t.Fatalf("parsed %+v", u)
	}
	var cfg hsm.Config
	if err := u.ApplyTo(&cfg, nil); err != nil {
		t.Fatal(err)
	}
	if cfg.TokenSerial != "1a2b" || cfg.TokenLabel != "" || cfg.Slot != nil || cfg.PIN.String() != "env:HSM_PIN" {
		t.Fatalf("config %v", cfg)
	}

	u, _ = hsm.ParseURI("pkcs11:token=ci?pin-source=/etc/keyward/pin")
	if u.PINSource != "file:/etc/keyward/pin" {
		t.Errorf("bare path pin-source became %q", u.PINSource)
	}

	for _, tc := range []struct{ uri, says string }{
		{"pkcs11:token=ci?pin-value=1234", "pin-value"},
		{"pkcs11:token=ci;token=other", "twice"},
		{"pkcs11:slot-id=x", "not a number"},
		{"pkcs11:type=banana", "type"},
		{"pkcs11:token=%zz", "percent"},
		{"pkcs11:token", "no value"},
		{"token=ci", "pkcs11:"},
	} {
		_, err := hsm.ParseURI(tc.uri)
		if !errors.Is(err, hsm.ErrConfig) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want ErrConfig saying %q", tc.uri, err, tc.says)
		}
		if err != nil && strings.Contains(err.Error(), "1234") {
			t.Errorf("%s: error repeats the PIN: %v", tc.uri, err)
		}
	}
	u, _ = hsm.ParseURI("pkcs11:object=x")
	if err := u.ApplyTo(&cfg, nil); !errors.Is(err, hsm.ErrConfig) {
		t.Errorf("URI without a token: %v", err)
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"pkcs11:token=a;slot-id=1?pin-source=env:X", "pkcs11:id=%00%ff", "pkcs11:", "pkcs11:a=b=c;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := hsm.ParseURI(s)
		if (u == nil) == (err == nil) {
			t.Fatalf("ParseURI(%q) = %v, %v: exactly one must be nil", s, u, err)
		}
		if err == nil && !strings.HasPrefix(s, "pkcs11:") {
			t.Fatalf("accepted %q without the pkcs11: scheme", s)
		}
		if err == nil {
			for _, attr := range strings.FieldsFunc(s[len("pkcs11:"):], func(r rune) bool { return r == ';' || r == '?' || r == '&' }) {
				if strings.HasPrefix(attr, "pin-value=") {
					t.Fatalf("accepted a pin-value in %q", s)
				}
			}
		}
	})
}

func TestPINSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pin")
	os.WriteFile(file, []byte("s3cret-pin\r\nsecond line\n"), 0o600)
	t.Setenv("KW_TEST_PIN", "env-pin")
	prompted := func(context.Context, string) ([]byte, error) { return []byte("typed"), nil }

	for _, tc := range []struct{ spec, want string }{
		{"env:KW_TEST_PIN", "env-pin"},
		{"file:" + file, "s3cret-pin"},
		{"prompt", "typed"},
	} {
		src, err := hsm.ParsePINSource(tc.spec, prompted)
		if err != nil {
			t.Fatal(err)
		}
		pin, err := src.ReadPIN(context.Background())
		if err != nil || string(pin) != tc.want {
			t.Errorf("%s: got %q, %v", tc.spec, pin, err)
		}
		if src.String() != tc.spec {
			t.Errorf("String() = %q, want %q", src, tc.spec)
		}
	}
	// A bare PIN typed where a source belongs is refused without echoing it.
	_, err := hsm.ParsePINSource("123456", prompted)
	if !errors.Is(err, hsm.ErrConfig) || strings.Contains(err.Error(), "123456") {
		t.Errorf("bare PIN: %v", err)
	}
	if _, err := hsm.ParsePINSource("prompt", nil); !errors.Is(err, hsm.ErrConfig) {
		t.Errorf("prompt without a terminal: %v", err)
	}
	for _, src := range []hsm.PINSource{hsm.PINFromEnv("KW_TEST_NOPE"), hsm.PINFromFile(filepath.Join(dir, "missing"))} {
		if _, err := src.ReadPIN(context.Background()); !errors.Is(err, hsm.ErrPINSource) {
			t.Errorf("%s: %v, want ErrPINSource", src, err)
		}
	}
}

func TestConfigNeverShowsPIN(t *testing.T) {
	t.Setenv("KW_TEST_PIN", "hunter2-pin")
	cfg := hsm.Config{ModulePath: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "ci", PIN: hsm.PINFromEnv("KW_TEST_PIN")}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("open", "config", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), sb.String()} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("config printed the PIN: %s", s)
		}
	}
	if !strings.Contains(cfg.String(), "env:KW_TEST_PIN") {
		t.Errorf("String() should name the source: %s", cfg)
	}
}
