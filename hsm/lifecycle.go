package hsm

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// secretTemplate is the template of every secret key keyward makes: token,
// private, sensitive, extractable only as policy says, usable only as
// asked.
func secretTemplate(label string, id []byte, keyType KeyType, usage Usage, policy Policy) []*pkcs11.Attribute {
	t := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, uint(keyType)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
	}, usage.attrs()...)
	return append(append(t, policy.attrs()...), unmodifiable)
}

// unmodifiable ends every template of a key keyward makes: no attribute
// (a usage, the CKA_ID record) can be changed after. Last, because
// SoftHSM2's C_UnwrapKey applies a template in order and refuses any
// attribute after CKA_MODIFIABLE false as read-only.
var unmodifiable = pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false)

func checkLabel(label string) error {
	if label == "" {
		return fmt.Errorf("%w: empty key label", ErrConfig)
	}
	return nil
}

// ensureFree fails with ErrKeyExists when a secret or private key already
// has label: PKCS#11 itself lets two objects share a label.
func (st *tokenState) ensureFree(s pkcs11.SessionHandle, label string) error {
	hs, err := st.findObjects(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)})
	if err != nil {
		return err
	}
	if len(hs) > 0 {
		return fmt.Errorf("%w: %q on token %q; choose another label or destroy the old key first", ErrKeyExists, label, st.label)
	}
	return nil
}

// GenerateAES makes an AES key of bits (128, 192 or 256) inside the device,
// local or transferable as policy says.
func (t *Token) GenerateAES(ctx context.Context, label string, bits int, usage Usage, policy Policy) (*Key, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	if err := t.allow(ctx, policy); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	if bits != 128 && bits != 192 && bits != 256 {
		return nil, fmt.Errorf("%w: AES key size must be 128, 192 or 256 bits, got %d", ErrInvalidKey, bits)
	}
	if err := t.st.require(OpAESKeyGen); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	id := newID(idRecord{origin: originGenerated})
	var h pkcs11.ObjectHandle
	err := t.do(ctx, "generate", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		template := append(secretTemplate(label, id, TypeAES, usage, policy), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, bits/8))
		var err error
		h, err = t.st.mod.ctx.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, template)
		return t.st.notSupported(OpAESKeyGen, call("C_GenerateKey", err))
	})
	if err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	return t.remember(KeyInfo{Label: label, ID: id, Class: ClassSecret, Type: TypeAES, Bits: bits}, h), nil
}

// ImportAES creates an AES key from value (16, 24 or 32 bytes) and clears
// value, whatever the outcome. When expectKCV is set (6 hex digits) the key
// is refused unless its KCV matches, and the device is given CKA_CHECK_VALUE
// to verify as well (NSS softokn accepts a wrong one, so that is not
// enough). Then keyward proves the device holds value (proveValue) and the
// KCV computed here is recorded in the key's CKA_ID; on a mismatch the new
// object is destroyed.
func (t *Token) ImportAES(ctx context.Context, label string, value []byte, usage Usage, policy Policy, expectKCV string) (*Key, error) {
	defer clear(value)
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	if err := t.allow(ctx, policy); err != nil {
		return nil, fmt.Errorf("import %q: %w", label, err)
	}
	kcv, err := ComputeKCV(value)
	if err != nil {
		return nil, err
	}
	var expect []byte
	if expectKCV != "" {
		expect, err = hex.DecodeString(expectKCV)
		if err != nil || len(expect) != 3 {
			return nil, fmt.Errorf("%w: expected KCV must be 6 hex digits", ErrConfig)
		}
		if !strings.EqualFold(expectKCV, kcv) {
			return nil, fmt.Errorf("%w: key has KCV %s, expected %s; nothing was imported", ErrKCVMismatch, kcv, strings.ToUpper(expectKCV))
		}
	}
	kcvBytes, _ := hex.DecodeString(kcv)
	id := newID(idRecord{origin: originImported, kcv: kcvBytes})
	var h pkcs11.ObjectHandle
	err = t.do(ctx, "import", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		template := append(secretTemplate(label, id, TypeAES, usage, policy), pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))
		if expect != nil {
			template = append(template, pkcs11.NewAttribute(pkcs11.CKA_CHECK_VALUE, expect))
		}
		var err error
		h, err = t.st.mod.ctx.CreateObject(s, template)
		if err != nil {
			err = call("C_CreateObject", err)
			if expect != nil && codeOf(err) == pkcs11.CKR_ATTRIBUTE_VALUE_INVALID {
				return fmt.Errorf("%w: the device computed a KCV other than %s: %w", ErrKCVMismatch, kcv, err)
			}
			return err
		}
		if err := t.st.proveValue(s, h, value, usage); err != nil {
			if derr := t.st.mod.ctx.DestroyObject(s, h); derr != nil {
				return fmt.Errorf("%w; destroying the new object failed too: %w", err, call("C_DestroyObject", derr))
			}
			return fmt.Errorf("%w; the new object was destroyed", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import %q: %w", label, err)
	}
	return t.remember(KeyInfo{Label: label, ID: id, Class: ClassSecret, Type: TypeAES, Bits: 8 * len(value), KCV: kcv}, h), nil
}

// Destroy deletes the key (and the public half of a key pair) from the
// device. There is no undo.
func (t *Token) Destroy(ctx context.Context, k *Key) error {
	err := t.do(ctx, "destroy", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		if k.Class == ClassPrivate {
			if pub, err := t.st.findOne(s, k.Label, ClassPublic); err == nil {
				if err := t.st.mod.ctx.DestroyObject(s, pub); err != nil {
					return call("C_DestroyObject", err)
				}
			}
		}
		return call("C_DestroyObject", t.st.mod.ctx.DestroyObject(s, h))
	})
	if err != nil {
		return fmt.Errorf("destroy %q: %w", k.Label, err)
	}
	k.forget()
	t.st.keysMu.Lock()
	delete(t.st.keys, k.Label)
	t.st.keysMu.Unlock()
	return nil
}
