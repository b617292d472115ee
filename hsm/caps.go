package hsm

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// Op is one kind of work keyward asks of a device.
type Op string

const (
	OpAESKeyGen  Op = "aes-keygen"  // generate master and join keys
	OpAESGCM     Op = "aes-gcm"     // encrypt and decrypt shared data
	OpAESECB     Op = "aes-ecb"     // compute a KCV in the device
	OpDerive     Op = "aes-derive"  // derive the token HMAC keys from the join key
	OpHMACSHA256 Op = "hmac-sha256" // HS256 tokens
	OpHMACSHA384 Op = "hmac-sha384" // HS384 tokens
	OpHMACSHA512 Op = "hmac-sha512" // HS512 tokens
	OpECDSAP256  Op = "ecdsa-p256"  // ES256 tokens
	OpRSAPKCS1   Op = "rsa-pkcs1"   // RS256 tokens
	OpRSAPSS     Op = "rsa-pss"     // PS256 tokens
	OpEdDSA      Op = "eddsa"       // EdDSA tokens
	OpCheckValue Op = "check-value" // CKA_CHECK_VALUE on AES keys
	// OpTrustedWrap moves keys to devices the security officer trusted:
	// RSA-OAEP (SHA-1) under a node's transfer key, AES key wrap for key
	// pairs, and CKA_WRAP_WITH_TRUSTED enforced by the device.
	OpTrustedWrap Op = "trusted-wrap"
)

// opMechanisms are the mechanisms an operation needs, each with the
// C_GetMechanismInfo flag it needs (0: any).
var opMechanisms = []struct {
	op    Op
	mechs []mechNeed
}{
	{OpAESKeyGen, []mechNeed{{pkcs11.CKM_AES_KEY_GEN, pkcs11.CKF_GENERATE}}},
	{OpAESGCM, []mechNeed{{pkcs11.CKM_AES_GCM, pkcs11.CKF_ENCRYPT | pkcs11.CKF_DECRYPT}}},
	{OpAESECB, []mechNeed{{pkcs11.CKM_AES_ECB, pkcs11.CKF_ENCRYPT}}},
	{OpDerive, []mechNeed{{pkcs11.CKM_AES_ECB_ENCRYPT_DATA, pkcs11.CKF_DERIVE}}},
	{OpHMACSHA256, []mechNeed{{pkcs11.CKM_SHA256_HMAC, pkcs11.CKF_SIGN}}},
	{OpHMACSHA384, []mechNeed{{pkcs11.CKM_SHA384_HMAC, pkcs11.CKF_SIGN}}},
	{OpHMACSHA512, []mechNeed{{pkcs11.CKM_SHA512_HMAC, pkcs11.CKF_SIGN}}},
	{OpECDSAP256, []mechNeed{{pkcs11.CKM_EC_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR}, {pkcs11.CKM_ECDSA, pkcs11.CKF_SIGN}}},
	{OpRSAPKCS1, []mechNeed{{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR}, {pkcs11.CKM_RSA_PKCS, pkcs11.CKF_SIGN}}},
	{OpRSAPSS, []mechNeed{{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR}, {pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKF_SIGN}}},
	{OpEdDSA, []mechNeed{{ckmECEdwardsKeyPairGen, pkcs11.CKF_GENERATE_KEY_PAIR}, {ckmEdDSA, pkcs11.CKF_SIGN}}},
	{OpTrustedWrap, []mechNeed{{pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, pkcs11.CKF_GENERATE_KEY_PAIR},
		{pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_WRAP | pkcs11.CKF_UNWRAP}, {pkcs11.CKM_AES_KEY_WRAP_PAD, pkcs11.CKF_WRAP | pkcs11.CKF_UNWRAP}}},
}

type mechNeed struct {
	mech uint
	flag uint
}

