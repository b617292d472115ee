package hsm_test

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/miekg/pkcs11"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// usageAttrs are the attributes each usage flag sets.
var usageAttrs = []struct {
	usage hsm.Usage
	attr  uint
	name  string
}{
	{hsm.UsageEncrypt, pkcs11.CKA_ENCRYPT, "CKA_ENCRYPT"},
	{hsm.UsageDecrypt, pkcs11.CKA_DECRYPT, "CKA_DECRYPT"},
	{hsm.UsageSign, pkcs11.CKA_SIGN, "CKA_SIGN"},
	{hsm.UsageVerify, pkcs11.CKA_VERIFY, "CKA_VERIFY"},
	{hsm.UsageWrap, pkcs11.CKA_WRAP, "CKA_WRAP"},
	{hsm.UsageUnwrap, pkcs11.CKA_UNWRAP, "CKA_UNWRAP"},
	{hsm.UsageDerive, pkcs11.CKA_DERIVE, "CKA_DERIVE"},
}

func TestSecretKeysCannotBeRead(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	gen, err := tok.GenerateAES(t.Context(), "keyward/master/v1", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := tok.ImportAES(t.Context(), "keyward/join/v1", bytes.Repeat([]byte{7}, 32), hsm.UsageDerive, hsm.PolicyLocal, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key   *hsm.Key
		usage hsm.Usage
		local bool
	}{
		{gen, hsm.UsageEncrypt | hsm.UsageDecrypt, true},
		{imp, hsm.UsageDerive, false},
	} {
		t.Run(tc.key.Label, func(t *testing.T) {
			v, err := tc.key.Attribute(t.Context(), pkcs11.CKA_VALUE)
			if err == nil || len(v) != 0 {
				t.Fatalf("CKA_VALUE of %s was readable (%d bytes)", tc.key.Label, len(v))
			}
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				t.Errorf("CKA_VALUE: got %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
			info, err := tc.key.Info(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !info.Sensitive || info.Extractable {
				t.Errorf("sensitive=%v extractable=%v, want true/false", info.Sensitive, info.Extractable)
			}
			if info.Local != tc.local || info.AlwaysSensitive != tc.local || info.NeverExtractable != tc.local {
				t.Errorf("local=%v always-sensitive=%v never-extractable=%v, want all %v",
					info.Local, info.AlwaysSensitive, info.NeverExtractable, tc.local)
			}
			if info.Bits != 256 || info.Type != hsm.TypeAES || info.Class != hsm.ClassSecret {
				t.Errorf("got %d-bit %s %s, want 256-bit AES secret", info.Bits, info.Type, info.Class)
			}
			for _, u := range usageAttrs {
				v, err := tc.key.Attribute(t.Context(), u.attr)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := len(v) == 1 && v[0] == 1, tc.usage&u.usage != 0; got != want {
					t.Errorf("%s = %v, want %v", u.name, got, want)
				}
			}
		})
	}
}

func TestKeyPairsCannotBeRead(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	for _, kind := range []hsm.KeyPairType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		t.Run(string(kind), func(t *testing.T) {
			if err := tok.Require(kind.Op()); err != nil {
				t.Skip(err)
			}
			k, err := tok.GenerateKeyPair(t.Context(), "keyward/signing/"+string(kind), kind, hsm.PolicyLocal)
			if err != nil {
				t.Fatal(err)
			}
			secret := uint(pkcs11.CKA_VALUE)
			if kind == hsm.RSA2048 {
				secret = pkcs11.CKA_PRIVATE_EXPONENT
			}
			if v, err := k.Attribute(t.Context(), secret); err == nil || len(v) != 0 {
				t.Fatalf("private value of %s was readable", kind)
			}
			info, err := k.Info(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !info.Sensitive || info.Extractable || !info.Local || info.Class != hsm.ClassPrivate {
				t.Errorf("got %+v, want a sensitive, non-extractable, local private key", info)
			}
			for _, u := range usageAttrs {
				v, err := k.Attribute(t.Context(), u.attr)
				if err != nil {
					continue // e.g. CKA_WRAP does not apply to every private key type
				}
				if got, want := len(v) == 1 && v[0] == 1, u.usage == hsm.UsageSign; got != want {
					t.Errorf("%s = %v, want %v", u.name, got, want)
				}
			}
		})
	}
}

func TestImportedKCVMatchesGo(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	for _, hexKey := range []string{
		"000102030405060708090a0b0c0d0e0f",
		"000102030405060708090a0b0c0d0e0f1011121314151617",
		"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
	} {
		key := mustHex(t, hexKey)
		block, _ := aes.NewCipher(key)
		zero := make([]byte, 16)
		block.Encrypt(zero, zero)
		want := hex.EncodeToString(zero[:3])

		k, err := tok.ImportAES(t.Context(), "kcv-"+hexKey[:8]+hexKey[len(hexKey)-4:], key, hsm.UsageEncrypt, hsm.PolicyLocal, "")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(key, make([]byte, len(key))) {
			t.Error("ImportAES left the caller's key buffer uncleared")
		}
		got, err := k.KCV(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.EqualFold([]byte(got), []byte(want)) || got != string(bytes.ToUpper([]byte(got))) {
			t.Errorf("%d-bit key: device KCV %s, Go computes %s (want upper case)", 4*len(hexKey), got, want)
		}
	}
}

func TestImportChecksExpectedKCV(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	key := mustHex(t, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tok.ImportAES(t.Context(), "wrong-kcv", bytes.Clone(key), hsm.UsageEncrypt, hsm.PolicyLocal, "000000")
	if !errors.Is(err, hsm.ErrKCVMismatch) {
		t.Fatalf("import with a wrong KCV: got %v, want ErrKCVMismatch", err)
	}
	if _, err := tok.Find(t.Context(), "wrong-kcv"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Fatalf("a key with a wrong KCV was left in the device: %v", err)
	}
	k, err := tok.ImportAES(t.Context(), "right-kcv", bytes.Clone(key), hsm.UsageEncrypt, hsm.PolicyLocal, kcv)
	if err != nil {
		t.Fatalf("import with the right KCV: %v", err)
	}
	if got, _ := k.KCV(t.Context()); got != kcv {
		t.Errorf("KCV %s, want %s", got, kcv)
	}
}

func TestListAndFind(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	if _, err := tok.GenerateAES(t.Context(), "keyward/master/v1", 128, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ImportAES(t.Context(), "keyward/join/v1", bytes.Repeat([]byte{1}, 32), hsm.UsageDerive, hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateKeyPair(t.Context(), "keyward/signing/v1", hsm.ECP256, hsm.PolicyLocal); err != nil {
		t.Fatal(err)
	}
	list, err := tok.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]hsm.KeyInfo{}
	for _, info := range list {
		got[info.Label] = info
	}
	if len(list) != 3 {
		t.Fatalf("List gave %d keys, want 3: %+v", len(list), list)
	}
	if m := got["keyward/master/v1"]; m.Bits != 128 || !m.Local || len(m.KCV) != 6 || len(m.ID) == 0 {
		t.Errorf("master: %+v", m)
	}
	if j := got["keyward/join/v1"]; j.Bits != 256 || j.Local || j.KCV == "" {
		t.Errorf("join: %+v", j)
	}
	if s := got["keyward/signing/v1"]; s.Type != hsm.TypeEC || s.Bits != 256 || s.KCV != "" {
		t.Errorf("signing: %+v", s)
	}

	// A second token handle (a fresh cache) finds each key by label.
	k, err := tok.Find(t.Context(), "keyward/join/v1")
	if err != nil || k.Type != hsm.TypeAES || k.Bits != 256 {
		t.Fatalf("Find join: %v %+v", err, k)
	}
	if err := tok.Destroy(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Find(t.Context(), "keyward/join/v1"); !errors.Is(err, hsm.ErrKeyNotFound) {
		t.Errorf("Find after Destroy: %v, want ErrKeyNotFound", err)
	}
	s, _ := tok.Find(t.Context(), "keyward/signing/v1")
	if err := tok.Destroy(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if list, _ := tok.List(t.Context()); len(list) != 1 {
		t.Errorf("after destroying two keys List has %d, want 1", len(list))
	}
}
