package softhsm_test

import (
	"os"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { testmain.Run(m) }

func TestFreshTokens(t *testing.T) {
	a, ta := softhsmtest.OpenTestToken(t)
	b, tb := softhsmtest.OpenTestToken(t)
	if a.Label == b.Label || a.Serial == b.Serial {
		t.Fatalf("two test tokens share a label or serial: %v %v", a, b)
	}
	if _, err := ta.GenerateAES(t.Context(), "k", 128, hsm.UsageEncrypt, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	if keys, err := tb.List(t.Context()); err != nil || len(keys) != 0 {
		t.Fatalf("a fresh token has keys: %v %v", keys, err)
	}
	if strings.Contains(a.String(), string(a.PIN())) {
		t.Fatal("String shows the PIN")
	}
	// The environment handed to child processes names this token.
	env := strings.Join(a.Env(), "\n")
	for _, want := range []string{"KEYWARD_TOKEN=" + a.Label, "KEYWARD_PKCS11_MODULE=" + a.Module, "SOFTHSM2_CONF=" + a.ConfPath} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %s", want)
		}
	}
}

func TestOneConfigurationPerProcess(t *testing.T) {
	if m := os.Getenv(softhsmtest.EnvTestModule); m != "" {
		t.Skipf("checks SoftHSM2's own configuration; %s points the tests at %s", softhsmtest.EnvTestModule, m)
	}
	softhsmtest.NewTestToken(t) // fixes this binary's SoftHSM2 home
	_, err := softhsm.NewToken(t.TempDir(), "elsewhere")
	if err == nil || !strings.Contains(err.Error(), "once per process") {
		t.Fatalf("a second SoftHSM2 home in one process: %v", err)
	}
}

func TestModulePath(t *testing.T) {
	p, err := softhsm.ModulePath()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if !strings.HasSuffix(p, "libsofthsm2.so") {
		t.Fatalf("ModulePath = %s", p)
	}
}