var mechNames = map[uint]string{
	pkcs11.CKM_AES_KEY_GEN: "CKM_AES_KEY_GEN", pkcs11.CKM_AES_GCM: "CKM_AES_GCM", pkcs11.CKM_AES_ECB: "CKM_AES_ECB",
	pkcs11.CKM_AES_ECB_ENCRYPT_DATA: "CKM_AES_ECB_ENCRYPT_DATA", pkcs11.CKM_SHA256_HMAC: "CKM_SHA256_HMAC",
	pkcs11.CKM_SHA384_HMAC: "CKM_SHA384_HMAC", pkcs11.CKM_SHA512_HMAC: "CKM_SHA512_HMAC",
	pkcs11.CKM_EC_KEY_PAIR_GEN: "CKM_EC_KEY_PAIR_GEN", pkcs11.CKM_ECDSA: "CKM_ECDSA",
	pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN: "CKM_RSA_PKCS_KEY_PAIR_GEN", pkcs11.CKM_RSA_PKCS: "CKM_RSA_PKCS",
	pkcs11.CKM_RSA_PKCS_PSS: "CKM_RSA_PKCS_PSS", ckmECEdwardsKeyPairGen: "CKM_EC_EDWARDS_KEY_PAIR_GEN", ckmEdDSA: "CKM_EDDSA",
	pkcs11.CKM_RSA_PKCS_OAEP: "CKM_RSA_PKCS_OAEP", pkcs11.CKM_AES_KEY_WRAP_PAD: "CKM_AES_KEY_WRAP_PAD",
}

// Capability is one operation and whether this device can do it.
type Capability struct {
	Op         Op       `json:"op"`
	Mechanisms []string `json:"mechanisms"` // or the attribute, for check-value
	Supported  bool     `json:"supported"`
	Note       string   `json:"note,omitempty"` // why not, or how keyward copes
}

// capabilities is what one token can do, read once at Open.
type capabilities struct {
	known   bool // the mechanism list was read; false: nothing is refused in advance
	have    map[Op]bool
	missing map[Op][]string // the mechanisms an unsupported op lacks

	// checkValue: 0 not yet seen, 1 the device reports CKA_CHECK_VALUE on
	// AES keys, 2 it does not (NSS softokn).
	checkValue atomic.Int32
	// trustedWrap: 0 not yet tried, 1 the device refuses to wrap a
	// CKA_WRAP_WITH_TRUSTED key under an untrusted key, 2 it wraps it
	// (NSS softokn): see probeTrustedWrap.
	trustedWrap atomic.Int32
}

// readCapabilities asks the device for its mechanisms, once per token.
func readCapabilities(c *pkcs11.Ctx, slot uint) *capabilities {
	caps := &capabilities{have: map[Op]bool{}, missing: map[Op][]string{}}
	list, err := c.GetMechanismList(slot)
	if err != nil || len(list) == 0 {
		return caps
	}
	caps.known = true
	listed := map[uint]bool{}
	for _, m := range list {
		listed[m.Mechanism] = true
	}
	for _, o := range opMechanisms {
		ok := true
		for _, n := range o.mechs {
			if !listed[n.mech] {
				ok = false
				caps.missing[o.op] = append(caps.missing[o.op], mechNames[n.mech])
				continue
			}
			// A device that lists a mechanism but not for this use.
			if info, err := c.GetMechanismInfo(slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(n.mech, nil)}); err == nil && info.Flags&n.flag != n.flag {
				ok = false
				caps.missing[o.op] = append(caps.missing[o.op], mechNames[n.mech]+" (flags)")
			}
		}
		caps.have[o.op] = ok
	}
	return caps
}

// NotSupportedError says which operation a device lacks and why.
type NotSupportedError struct {
	Op         Op
	Mechanisms []string
	Device     string // `token "NSS Certificate DB" (Mozilla Foundation NSS 3)`
}

func (e *NotSupportedError) Error() string {
	return fmt.Sprintf("%s: not supported by %s (it lacks %s)", e.Op, e.Device, strings.Join(e.Mechanisms, " and "))
}

func (e *NotSupportedError) Unwrap() error { return ErrNotSupported }

// device names the token in errors: label, manufacturer and model.
func (st *tokenState) device() string {
	return fmt.Sprintf("token %q (%s %s)", st.label, strings.TrimSpace(st.manufacturer), strings.TrimSpace(st.model))
}

// Supports says whether the device can do op. A device whose mechanism
// list could not be read is assumed to support everything (the call then
// says).
func (t *Token) Supports(op Op) bool { return t.st.require(op) == nil }

// Require is nil when the device can do op, else a *NotSupportedError
// naming the operation, the mechanisms it lacks and the device.
func (t *Token) Require(op Op) error {
	if op == OpTrustedWrap {
		return t.requireTrustedWrap(context.Background())
	}
	if op == OpCheckValue {
		t.probeCheckValue(context.Background())
	}
	return t.st.require(op)
}

