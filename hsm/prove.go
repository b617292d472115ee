package hsm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/miekg/pkcs11"
)

// proveValue checks that the new AES key h holds value, with whatever the
// key's usage and the device allow: AES-ECB of a zero block for a key
// that may encrypt, an HMAC under a key derived from it for a key that may
// derive, and the device's CKA_CHECK_VALUE where it has one. At least one
// must have been possible.
func (st *tokenState) proveValue(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, value []byte, usage Usage) error {
	b, err := aes.NewCipher(value)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	zero := make([]byte, aes.BlockSize) // AES-ECB(value, 0^128)
	b.Encrypt(zero, zero)
	proved := false
	mismatch := func(how string) error {
		return fmt.Errorf("%w: %s in the device differs from the key given", ErrKCVMismatch, how)
	}
	if usage&UsageEncrypt != 0 && st.require(OpAESECB) == nil {
		got, err := st.encryptZeroBlock(s, h)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(got, zero) != 1 {
			return mismatch("AES-ECB of a zero block")
		}
		proved = true
	}
	if usage&UsageDerive != 0 && st.require(OpHMACSHA256) == nil {
		if err := st.proveByDerive(s, h, b); err != nil {
			return err
		}
		proved = true
	}
	if v := st.readCheckValue(s, h); v != nil {
		if subtle.ConstantTimeCompare(v, zero[:3]) != 1 {
			return mismatch(fmt.Sprintf("CKA_CHECK_VALUE %X", v))
		}
		proved = true
	}
	if !proved {
		return fmt.Errorf("%w: %s can prove neither by AES-ECB, nor by a derived HMAC, nor by CKA_CHECK_VALUE that it holds the key", ErrNotSupported, st.device())
	}
	return nil
}

// importCheckData and importCheckMsg make the derived-HMAC proof: K' =
// AES-ECB(key, "kw-import-chk" ‖ i), i = 1, 2 as 3 bytes big-endian, and
// HMAC-SHA256(K', importCheckMsg), computed in the device and here.
var (
	importCheckData = []byte("kw-import-chk\x00\x00\x01kw-import-chk\x00\x00\x02")
	importCheckMsg  = []byte("keyward: the device holds the imported key")
)

// proveByDerive derives a session key from h the way token keys are
// derived (fixed, sensitive template), signs importCheckMsg with it in the
// device and compares with the same computed from the value.
func (st *tokenState) proveByDerive(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, b cipher.Block) error {
	got, err := st.deriveProof(s, h, importCheckMsg)
	if err != nil {
		return err
	}
	derived := make([]byte, len(importCheckData))
	for i := 0; i < len(derived); i += aes.BlockSize {
		b.Encrypt(derived[i:], importCheckData[i:])
	}
	mac := hmac.New(sha256.New, derived)
	mac.Write(importCheckMsg)
	want := mac.Sum(nil)
	clear(derived)
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: an HMAC under a key derived in the device differs from the key given", ErrKCVMismatch)
	}
	return nil
}
