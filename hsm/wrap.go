package hsm

import (
	"context"
	"crypto/rsa"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// Moving keys between devices: a node's transfer key pair (the private
// half can only unwrap and never leaves), wrapping under a key the SO
// trusted, and unwrapping a copy into this device, proved before it stays
// (receive.go).

// TransferKeyBits is the size of a node's RSA transfer key.
const TransferKeyBits = 3072

// oaep is RSA-OAEP with SHA-1 and MGF1-SHA-1, no label: what SoftHSM2
// unwraps (SHA-256 OAEP is CKR_ARGUMENTS_BAD there, and so is a label).
func oaep() *pkcs11.Mechanism {
	return pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))
}

// wrapMechanism is how a key is wrapped under (or unwrapped with) a key
// of type kt: RSA-OAEP under RSA, AES key wrap with padding under AES.
func wrapMechanism(kt KeyType) (*pkcs11.Mechanism, error) {
	switch kt {
	case TypeRSA:
		return oaep(), nil
	case TypeAES:
		return pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil), nil
	}
	return nil, fmt.Errorf("%w: wrapping under a %s key", ErrNotSupported, kt)
}

// TransferKey returns the public half of the transfer key pair labelled
// label, or ErrKeyNotFound.
func (t *Token) TransferKey(ctx context.Context, label string) (*rsa.PublicKey, error) {
	var pub *rsa.PublicKey
	err := t.do(ctx, "transfer_key", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if _, err := t.st.findOne(s, label, ClassPrivate); err != nil {
			return err
		}
		h, err := t.st.findOne(s, label, ClassPublic)
		if err != nil {
			return err
		}
		a, err := t.st.attrs(s, h, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return err
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS]), E: int(new(big.Int).SetBytes(a[pkcs11.CKA_PUBLIC_EXPONENT]).Int64())}
		return nil
	})
	return pub, err
}

// GenerateTransferKey makes the node's transfer key pair, labelled label:
// RSA-3072 whose private half is token, private, sensitive,
// non-extractable and may only unwrap (copies wrapped for this device
// open here and nowhere else); the public half is only read, to be
// trusted by other devices. It needs a device that enforces trusted
// wrapping.
func (t *Token) GenerateTransferKey(ctx context.Context, label string) (*rsa.PublicKey, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	if err := t.requireTrustedWrap(ctx); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	id := newID(idRecord{origin: originGenerated})
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		}
	}
	pubT := append(common(pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, TransferKeyBits),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
	// A private key has no encrypt, verify or wrap attribute (SoftHSM2
	// refuses them as CKR_ATTRIBUTE_TYPE_INVALID): its usages one by one.
	privT := append(append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false)),
		PolicyLocal.attrs()...)
	var pub *rsa.PublicKey
	err := t.do(ctx, "generate_transfer_key", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		ph, _, err := t.st.mod.ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)}, pubT, privT)
		if err != nil {
			return call("C_GenerateKeyPair", err)
		}
		a, err := t.st.attrs(s, ph, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
		if err != nil {
			return err
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS]), E: int(new(big.Int).SetBytes(a[pkcs11.CKA_PUBLIC_EXPONENT]).Int64())}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	return pub, nil
}

// findWrapping finds the key labelled label to wrap under: a public RSA
// key (a node's trusted transfer key) or an AES key (a transport key).
func (st *tokenState) findWrapping(s pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, KeyType, error) {
	for _, class := range []KeyClass{ClassPublic, ClassSecret} {
		h, err := st.findOne(s, label, class)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		a, err := st.attrs(s, h, pkcs11.CKA_KEY_TYPE)
		if err != nil {
			return 0, 0, err
		}
		return h, KeyType(bytesToUint(a[pkcs11.CKA_KEY_TYPE])), nil
	}
	return 0, 0, fmt.Errorf("%w: no wrapping key labelled %q on token %q", ErrKeyNotFound, label, st.label)
}

// Wrap returns k wrapped under the key labelled under: RSA-OAEP under a
// node's transfer key, AES key wrap under a transport key. The device
// refuses unless k is transferable and under is trusted
// (CKR_KEY_NOT_WRAPPABLE, ErrNotSupported): keyward never wraps a key any
// other way.
func (t *Token) Wrap(ctx context.Context, k *Key, under string) ([]byte, error) {
	if err := t.requireTrustedWrap(ctx); err != nil {
		return nil, fmt.Errorf("wrap %q: %w", k.Label, err)
	}
	var out []byte
	err := t.do(ctx, "wrap", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		w, kt, err := t.st.findWrapping(s, under)
		if err != nil {
			return err
		}
		mech, err := wrapMechanism(kt)
		if err != nil {
			return err
		}
		out, err = t.st.mod.ctx.WrapKey(s, []*pkcs11.Mechanism{mech}, w, h)
		return callAs("C_WrapKey", err, func(code pkcs11.Error) error {
			if code == pkcs11.CKR_KEY_NOT_WRAPPABLE || code == pkcs11.CKR_KEY_UNEXTRACTABLE {
				return ErrNotWrappable
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("wrap %q under %q: %w", k.Label, under, err)
	}
	return out, nil
}

// WrapLabelled is Wrap of the secret key labelled label (a transport key,
// which keyward does not otherwise use).
func (t *Token) WrapLabelled(ctx context.Context, label, under string) ([]byte, error) {
	k := &Key{tok: t, Label: label, Class: ClassSecret, Type: TypeAES}
	return t.Wrap(ctx, k, under)
}

// HasObject says an object labelled label of class is on the token (a
// trusted key, a transport key).
func (t *Token) HasObject(ctx context.Context, label string, class KeyClass) (bool, error) {
	found := false
	err := t.do(ctx, "has_object", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		_, err := t.st.findOne(s, label, class)
		if isNotFound(err) {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// DestroyLabelled destroys every object labelled label (a trusted key, a
// transport key, a transfer key pair). It returns how many there were.
func (t *Token) DestroyLabelled(ctx context.Context, label string) (int, error) {
	n := 0
	err := t.do(ctx, "destroy_labelled", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		hs, err := t.st.findObjects(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
		if err != nil {
			return err
		}
		for _, h := range hs {
			if err := t.st.mod.ctx.DestroyObject(s, h); err != nil {
				return call("C_DestroyObject", err)
			}
			n++
		}
		return nil
	})
	t.st.keysMu.Lock()
	delete(t.st.keys, label)
	t.st.keysMu.Unlock()
	return n, err
}
