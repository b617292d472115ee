package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsmtest.CleanupTestTokens()
	os.Exit(code)
}

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
	ctx := context.Background()
	_, tok := softhsmtest.OpenTestToken(t)
	ring := keyring.New(tok)
	if _, err := ring.Latest(ctx, keyring.Master); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("Latest on an empty token: %v", err)
	}
	e1, err := ring.Generate(ctx, keyring.Master, 256)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := ring.Import(ctx, keyring.Master, bytes.Repeat([]byte{9}, 16), "")
	if err != nil {
		t.Fatal(err)
	}
	if e1.Version != 1 || e2.Version != 2 || e1.Origin != keyring.Generated || e2.Origin != keyring.Imported || e2.Bits != 128 {
		t.Fatalf("entries %+v %+v", e1, e2)
	}
	latest, _ := ring.Latest(ctx, keyring.Master)
	if latest.Label != "keyward/master/v2" {
		t.Fatalf("latest %+v", latest)
	}
	j, err := ring.Generate(ctx, keyring.Join, 256)
	if err != nil || j.Version != 1 {
		t.Fatalf("join: %+v %v", j, err)
	}
	// The master key encrypts and cannot derive; the join key derives and
	// cannot encrypt.
	m, _, _ := ring.Get(ctx, keyring.Master, 1)
	if _, err := m.Seal(ctx, []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.DeriveHMACKey(ctx, m, make([]byte, 64), "x"); err == nil {
		t.Fatal("the master key could derive")
	}
	jk, _, _ := ring.Get(ctx, keyring.Join, 0)
	if _, err := jk.Seal(ctx, []byte("x"), nil); err == nil {
		t.Fatal("the join key could encrypt")
	}
	if _, err := tok.DeriveHMACKey(ctx, jk, make([]byte, 64), "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Import(ctx, keyring.Join, make([]byte, 24), ""); !errors.Is(err, hsm.ErrInvalidKey) {
		t.Fatalf("AES-192 join key: %v", err)
	}
	if err := ring.Destroy(ctx, keyring.Master, 2); err != nil {
		t.Fatal(err)
	}
	if latest, _ := ring.Latest(ctx, keyring.Master); latest.Version != 1 {
		t.Fatalf("after destroying v2, latest is %+v", latest)
	}
}
