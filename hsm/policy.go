package hsm

import (
	"context"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Policy says whether a key may ever leave its device.
type Policy string

const (
	// PolicyLocal keys are non-extractable: they never leave the device.
	// The default for one node.
	PolicyLocal Policy = "local"
	// PolicyTransferable keys are sensitive and extractable only wrapped
	// under a key the device's security officer marked trusted
	// (CKA_WRAP_WITH_TRUSTED): the device, not keyward, refuses any other
	// wrap and any read of the value. For clusters.
	PolicyTransferable Policy = "transferable"
	// PolicyExtractable is a key keyward did not make: extractable
	// without CKA_WRAP_WITH_TRUSTED. keyward makes no such key; it only
	// reports one it finds.
	PolicyExtractable Policy = "extractable"
)

// attrs are the template attributes of the policy; sensitivity is set by
// every template on its own.
func (p Policy) attrs() []*pkcs11.Attribute {
	if p == PolicyTransferable {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, true),
		}
	}
	return []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)}
}

// policyOf reads a key's policy from its flags.
func policyOf(extractable, wrapWithTrusted bool) Policy {
	switch {
	case !extractable:
		return PolicyLocal
	case wrapWithTrusted:
		return PolicyTransferable
	}
	return PolicyExtractable
}

// allow is nil when a key of policy may be made on this device: a
// transferable key only where the device enforces trusted wrapping.
func (t *Token) allow(ctx context.Context, policy Policy) error {
	switch policy {
	case PolicyLocal:
		return nil
	case PolicyTransferable:
		return t.requireTrustedWrap(ctx)
	}
	return fmt.Errorf("%w: key policy %q (use local or transferable)", ErrConfig, policy)
}

// requireTrustedWrap is nil when the device can move keys only to devices
// its security officer trusted: the mechanisms (OpTrustedWrap) and, tried
// once, that it refuses to wrap a CKA_WRAP_WITH_TRUSTED key under a key
// not marked trusted.
func (t *Token) requireTrustedWrap(ctx context.Context) error {
	st := t.st
	if err := st.require(OpTrustedWrap); err != nil {
		return err
	}
	t.probeTrustedWrap(ctx)
	if st.caps.trustedWrap.Load() == 2 {
		return &NotSupportedError{Op: OpTrustedWrap, Device: st.device(),
			Mechanisms: []string{"enforcement of CKA_WRAP_WITH_TRUSTED (it wrapped such a key under a key not marked trusted)"}}
	}
	return nil
}

// probeTrustedWrap learns, once per token, whether the device enforces
// CKA_WRAP_WITH_TRUSTED: two session keys are made, one extractable only
// under a trusted key, and the device is asked to wrap it under the other,
// untrusted one. It must refuse (CKR_KEY_NOT_WRAPPABLE); NSS softokn
// wraps it.
func (t *Token) probeTrustedWrap(ctx context.Context) {
	st := t.st
	if st.caps.trustedWrap.Load() != 0 {
		return
	}
	_ = t.do(ctx, "probe_trusted_wrap", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		c := st.mod.ctx
		gen := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}
		session := func(extra ...*pkcs11.Attribute) []*pkcs11.Attribute {
			return append([]*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 16),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			}, extra...)
		}
		k, err := c.GenerateKey(s, gen, session(pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true), pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, true)))
		if err != nil {
			return call("C_GenerateKey", err)
		}
		defer c.DestroyObject(s, k)
		w, err := c.GenerateKey(s, gen, session(pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false), pkcs11.NewAttribute(pkcs11.CKA_WRAP, true)))
		if err != nil {
			return call("C_GenerateKey", err)
		}
		defer c.DestroyObject(s, w)
		_, err = c.WrapKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, w, k)
		switch codeOf(err) {
		case pkcs11.CKR_KEY_NOT_WRAPPABLE:
			st.caps.trustedWrap.Store(1)
		case 0:
			st.caps.trustedWrap.Store(2)
		default:
			return call("C_WrapKey", err) // unknown: asked again next time
		}
		return nil
	})
}
