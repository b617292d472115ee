package hsm

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/miekg/pkcs11"
)

// GCM sizes: a 96-bit nonce and a 128-bit tag, as NIST SP 800-38D advises.
const (
	NonceSize = 12
	TagSize   = 16
)

// Seal encrypts plaintext with AES-GCM inside the device and returns
// nonce ‖ ciphertext ‖ tag, the layout of Go's cipher.AEAD with the nonce
// prepended. The nonce is 12 random bytes from crypto/rand, never the
// device's default (SoftHSM2 with no IV is deterministic).
func (k *Key) Seal(ctx context.Context, plaintext, aad []byte) ([]byte, error) {
	if err := k.tok.st.require(OpAESGCM); err != nil {
		return nil, fmt.Errorf("encrypt with %q: %w", k.Label, err)
	}
	if mod := k.tok.st.mod; mod.functions == nil && k.tok.st.quirks.GCMSizeQueryOmitsTag {
		// miekg's Encrypt trusts the size query: it would fail with
		// CKR_BUFFER_TOO_SMALL on every call.
		return nil, fmt.Errorf("encrypt with %q: %w: %s answers AES-GCM's size query without the tag, and this build cannot size the buffer itself: %v",
			k.Label, ErrNotSupported, k.tok.st.device(), mod.noFunctions)
	}
	nonce := make([]byte, NonceSize, NonceSize+len(plaintext)+TagSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	var ct []byte
	err := k.tok.do(ctx, "seal", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		c := k.tok.st.mod.ctx
		params := pkcs11.NewGCMParams(nonce, aad, 8*TagSize)
		defer params.Free()
		if err := c.EncryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
			return call("C_EncryptInit", err)
		}
		var err error
		if fl := k.tok.st.mod.functions; fl != nil {
			// One C_Encrypt into a buffer keyward sizes, straight after
			// the nonce, where Seal returns it (GCMSizeQueryOmitsTag).
			ct, err = fl.Encrypt(s, plaintext, nonce[NonceSize:NonceSize+len(plaintext)+TagSize])
		} else {
			ct, err = c.Encrypt(s, plaintext) // asks the size, then encrypts
		}
		return call("C_Encrypt", err)
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt with %q: %w", k.Label, err)
	}
	if len(ct) > 0 && &ct[0] == &nonce[:NonceSize+1][NonceSize] {
		return nonce[:NonceSize+len(ct)], nil // written in place
	}
	return append(nonce, ct...), nil
}

// Open decrypts nonce ‖ ciphertext ‖ tag made by Seal with the same aad.
// Any tampering, a wrong key or a wrong aad gives ErrAuthentication and no
// plaintext; a device fault gives ErrDevice (see gcmDecryptSentinel).
func (k *Key) Open(ctx context.Context, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+TagSize {
		return nil, fmt.Errorf("decrypt with %q: %w: ciphertext of %d bytes is shorter than nonce and tag", k.Label, ErrAuthentication, len(sealed))
	}
	if err := k.tok.st.require(OpAESGCM); err != nil {
		return nil, fmt.Errorf("decrypt with %q: %w", k.Label, err)
	}
	nonce, ct := sealed[:NonceSize], sealed[NonceSize:]
	var pt []byte
	err := k.tok.do(ctx, "open", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		c := k.tok.st.mod.ctx
		params := pkcs11.NewGCMParams(nonce, aad, 8*TagSize)
		defer params.Free()
		if err := c.DecryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, h); err != nil {
			return call("C_DecryptInit", err)
		}
		var err error
		pt, err = c.Decrypt(s, ct)
		if codeOf(err) == pkcs11.CKR_GENERAL_ERROR && k.tok.st.quirks.BadTagIsGeneralError && !k.tok.st.answersGCM(s, h) {
			// The device answers a wrong tag so, but also a fault of its
			// own: it failed a round trip of its own as well, so this is
			// the device, not the ciphertext.
			return callAs("C_Decrypt", err, func(pkcs11.Error) error { return ErrDevice })
		}
		return callAs("C_Decrypt", err, k.tok.st.quirks.gcmDecryptSentinel)
	})
	if err != nil {
		return nil, fmt.Errorf("decrypt with %q: %w", k.Label, err)
	}
	return pt, nil
}

// gcmDecryptSentinel is what a failed C_Decrypt of AES-GCM means on a
// device with quirks q. The standard's answers to a wrong tag,
// CKR_ENCRYPTED_DATA_INVALID and _LEN_RANGE, are tampering (or a wrong key
// or aad) on every device; CKR_GENERAL_ERROR only where the device is
// known to answer a wrong tag so (BadTagIsGeneralError): elsewhere it is a
// device fault, which must never pass for tampering. nil: as sentinelFor
// says.
func (q *quirks) gcmDecryptSentinel(code pkcs11.Error) error {
	switch {
	case code == pkcs11.CKR_ENCRYPTED_DATA_INVALID, code == pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		code == pkcs11.CKR_GENERAL_ERROR && q.BadTagIsGeneralError:
		return ErrAuthentication
	}
	return nil
}

// answersGCM says the device seals and opens a block with key h on
// session s: what tells a wrong tag from a device fault where both are
// CKR_GENERAL_ERROR (BadTagIsGeneralError). Only asked after a failure.
func (st *tokenState) answersGCM(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) bool {
	c := st.mod.ctx
	nonce := make([]byte, NonceSize) // random, like every nonce: the key is a real one
	if _, err := rand.Read(nonce); err != nil {
		return false
	}
	params := pkcs11.NewGCMParams(nonce, nil, 8*TagSize)
	defer params.Free()
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}
	if c.EncryptInit(s, mech, h) != nil {
		return false
	}
	probe := make([]byte, 16)
	sealed, err := c.Encrypt(s, probe)
	if err != nil || len(sealed) != len(probe)+TagSize {
		return false
	}
	if c.DecryptInit(s, mech, h) != nil {
		return false
	}
	pt, err := c.Decrypt(s, sealed)
	return err == nil && len(pt) == len(probe)
}
