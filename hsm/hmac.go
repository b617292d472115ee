package hsm

import (
	"context"
	"crypto"
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// deriveSpec is how a derived session key is made, so it can be made again
// after its session or the login is lost.
type deriveSpec struct {
	base *Key
	data []byte
}

// run derives a CKK_GENERIC_SECRET session key of len(data) bytes with
// CKM_AES_ECB_ENCRYPT_DATA. The template is fixed here, sensitive and
// non-extractable: an extractable derived key would turn the base key into
// an AES-ECB oracle.
func (d *deriveSpec) run(t *Token, s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	base, err := d.base.handle(s)
	if err != nil {
		return 0, err
	}
	return t.st.deriveFrom(s, base, d.data)
}

// deriveFrom derives from the AES key base the session key run describes.
func (st *tokenState) deriveFrom(s pkcs11.SessionHandle, base pkcs11.ObjectHandle, data []byte) (pkcs11.ObjectHandle, error) {
	// Checked here, not left to the device, on every device: some derive
	// from a key whose CKA_DERIVE is false (DerivesWithoutCKADerive).
	a, err := st.attrs(s, base, pkcs11.CKA_DERIVE)
	if err != nil {
		return 0, err
	}
	if !isTrue(a[pkcs11.CKA_DERIVE]) {
		return 0, &OpError{Op: "C_DeriveKey", Code: pkcs11.Error(pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED), Sentinel: ErrNotSupported}
	}
	return st.derive(s, base, data)
}

// derive is deriveFrom's C_DeriveKey, with the fixed template and no
// check of CKA_DERIVE.
func (st *tokenState) derive(s pkcs11.SessionHandle, base pkcs11.ObjectHandle, data []byte) (pkcs11.ObjectHandle, error) {
	param, free := derivationParam(data)
	defer free()
	template := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, len(data)),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
	}, (UsageSign | UsageVerify).attrs()...)
	h, err := st.mod.ctx.DeriveKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB_ENCRYPT_DATA, param)}, base, template)
	return h, st.notSupported(OpDerive, call("C_DeriveKey", err))
}

// DeriveHMACKey derives from base (an AES key with UsageDerive) a
// non-extractable generic secret K = AES-ECB(base, data), held as a session
// object: it lives as long as this process and is never stored. data must be
// a non-empty multiple of 16 bytes, at least 32 (SHA-256's block needs a key
// as long as the hash). label only names the key in errors.
func (t *Token) DeriveHMACKey(ctx context.Context, base *Key, data []byte, label string) (*Key, error) {
	if base.Type != TypeAES || base.Class != ClassSecret {
		return nil, fmt.Errorf("%w: derive from %s: the base must be an AES secret key", ErrNotSupported, base)
	}
	if len(data) < 32 || len(data)%16 != 0 {
		return nil, fmt.Errorf("%w: derivation data must be a multiple of 16 bytes and at least 32, got %d", ErrConfig, len(data))
	}
	k := &Key{tok: t, Label: label, Class: ClassSecret, Type: TypeGenericSecret, Bits: 8 * len(data),
		derive: &deriveSpec{base: base, data: append([]byte(nil), data...)}}
	// Derive now, so a base without CKA_DERIVE fails here, not at first use.
	if err := t.do(ctx, "derive", k, func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error { return nil }); err != nil {
		return nil, fmt.Errorf("derive %q from %q: %w", label, base.Label, err)
	}
	return k, nil
}

var hmacMechanism = map[crypto.Hash]uint{
	crypto.SHA256: pkcs11.CKM_SHA256_HMAC,
	crypto.SHA384: pkcs11.CKM_SHA384_HMAC,
	crypto.SHA512: pkcs11.CKM_SHA512_HMAC,
}

var hmacOp = map[crypto.Hash]Op{crypto.SHA256: OpHMACSHA256, crypto.SHA384: OpHMACSHA384, crypto.SHA512: OpHMACSHA512}

