package hsm_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/miekg/pkcs11"
)

// TestCapabilities: the table names every operation once; what keyward
// cannot work without is there on every device it is tested on; and for
// every key pair type the table agrees with the device: generation works
// where it says yes, and fails at once with ErrNotSupported naming the
// mechanism and the device where it says no.
func TestCapabilities(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	caps := tok.Capabilities(t.Context())
	seen := map[hsm.Op]bool{}
	for _, c := range caps {
		if seen[c.Op] || len(c.Mechanisms) == 0 {
			t.Errorf("capability %+v: repeated or without mechanisms", c)
		}
		seen[c.Op] = true
		if !c.Supported && !strings.Contains(c.Note, "lacks") && c.Op != hsm.OpCheckValue {
			t.Errorf("%s unsupported without saying what it lacks: %+v", c.Op, c)
		}
	}
	for _, op := range []hsm.Op{hsm.OpAESKeyGen, hsm.OpAESGCM, hsm.OpHMACSHA256, hsm.OpECDSAP256, hsm.OpCheckValue} {
		if !seen[op] {
			t.Errorf("%s missing from the table", op)
		}
	}
	for _, op := range []hsm.Op{hsm.OpAESKeyGen, hsm.OpAESGCM, hsm.OpHMACSHA256} {
		if err := tok.Require(op); err != nil {
			t.Errorf("a device keyward is tested on lacks %s: %v", op, err)
		}
	}
	for _, kind := range []hsm.KeyPairType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		_, err := tok.GenerateKeyPair(t.Context(), "caps-"+string(kind), kind, hsm.PolicyLocal)
		if req := tok.Require(kind.Op()); req == nil {
			if err != nil {
				t.Errorf("%s: the table says supported, generation failed: %v", kind, err)
			}
			continue
		}
		if !errors.Is(err, hsm.ErrNotSupported) ||
			!strings.Contains(err.Error(), tok.Label()) || !strings.Contains(err.Error(), "CKM_") {
			t.Errorf("%s: the table says unsupported; generation gave %v, want ErrNotSupported naming the mechanism and %q", kind, err, tok.Label())
		}
	}
}

// TestKCVAndOriginOwnedByKeyward: imported keys show the KCV Go computes
// from their hex and origin "imported", whatever usage they have (the join
// key may only derive); generated keys show origin "generated" even where
// the device reports CKA_LOCAL false (NSS softokn); a generated key that
// may encrypt has a KCV computed in the device; a generated derive-only
// key has the device's CKA_CHECK_VALUE or says it has none.
func TestKCVAndOriginOwnedByKeyward(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	master := "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	join := "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"[:32]
	for _, c := range []struct {
		label, hex string
		usage      hsm.Usage
	}{{"imp-master", master, hsm.UsageEncrypt | hsm.UsageDecrypt}, {"imp-join", join, hsm.UsageDerive}} {
		want, _ := hsm.ComputeKCV(mustHex(t, c.hex))
		k, err := tok.ImportAES(t.Context(), c.label, mustHex(t, c.hex), c.usage, hsm.PolicyLocal, "")
		if err != nil {
			t.Fatal(err)
		}
		info, err := k.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.KCV != want || info.Local {
			t.Errorf("%s: KCV %q local %v, want KCV %s and imported", c.label, info.KCV, info.Local, want)
		}
		if got, err := k.KCV(t.Context()); got != want || err != nil {
			t.Errorf("%s: KCV() = %q, %v; want %s", c.label, got, err, want)
		}
	}

	gm, err := tok.GenerateAES(t.Context(), "gen-master", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	gj, err := tok.GenerateAES(t.Context(), "gen-join", 256, hsm.UsageDerive, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*hsm.Key{gm, gj} {
		info, err := k.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !info.Local {
			t.Errorf("%s: origin imported, want generated", k.Label)
		}
	}
	kcv, err := gm.KCV(t.Context())
	if err != nil || len(kcv) != 6 {
		t.Fatalf("generated master: KCV %q, %v", kcv, err)
	}
	deviceKCV := func(k *hsm.Key) string {
		v, err := k.Attribute(t.Context(), pkcs11.CKA_CHECK_VALUE)
		if err != nil {
			return ""
		}
		return strings.ToUpper(hex.EncodeToString(v))
	}
	if d := deviceKCV(gm); d != "" && d != kcv {
		t.Errorf("generated master: keyward computes KCV %s, the device says %s", kcv, d)
	}
	kcv, err = gj.KCV(t.Context())
	if tok.Require(hsm.OpCheckValue) != nil {
		if !errors.Is(err, hsm.ErrKCVUnavailable) || !errors.Is(err, hsm.ErrNotSupported) ||
			!strings.Contains(err.Error(), "CKA_CHECK_VALUE") || !strings.Contains(err.Error(), tok.Label()) {
			t.Errorf("generated join key on a device without CKA_CHECK_VALUE: KCV %q, %v; want ErrKCVUnavailable naming the device", kcv, err)
		}
	} else if err != nil || kcv != deviceKCV(gj) {
		t.Errorf("generated join key: KCV %q, %v; the device says %s", kcv, err, deviceKCV(gj))
	}
}

// TestImportProofCatchesAnotherValue: the check ImportAES makes after
// C_CreateObject (so a device that takes a wrong CKA_CHECK_VALUE, like NSS
// softokn, cannot pass) refuses a key that holds another value, by AES-ECB
// for a key that may encrypt and by a derived HMAC for the join key.
func TestImportProofCatchesAnotherValue(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	a := "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
	b := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	for _, usage := range []hsm.Usage{hsm.UsageEncrypt | hsm.UsageDecrypt, hsm.UsageDerive} {
		k, err := tok.ImportAES(t.Context(), "proof-"+usage.String(), mustHex(t, a), usage, hsm.PolicyLocal, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := hsm.ProveValue(k, mustHex(t, a), usage); err != nil {
			t.Errorf("%s: the value the key holds: %v", usage, err)
		}
		err = hsm.ProveValue(k, mustHex(t, b), usage)
		if !errors.Is(err, hsm.ErrKCVMismatch) || bytes.Contains([]byte(err.Error()), []byte(b)) {
			t.Errorf("%s: another value: %v, want ErrKCVMismatch", usage, err)
		}
	}
}
