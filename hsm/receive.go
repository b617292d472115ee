package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/miekg/pkcs11"
)

// A copy wrapped for this device is first unwrapped as a session object
// and proved to be the key expected; only then is it unwrapped again as
// the token object, under its label. A copy that does not prove (tampered,
// addressed to another device, another key) never leaves an object behind.

// ErrBadCopy is a wrapped copy that does not open here or is not the key
// expected: tampered, wrapped for another device, or another key.
var ErrBadCopy = errors.New("wrapped copy refused")

// Proof says what a received AES key must be: for a key that may
// encrypt, its KCV (AES-ECB of a zero block); for a derive-only key (the
// join key), the sender's TransferProof of Challenge.
type Proof struct {
	KCV       string
	Challenge []byte
	MAC       []byte
}

// transferProofData derives the proof key, K' = AES-ECB(key, data); it is
// the import check's derivation (prove.go), never a token HMAC key's.
var transferProofData = importCheckData

// deriveProof is HMAC-SHA256 under K' = AES-ECB(key h, transferProofData)
// of challenge, all in the device.
func (st *tokenState) deriveProof(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, challenge []byte) ([]byte, error) {
	dh, err := st.deriveFrom(s, h, transferProofData)
	if err != nil {
		return nil, err
	}
	defer st.mod.ctx.DestroyObject(s, dh)
	c := st.mod.ctx
	if err := c.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, dh); err != nil {
		return nil, call("C_SignInit", err)
	}
	mac, err := c.Sign(s, challenge)
	return mac, call("C_Sign", err)
}

// TransferProof proves which key a derive-only AES key is without
// revealing it: HMAC-SHA256 of challenge under a key derived from it in the
// device. Two devices holding the same key give the same proof.
func (k *Key) TransferProof(ctx context.Context, challenge []byte) ([]byte, error) {
	var mac []byte
	err := k.tok.do(ctx, "transfer_proof", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		var err error
		mac, err = k.tok.st.deriveProof(s, h, challenge)
		return err
	})
	return mac, err
}

// unwrapAs unwraps wrapped with the key labelled with (a transfer private
// key or a transport key) into an object made from template.
func (st *tokenState) unwrapAs(s pkcs11.SessionHandle, with string, wrapped []byte, template []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	if len(wrapped) == 0 {
		return 0, fmt.Errorf("%w: the copy is empty", ErrBadCopy)
	}
	var uh pkcs11.ObjectHandle
	var kt KeyType
	for _, class := range []KeyClass{ClassPrivate, ClassSecret} {
		h, err := st.findOne(s, with, class)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		a, err := st.attrs(s, h, pkcs11.CKA_KEY_TYPE)
		if err != nil {
			return 0, err
		}
		uh, kt = h, KeyType(bytesToUint(a[pkcs11.CKA_KEY_TYPE]))
		break
	}
	if uh == 0 {
		return 0, fmt.Errorf("%w: no unwrapping key labelled %q on token %q", ErrKeyNotFound, with, st.label)
	}
	mech, err := wrapMechanism(kt)
	if err != nil {
		return 0, err
	}
	h, err := st.mod.ctx.UnwrapKey(s, []*pkcs11.Mechanism{mech}, uh, wrapped, template)
	return h, callAs("C_UnwrapKey", err, func(code pkcs11.Error) error {
		switch code {
		case pkcs11.CKR_WRAPPED_KEY_INVALID, pkcs11.CKR_WRAPPED_KEY_LEN_RANGE, pkcs11.CKR_ENCRYPTED_DATA_INVALID,
			pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11.CKR_DATA_INVALID, pkcs11.CKR_DATA_LEN_RANGE:
			return ErrBadCopy
		case pkcs11.CKR_GENERAL_ERROR:
			// How SoftHSM2 answers a copy that fails OAEP or AES key
			// wrap's integrity check (and a bad GCM tag): row 12.
			if st.quirks.BadTagIsGeneralError {
				return ErrBadCopy
			}
		}
		return nil
	})
}

// withToken is template with CKA_TOKEN set to token, in its place (see
// unmodifiable: order matters to C_UnwrapKey).
func withToken(template []*pkcs11.Attribute, token bool) []*pkcs11.Attribute {
	out := make([]*pkcs11.Attribute, len(template))
	for i, a := range template {
		out[i] = a
		if a.Type == pkcs11.CKA_TOKEN {
			out[i] = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, token)
		}
	}
	return out
}

