package keyring_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { testmain.Run(m) }

func TestParseLabel(t *testing.T) {
	for _, tc := range []struct {
		label string
		role  keyring.Role
		v     int
		ok    bool
	}{
		{"keyward/master/v1", keyring.Master, 1, true},
		{"keyward/join/v12", keyring.Join, 12, true},
		{"keyward/signing/v3", keyring.Signing, 3, true},
		{"keyward/master/v0", "", 0, false},
		{"keyward/master/v01", "", 0, false},
		{"keyward/admin/v1", "", 0, false},
		{"other/master/v1", "", 0, false},
		{"keyward/master/1", "", 0, false},
	} {
		r, v, ok := keyring.ParseLabel(tc.label)
		if r != tc.role || v != tc.v || ok != tc.ok {
			t.Errorf("ParseLabel(%q) = %q %d %v", tc.label, r, v, ok)
		}
		if ok && keyring.Label(r, v) != tc.label {
			t.Errorf("Label(%q, %d) does not round-trip", r, v)
		}
	}
}

func TestVersionsAndUsages(t *testing.T) {
	ctx := t.Context()
	_, tok := softhsmtest.OpenTestToken(t)
	ring := keyring.New(tok)
	if _, err := ring.Latest(ctx, keyring.Master); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Latest on an empty token: %v", err)
	}
	e1, err := ring.Generate(ctx, keyring.Master, 256, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := ring.Import(ctx, keyring.Master, randomKey(16), hsm.PolicyLocal, "")
	if err != nil {
		t.Fatal(err)
	}
	if e1.Version != 1 || e2.Version != 2 || e1.Origin != keyring.Generated || e2.Origin != keyring.Imported || e2.Bits != 128 {
		t.Fatalf("entries %+v %+v", e1, e2)
	}
	latest, err := ring.Latest(ctx, keyring.Master)
	if err != nil || latest.Label != "keyward/master/v2" {
		t.Fatalf("latest %+v %v", latest, err)
	}
	j, err := ring.Generate(ctx, keyring.Join, 256, hsm.PolicyLocal)
	if err != nil || j.Version != 1 {
		t.Fatalf("join: %+v %v", j, err)
	}
	// The master key encrypts and cannot derive; the join key derives and
	// cannot encrypt.
	m, _, err := ring.Get(ctx, keyring.Master, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Seal(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.DeriveHMACKey(ctx, m, make([]byte, 64), "x"); err == nil {
		t.Fatal("the master key could derive")
	}
	jk, _, err := ring.Get(ctx, keyring.Join, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jk.Seal(ctx, []byte("x"), nil); err == nil {
		t.Fatal("the join key could encrypt")
	}
	if _, err := tok.DeriveHMACKey(ctx, jk, make([]byte, 64), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Import(ctx, keyring.Join, make([]byte, 24), hsm.PolicyLocal, ""); !errors.Is(err, hsm.ErrInvalidKey) {
		t.Fatalf("AES-192 join key: %v", err)
	}
	if m2, _, err := ring.Get(ctx, keyring.Master, 2); err != nil {
		t.Fatal(err)
	} else if err := tok.Destroy(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if latest, err := ring.Latest(ctx, keyring.Master); err != nil || latest.Version != 1 {
		t.Fatalf("after destroying v2, latest is %+v %v", latest, err)
	}
}

func randomKey(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Weak keys never reach the device (issue 10, defect 2).
func TestWeakKeysRefused(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	ring := keyring.New(tok)
	ctx := t.Context()
	counting := make([]byte, 32)
	for i := range counting {
		counting[i] = byte(i % 8) // 8 distinct values in 32 bytes
	}
	for name, key := range map[string][]byte{
		"all zero 16": make([]byte, 16), "all zero 32": make([]byte, 32),
		"one value": bytes.Repeat([]byte{0xab}, 32), "eight values": counting,
	} {
		if _, err := ring.Import(ctx, keyring.Master, key, hsm.PolicyLocal, ""); !errors.Is(err, keyring.ErrWeakKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if list, err := ring.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("a weak key reached the device: %v %v", list, err)
	}
	for range 200 {
		if err := keyring.CheckStrength(randomKey(16)); err != nil {
			t.Fatalf("a random key refused: %v", err)
		}
	}
}