// probeCheckValue learns whether AES keys carry CKA_CHECK_VALUE, when no
// AES key has been read yet, from a session key made and destroyed here.
func (t *Token) probeCheckValue(ctx context.Context) {
	st := t.st
	if st.caps.checkValue.Load() != 0 || !t.Supports(OpAESKeyGen) {
		return
	}
	_ = t.do(ctx, "probe", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		template := []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 16),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		}
		h, err := st.mod.ctx.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, template)
		if err != nil {
			return call("C_GenerateKey", err)
		}
		defer st.mod.ctx.DestroyObject(s, h)
		st.readCheckValue(s, h)
		return nil
	})
}

// Op is the operation a key pair of this type signs with.
func (k KeyPairType) Op() Op {
	switch k {
	case ECP256:
		return OpECDSAP256
	case Ed25519:
		return OpEdDSA
	}
	return OpRSAPKCS1
}

// require returns a *NotSupportedError when the device lacks op.
func (st *tokenState) require(op Op) error {
	if op == OpCheckValue {
		if st.caps.checkValue.Load() == 2 {
			return &NotSupportedError{Op: op, Mechanisms: []string{"CKA_CHECK_VALUE"}, Device: st.device()}
		}
		return nil
	}
	if !st.caps.known || st.caps.have[op] || st.quirks.triesUnlisted(op) {
		return nil
	}
	return &NotSupportedError{Op: op, Mechanisms: st.caps.missing[op], Device: st.device()}
}

// notSupported turns a device's refusal of a mechanism it was tried with
// (CKR_MECHANISM_INVALID) into the same error require gives.
func (st *tokenState) notSupported(op Op, err error) error {
	if codeOf(err) != pkcs11.CKR_MECHANISM_INVALID {
		return err
	}
	var names []string
	for _, o := range opMechanisms {
		if o.op == op {
			for _, n := range o.mechs {
				names = append(names, mechNames[n.mech])
			}
		}
	}
	return fmt.Errorf("%w: %w", &NotSupportedError{Op: op, Mechanisms: names, Device: st.device()}, err)
}

// Capabilities reports every operation keyward may ask and whether this
// device can, for `keyward doctor`.
func (t *Token) Capabilities(ctx context.Context) []Capability {
	st := t.st
	t.probeCheckValue(ctx)
	if st.require(OpTrustedWrap) == nil {
		t.probeTrustedWrap(ctx)
	}
	var out []Capability
	for _, o := range opMechanisms {
		c := Capability{Op: o.op, Supported: true}
		for _, n := range o.mechs {
			c.Mechanisms = append(c.Mechanisms, mechNames[n.mech])
		}
		switch {
		case !st.caps.known:
			c.Note = "mechanism list unreadable: tried at use"
		case st.caps.have[o.op]:
		case st.quirks.triesUnlisted(o.op):
			c.Note = "not listed by the device: tried at use"
		default:
			c.Supported = false
			c.Note = "lacks " + strings.Join(st.caps.missing[o.op], " and ")
		}
		if o.op == OpTrustedWrap && c.Supported && st.caps.trustedWrap.Load() != 1 {
			c.Supported = false
			c.Note = "lacks enforcement of CKA_WRAP_WITH_TRUSTED (it wraps such a key under an untrusted key): keys stay local"
			if st.caps.trustedWrap.Load() == 0 {
				c.Note = "lacks a working trial of CKA_WRAP_WITH_TRUSTED (it could not be tried): keys stay local"
			}
		}
		out = append(out, c)
	}
	c := Capability{Op: OpCheckValue, Mechanisms: []string{"CKA_CHECK_VALUE"}, Supported: st.caps.checkValue.Load() == 1}
	switch st.caps.checkValue.Load() {
	case 0:
		c.Note = "unknown: no AES key read yet"
	case 2:
		c.Note = "keyward computes KCVs itself (AES-ECB in the device) and records imported ones in CKA_ID"
	}
	return append(out, c)
}

// readCheckValue reads CKA_CHECK_VALUE of AES key h, noting whether the
// device has the attribute; nil when it has not.
func (st *tokenState) readCheckValue(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) []byte {
	a, err := st.attrs(s, h, pkcs11.CKA_CHECK_VALUE)
	if err != nil || len(a[pkcs11.CKA_CHECK_VALUE]) != 3 {
		if codeOf(err) == pkcs11.CKR_ATTRIBUTE_TYPE_INVALID || err == nil {
			st.caps.checkValue.Store(2)
		}
		return nil
	}
	st.caps.checkValue.Store(1)
	return a[pkcs11.CKA_CHECK_VALUE]
}