// HMAC computes HMAC-hash(k, msg) in the device; hash is SHA256, SHA384 or
// SHA512.
func (k *Key) HMAC(ctx context.Context, hash crypto.Hash, msg []byte) ([]byte, error) {
	mech, ok := hmacMechanism[hash]
	if !ok {
		return nil, fmt.Errorf("%w: HMAC with %v (use SHA-256, SHA-384 or SHA-512)", ErrNotSupported, hash)
	}
	if err := k.tok.st.require(hmacOp[hash]); err != nil {
		return nil, fmt.Errorf("HMAC with %q: %w", k.Label, err)
	}
	m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
	var mac []byte
	err := k.tok.do(ctx, "hmac", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		c := k.tok.st.mod.ctx
		if err := c.SignInit(s, m, h); err != nil {
			return call("C_SignInit", err)
		}
		var err error
		mac, err = c.Sign(s, msg)
		return call("C_Sign", err)
	})
	if err != nil {
		return nil, fmt.Errorf("HMAC with %q: %w", k.Label, err)
	}
	return mac, nil
}

// VerifyHMAC checks mac against HMAC-hash(k, msg) inside the device
// (C_Verify: the MAC never leaves it, and the comparison is the device's,
// one call cheaper than signing and comparing here). Every mismatch, of any
// length, is the same ErrAuthentication. On a device whose HMAC calls
// contend (HMACContends: SoftHSM2) verifications go through one at a time
// (see gate).
func (k *Key) VerifyHMAC(ctx context.Context, hash crypto.Hash, msg, mac []byte) error {
	mech, ok := hmacMechanism[hash]
	if !ok {
		return fmt.Errorf("%w: HMAC with %v (use SHA-256, SHA-384 or SHA-512)", ErrNotSupported, hash)
	}
	if err := k.tok.st.require(hmacOp[hash]); err != nil {
		return fmt.Errorf("HMAC with %q: %w", k.Label, err)
	}
	if len(mac) != hash.Size() {
		return fmt.Errorf("HMAC with %q: %w", k.Label, ErrAuthentication)
	}
	m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
	err := k.tok.do(ctx, "hmac_verify", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		if g := k.tok.st.hmacGate; g != nil {
			if err := g.enter(ctx); err != nil {
				return err
			}
			defer g.leave()
		}
		c := k.tok.st.mod.ctx
		if k.tok.st.verifyBySign.Load() {
			return signAndCompare(c, s, m, h, msg, mac)
		}
		if err := c.VerifyInit(s, m, h); err != nil {
			return call("C_VerifyInit", err)
		}
		err := call("C_Verify", c.Verify(s, msg, mac))
		if verifyFault(err) {
			// A verification that started well and then failed with
			// anything but "signature invalid" (HMACVerifyFaults: NSS
			// softokn answers a wrong MAC with CKR_BUFFER_TOO_SMALL,
			// CKR_ARGUMENTS_BAD or CKR_DEVICE_ERROR). Sign and compare
			// instead, here and from now on for this token; if signing
			// fails too, the fault is real. Learnt, not looked up: the
			// same on every device.
			if serr := signAndCompare(c, s, m, h, msg, mac); !errors.Is(serr, ErrDevice) {
				k.tok.st.verifyBySign.Store(true)
				return serr
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("HMAC with %q: %w", k.Label, err)
	}
	return nil
}

// signAndCompare checks mac by computing the HMAC in the device (C_Sign)
// and comparing in constant time here: for devices whose C_Verify reports
// a wrong MAC as a device fault.
func signAndCompare(c *pkcs11.Ctx, s pkcs11.SessionHandle, m []*pkcs11.Mechanism, h pkcs11.ObjectHandle, msg, mac []byte) error {
	if err := c.SignInit(s, m, h); err != nil {
		return call("C_SignInit", err)
	}
	want, err := c.Sign(s, msg)
	if err != nil {
		return call("C_Sign", err)
	}
	if !hmac.Equal(want, mac) {
		return &OpError{Op: "C_Sign", Code: pkcs11.Error(pkcs11.CKR_SIGNATURE_INVALID), Sentinel: ErrAuthentication}
	}
	return nil
}

// verifyFault says a C_Verify after a good C_VerifyInit failed other than
// as a wrong MAC, a lost session or a lost login (which the pool handles).
func verifyFault(err error) bool {
	code := codeOf(err)
	switch {
	case code == 0, code == pkcs11.CKR_SIGNATURE_INVALID, code == pkcs11.CKR_SIGNATURE_LEN_RANGE,
		needsRelogin(err), code == pkcs11.CKR_SESSION_HANDLE_INVALID, code == pkcs11.CKR_SESSION_CLOSED,
		code == pkcs11.CKR_DEVICE_REMOVED, code == pkcs11.CKR_TOKEN_NOT_PRESENT:
		return false
	}
	return true
}