// receive unwraps a copy as a session object, runs prove on it, destroys
// it, and only when it proved unwraps the copy again as the token object
// of template.
func (t *Token) receive(ctx context.Context, label, with string, wrapped []byte, template []*pkcs11.Attribute,
	prove func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error, after func(s pkcs11.SessionHandle) error) error {
	if err := t.requireTrustedWrap(ctx); err != nil {
		return err
	}
	err := t.do(ctx, "receive", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		probe, err := t.st.unwrapAs(s, with, wrapped, withToken(template, false))
		if err != nil {
			return err
		}
		perr := prove(s, probe)
		if derr := t.st.mod.ctx.DestroyObject(s, probe); derr != nil && perr == nil {
			perr = call("C_DestroyObject", derr)
		}
		if perr != nil {
			return perr
		}
		if _, err := t.st.unwrapAs(s, with, wrapped, withToken(template, true)); err != nil {
			return err
		}
		if after != nil {
			return after(s)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("receive %q: %w", label, err)
	}
	return nil
}

// ReceiveAES unwraps a copy of an AES key wrapped for this device (under
// its transfer key, labelled with) as label, with usage and policy, once
// it proved to be the key p describes; its KCV is recorded in its CKA_ID.
func (t *Token) ReceiveAES(ctx context.Context, with string, wrapped []byte, label string, usage Usage, policy Policy, p Proof) (*Key, error) {
	kcv, err := hex.DecodeString(p.KCV)
	if err != nil || len(kcv) != 3 {
		return nil, fmt.Errorf("%w: receive %q: the expected KCV %q is not 6 hex digits", ErrConfig, label, p.KCV)
	}
	template := secretTemplate(label, newID(idRecord{origin: originReceived, kcv: kcv}), TypeAES, usage, policy)
	prove := func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		switch {
		case usage&UsageEncrypt != 0:
			block, err := t.st.encryptZeroBlock(s, h)
			if err != nil {
				return err
			}
			if got := strings.ToUpper(hex.EncodeToString(block[:3])); got != strings.ToUpper(p.KCV) {
				return fmt.Errorf("%w: it has KCV %s, the registry says %s", ErrBadCopy, got, strings.ToUpper(p.KCV))
			}
		case usage&UsageDerive != 0 && len(p.Challenge) > 0:
			mac, err := t.st.deriveProof(s, h, p.Challenge)
			if err != nil {
				return err
			}
			if subtle.ConstantTimeCompare(mac, p.MAC) != 1 {
				return fmt.Errorf("%w: it is not the key the sender holds (its proof differs)", ErrBadCopy)
			}
		default:
			return fmt.Errorf("%w: nothing proves which key the copy is", ErrBadCopy)
		}
		return nil
	}
	if err := t.receive(ctx, label, with, wrapped, template, prove, nil); err != nil {
		return nil, err
	}
	return t.Find(ctx, label)
}

// ReceiveTransportKey unwraps a sender's transport key, wrapped for this
// device, as label: a token AES key that may only unwrap (the key pairs
// that sender wraps under it) and never leaves. Its proof is the key
// pairs it opens.
func (t *Token) ReceiveTransportKey(ctx context.Context, with string, wrapped []byte, label string) error {
	template := secretTemplate(label, newID(idRecord{origin: originReceived}), TypeAES, UsageUnwrap, PolicyLocal)
	return t.receive(ctx, label, with, wrapped, template, func(pkcs11.SessionHandle, pkcs11.ObjectHandle) error { return nil }, nil)
}

// ReceiveKeyPair unwraps a copy of a signing private key, wrapped for this
// device under a transport key labelled with, as label with policy, once a
// signature made with it verifies under pub; pub becomes its public half.
func (t *Token) ReceiveKeyPair(ctx context.Context, with string, wrapped []byte, label string, pub crypto.PublicKey, policy Policy) (*Key, error) {
	id := newID(idRecord{origin: originReceived})
	pubT, keyType, err := publicTemplate(label, id, pub)
	if err != nil {
		return nil, err
	}
	template := append(privateTemplate(label, id, policy), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, uint(keyType)), unmodifiable)
	prove := func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error { return t.st.provePair(s, h, pub) }
	after := func(s pkcs11.SessionHandle) error {
		_, err := t.st.mod.ctx.CreateObject(s, pubT)
		return call("C_CreateObject", err)
	}
	if err := t.receive(ctx, label, with, wrapped, template, prove, after); err != nil {
		return nil, err
	}
	return t.Find(ctx, label)
}

// publicTemplate is the public key object of a received key pair: token,
// public, verify only.
func publicTemplate(label string, id []byte, pub crypto.PublicKey) ([]*pkcs11.Attribute, KeyType, error) {
	t := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		point, err := k.Bytes()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrInvalidKey, err)
		}
		der := append([]byte{0x04, byte(len(point))}, point...)
		return append(t, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidP256),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, der)), TypeEC, nil
	case ed25519.PublicKey:
		der := append([]byte{0x04, byte(len(k))}, k...)
		return append(t, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, der)), TypeEd25519, nil
	case *rsa.PublicKey:
		return append(t, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA), pkcs11.NewAttribute(pkcs11.CKA_MODULUS, k.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(k.E)).Bytes())), TypeRSA, nil
	}
	return nil, 0, fmt.Errorf("%w: a %T public key", ErrNotSupported, pub)
}

// provePair signs a random message with private key h in the device and
// verifies the signature under pub here.
func (st *tokenState) provePair(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, pub crypto.PublicKey) error {
	msg := make([]byte, 32)
	_, _ = rand.Read(msg)
	digest := sha256.Sum256(msg)
	var mech *pkcs11.Mechanism
	input := digest[:]
	switch pub.(type) {
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	case ed25519.PublicKey:
		mech, input = pkcs11.NewMechanism(ckmEdDSA, nil), msg
	case *rsa.PublicKey:
		mech, input = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil), append(append([]byte(nil), digestInfoPrefix[crypto.SHA256]...), digest[:]...)
	}
	c := st.mod.ctx
	if err := c.SignInit(s, []*pkcs11.Mechanism{mech}, h); err != nil {
		return call("C_SignInit", err)
	}
	sig, err := c.Sign(s, input)
	if err != nil {
		return call("C_Sign", err)
	}
	ok := false
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		n := len(sig) / 2
		ok = len(sig) == 64 && ecdsa.Verify(k, digest[:], new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]))
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, msg, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	}
	if !ok {
		return fmt.Errorf("%w: a signature with it does not verify under the key pair's public key", ErrBadCopy)
	}
	return nil
}
