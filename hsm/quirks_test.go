package hsm_test

import (
	"crypto"
	"errors"
	"fmt"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/miekg/pkcs11"
)

func codeOf(err error) pkcs11.Error {
	var code pkcs11.Error
	errors.As(err, &code)
	return code
}

// TestQuirksMatchDevice: the quirks table's entry for the device under
// test says what the device does, row by row, so the table cannot go
// stale. Each check asks the device directly, around keyward's own
// remedies. Not checked here: HMACContends (a matter of throughput,
// docs/PERFORMANCE.md), OneTokenPerModule and SoftwareToken (of setup),
// NoPINRetryFlags (TestWrongPINSaysTheTokenCountsIt).
func TestQuirksMatchDevice(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	q := hsm.QuirksOf(tok)
	if q.Name == "" {
		t.Skipf("device %q %q is not in hsm's quirks table (quirks.go, docs/DEVICES.md): nothing to check", tok.Manufacturer(), tok.Model())
	}
	aes, err := tok.GenerateAES(t.Context(), "quirks-aes", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	join, err := tok.GenerateAES(t.Context(), "quirks-join", 256, hsm.UsageDerive, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	mac, err := tok.DeriveHMACKey(t.Context(), join, hmacData(), "quirks-hmac")
	if err != nil {
		t.Fatal(err)
	}
	raw := func(t *testing.T, k *hsm.Key) *hsm.Raw {
		r, done, err := hsm.RawFor(k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(done)
		return r
	}
	gcm := func(t *testing.T, nonce []byte) []*pkcs11.Mechanism {
		params := pkcs11.NewGCMParams(nonce, nil, 128)
		t.Cleanup(params.Free)
		return []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
	}
	says := func(t *testing.T, name string, quirk, does bool, how string) {
		t.Helper()
		if quirk != does {
			t.Errorf("the table says %s=%v for %s, but the device %s", name, quirk, q.Name, how)
		}
	}

	t.Run("GCMSizeQueryOmitsTag", func(t *testing.T) {
		r := raw(t, aes)
		if err := r.Ctx.EncryptInit(r.Session, gcm(t, make([]byte, hsm.NonceSize)), r.Handle); err != nil {
			t.Fatal(err)
		}
		_, err := r.Ctx.Encrypt(r.Session, make([]byte, 100)) // size query, then C_Encrypt
		if err != nil && codeOf(err) != pkcs11.CKR_BUFFER_TOO_SMALL {
			t.Fatal(err)
		}
		says(t, "GCMSizeQueryOmitsTag", q.GCMSizeQueryOmitsTag, err != nil, "answered "+errString(err))
	})
	t.Run("BadTagIsGeneralError", func(t *testing.T) {
		sealed, err := aes.Seal(t.Context(), []byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		sealed[len(sealed)-1] ^= 1
		r := raw(t, aes)
		if err := r.Ctx.DecryptInit(r.Session, gcm(t, sealed[:hsm.NonceSize]), r.Handle); err != nil {
			t.Fatal(err)
		}
		_, err = r.Ctx.Decrypt(r.Session, sealed[hsm.NonceSize:])
		switch code := codeOf(err); code {
		case pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:
			says(t, "BadTagIsGeneralError", q.BadTagIsGeneralError, code == pkcs11.CKR_GENERAL_ERROR, "answers a wrong tag with "+errString(err))
		default:
			t.Errorf("a wrong tag: %v, neither the standard's answer nor CKR_GENERAL_ERROR", err)
		}
	})
	t.Run("NoCheckValue", func(t *testing.T) {
		err := tok.Require(hsm.OpCheckValue)
		says(t, "NoCheckValue", q.NoCheckValue, err != nil, "answered "+errString(err))
	})
	t.Run("LocalFalseWhenGenerated", func(t *testing.T) {
		v, err := aes.Attribute(t.Context(), pkcs11.CKA_LOCAL)
		if err != nil {
			t.Fatal(err)
		}
		local := len(v) == 1 && v[0] != 0
		says(t, "LocalFalseWhenGenerated", q.LocalFalseWhenGenerated, !local, fmt.Sprintf("reports CKA_LOCAL %x of a key it generated", v))
	})
	t.Run("NoTrustedWrap", func(t *testing.T) {
		err := tok.Require(hsm.OpTrustedWrap)
		says(t, "NoTrustedWrap", q.NoTrustedWrap, err != nil, "enforces trusted wrapping: "+errString(err))
	})
	t.Run("NoEdDSA", func(t *testing.T) {
		says(t, "NoEdDSA", q.NoEdDSA, !tok.Supports(hsm.OpEdDSA), "has other mechanisms")
	})
	t.Run("HMACVerifyFaults", func(t *testing.T) {
		good, err := mac.HMAC(t.Context(), crypto.SHA256, []byte("msg"))
		if err != nil {
			t.Fatal(err)
		}
		good[0] ^= 1
		r := raw(t, mac)
		m := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
		if err := r.Ctx.VerifyInit(r.Session, m, r.Handle); err != nil {
			t.Fatal(err)
		}
		err = r.Ctx.Verify(r.Session, []byte("msg"), good)
		if err == nil {
			t.Fatal("C_Verify accepted a wrong MAC")
		}
		says(t, "HMACVerifyFaults", q.HMACVerifyFaults, codeOf(err) != pkcs11.CKR_SIGNATURE_INVALID, "answers a wrong MAC with "+errString(err))
	})
	t.Run("DerivesWithoutCKADerive", func(t *testing.T) {
		err := hsm.DeriveIgnoringCKADerive(aes, hmacData())
		says(t, "DerivesWithoutCKADerive", q.DerivesWithoutCKADerive, err == nil, "answered "+errString(err))
	})
	t.Run("DeriveUnlisted", func(t *testing.T) {
		listed, known := hsm.MechanismsListed(tok, hsm.OpDerive)
		if !known {
			t.Skip("the device's mechanism list cannot be read")
		}
		says(t, "DeriveUnlisted", q.DeriveUnlisted, !listed, "lists CKM_AES_ECB_ENCRYPT_DATA otherwise")
	})
}

func errString(err error) string {
	if err == nil {
		return "CKR_OK"
	}
	return err.Error()
}
