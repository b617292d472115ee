package hsm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// Usage is the set of operations a key may be used for. Every usage flag is
// written into the template explicitly: flags left out default to true on
// SoftHSM2.
type Usage uint

const (
	UsageEncrypt Usage = 1 << iota
	UsageDecrypt
	UsageSign
	UsageVerify
	UsageWrap
	UsageUnwrap
	UsageDerive
)

func (u Usage) String() string {
	var names []string
	for i, n := range []string{"encrypt", "decrypt", "sign", "verify", "wrap", "unwrap", "derive"} {
		if u&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, "+")
}

// attrs are the CKA_* usage attributes, each set to true or false.
func (u Usage) attrs() []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, u&UsageEncrypt != 0),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, u&UsageDecrypt != 0),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, u&UsageSign != 0),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, u&UsageVerify != 0),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, u&UsageWrap != 0),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, u&UsageUnwrap != 0),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, u&UsageDerive != 0),
	}
}

// KeyClass is the PKCS#11 object class of a key.
type KeyClass uint

const (
	ClassSecret  = KeyClass(pkcs11.CKO_SECRET_KEY)
	ClassPrivate = KeyClass(pkcs11.CKO_PRIVATE_KEY)
	ClassPublic  = KeyClass(pkcs11.CKO_PUBLIC_KEY)
)

func (c KeyClass) String() string {
	switch c {
	case ClassSecret:
		return "secret"
	case ClassPrivate:
		return "private"
	case ClassPublic:
		return "public"
	}
	return fmt.Sprintf("class 0x%x", uint(c))
}

// KeyType is the PKCS#11 key type.
type KeyType uint

// Ed25519 constants missing from miekg/pkcs11 v1.1.2 (PKCS#11 3.0).
const (
	ckkECEdwards           = 0x40
	ckmECEdwardsKeyPairGen = 0x1055
	ckmEdDSA               = 0x1057
)

const (
	TypeAES           = KeyType(pkcs11.CKK_AES)
	TypeGenericSecret = KeyType(pkcs11.CKK_GENERIC_SECRET)
	TypeRSA           = KeyType(pkcs11.CKK_RSA)
	TypeEC            = KeyType(pkcs11.CKK_EC)
	TypeEd25519       = KeyType(ckkECEdwards)
)

func (t KeyType) String() string {
	switch t {
	case TypeAES:
		return "AES"
	case TypeGenericSecret:
		return "generic-secret"
	case TypeRSA:
		return "RSA"
	case TypeEC:
		return "EC"
	case TypeEd25519:
		return "Ed25519"
	}
	return fmt.Sprintf("type 0x%x", uint(t))
}

// Key is a key object in the token: a secret key or the private half of a
// key pair. Its handle is found once and cached; after a lost login it is
// found again by label (or derived again, for a derived session key).
type Key struct {
	tok    *Token
	Label  string
	ID     []byte
	Class  KeyClass
	Type   KeyType
	Bits   int
	cached atomic.Pointer[cachedHandle]
	derive *deriveSpec // set for session keys made by DeriveHMACKey
}

type cachedHandle struct {
	h   pkcs11.ObjectHandle
	gen uint64
}

func (k *Key) String() string { return fmt.Sprintf("%s %s key %q", k.Type, k.Class, k.Label) }

// handle returns k's object handle, finding it when the cache is stale.
func (k *Key) handle(s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	gen := k.tok.st.gen.Load()
	if c := k.cached.Load(); c != nil && c.gen == gen {
		return c.h, nil
	}
	var h pkcs11.ObjectHandle
	var err error
	if k.derive != nil {
		h, err = k.derive.run(k.tok, s)
	} else {
		h, err = k.tok.st.findOne(s, k.Label, k.Class)
	}
	if err != nil {
		return 0, err
	}
	k.cached.Store(&cachedHandle{h: h, gen: gen})
	return h, nil
}

// forget drops the cached handle so the next use finds the key again.
func (k *Key) forget() { k.cached.Store(nil) }

// findOne returns the handle of the one object of class labelled label.
func (st *tokenState) findOne(s pkcs11.SessionHandle, label string, class KeyClass) (pkcs11.ObjectHandle, error) {
	hs, err := st.findObjects(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, uint(class)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	})
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 0:
		return 0, fmt.Errorf("%w: no %s key labelled %q on token %q", ErrKeyNotFound, class, label, st.label)
	case 1:
		return hs[0], nil
	}
	return 0, fmt.Errorf("%w: %d %s keys are labelled %q on token %q; labels must be unique", ErrKeyExists, len(hs), class, label, st.label)
}

// Find returns the secret or private key labelled label. The result is
// cached: finding a key costs about 30 µs per object in the token.
func (t *Token) Find(ctx context.Context, label string) (*Key, error) {
	st := t.st
	st.keysMu.Lock()
	k, ok := st.keys[label]
	st.keysMu.Unlock()
	if ok && k.tok == t {
		return k, nil
	}
	var info KeyInfo
	err := t.do(ctx, "find", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		var h pkcs11.ObjectHandle
		var err error
		for _, class := range []KeyClass{ClassSecret, ClassPrivate} {
			h, err = st.findOne(s, label, class)
			if err == nil {
				break
			}
			if !isNotFound(err) {
				return err
			}
		}
		if err != nil {
			return err
		}
		info, err = st.keyInfo(s, h)
		return err
	})
	if err != nil {
		return nil, err
	}
	return t.remember(info, 0), nil
}

// remember caches a key under its label and returns a Key for handle h
// (0: find it on first use).
func (t *Token) remember(info KeyInfo, h pkcs11.ObjectHandle) *Key {
	k := &Key{tok: t, Label: info.Label, ID: info.ID, Class: info.Class, Type: info.Type, Bits: info.Bits}
	if h != 0 {
		k.cached.Store(&cachedHandle{h: h, gen: t.st.gen.Load()})
	}
	t.st.keysMu.Lock()
	t.st.keys[info.Label] = k
	t.st.keysMu.Unlock()
	return k
}

// KeyInfo describes a key object as List reports it.
type KeyInfo struct {
	Label            string
	ID               []byte
	Class            KeyClass
	Type             KeyType
	Bits             int
	KCV              string // 6 upper-case hex digits; empty where unavailable (see KCV)
	Sensitive        bool
	Extractable      bool
	AlwaysSensitive  bool
	NeverExtractable bool
	// Local: generated in the device, not imported. keyward's own record
	// in CKA_ID says so for keys it made; CKA_LOCAL only for others (NSS
	// softokn reports CKA_LOCAL false for keys it generated).
	Local bool
}

// List reports every secret and private key on the token.
func (t *Token) List(ctx context.Context) ([]KeyInfo, error) {
	var out []KeyInfo
	err := t.do(ctx, "list", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		out = out[:0]
		for _, class := range []KeyClass{ClassSecret, ClassPrivate} {
			hs, err := t.st.findObjects(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, uint(class))})
			if err != nil {
				return err
			}
			for _, h := range hs {
				info, err := t.st.keyInfo(s, h)
				if err != nil {
					return err
				}
				out = append(out, info)
			}
		}
		return nil
	})
	return out, err
}

// keyInfo reads the attributes List reports. Attributes are asked per class
// and type: one that does not apply fails the whole C_GetAttributeValue.
func (st *tokenState) keyInfo(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) (KeyInfo, error) {
	base, err := st.attrs(s, h, pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_LABEL, pkcs11.CKA_ID,
		pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE, pkcs11.CKA_LOCAL)
	if err != nil {
		return KeyInfo{}, err
	}
	info := KeyInfo{
		Class:            KeyClass(bytesToUint(base[pkcs11.CKA_CLASS])),
		Type:             KeyType(bytesToUint(base[pkcs11.CKA_KEY_TYPE])),
		Label:            string(base[pkcs11.CKA_LABEL]),
		ID:               base[pkcs11.CKA_ID],
		Sensitive:        isTrue(base[pkcs11.CKA_SENSITIVE]),
		Extractable:      isTrue(base[pkcs11.CKA_EXTRACTABLE]),
		AlwaysSensitive:  isTrue(base[pkcs11.CKA_ALWAYS_SENSITIVE]),
		NeverExtractable: isTrue(base[pkcs11.CKA_NEVER_EXTRACTABLE]),
		Local:            isTrue(base[pkcs11.CKA_LOCAL]),
	}
	rec, ours := parseID(info.ID)
	if ours {
		info.Local = rec.generated
	}
	switch info.Type {
	case TypeAES, TypeGenericSecret:
		a, err := st.attrs(s, h, pkcs11.CKA_VALUE_LEN, pkcs11.CKA_ENCRYPT)
		if err != nil {
			return info, err
		}
		info.Bits = 8 * int(bytesToUint(a[pkcs11.CKA_VALUE_LEN]))
		if info.Type == TypeAES {
			info.KCV = st.kcv(s, h, isTrue(a[pkcs11.CKA_ENCRYPT]), rec.kcv)
		}
	case TypeRSA:
		if a, err := st.attrs(s, h, pkcs11.CKA_MODULUS); err == nil {
			info.Bits = 8 * len(a[pkcs11.CKA_MODULUS])
		}
	case TypeEC:
		if a, err := st.attrs(s, h, pkcs11.CKA_EC_PARAMS); err == nil {
			if c, ok := curveByParams(a[pkcs11.CKA_EC_PARAMS]); ok {
				info.Bits = c.Params().BitSize
			}
		}
	case TypeEd25519:
		info.Bits = 256
	}
	return info, nil
}

// attrs reads the attributes types of object h.
func (st *tokenState) attrs(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, types ...uint) (map[uint][]byte, error) {
	template := make([]*pkcs11.Attribute, len(types))
	for i, t := range types {
		template[i] = pkcs11.NewAttribute(t, nil)
	}
	got, err := st.mod.ctx.GetAttributeValue(s, h, template)
	if err != nil {
		return nil, call("C_GetAttributeValue", err)
	}
	m := make(map[uint][]byte, len(got))
	for _, a := range got {
		m[a.Type] = a.Value
	}
	return m, nil
}

// Attribute reads one raw attribute of the key; tests use it to prove that
// CKA_VALUE of a sensitive key is refused.
func (k *Key) Attribute(ctx context.Context, typ uint) ([]byte, error) {
	var v []byte
	err := k.tok.do(ctx, "attribute", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		m, err := k.tok.st.attrs(s, h, typ)
		v = m[typ]
		return err
	})
	return v, err
}

// Info reads the key's current attributes.
func (k *Key) Info(ctx context.Context) (KeyInfo, error) {
	var info KeyInfo
	err := k.tok.do(ctx, "info", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		var err error
		info, err = k.tok.st.keyInfo(s, h)
		return err
	})
	return info, err
}

// ErrKCVUnavailable: neither keyward nor the device can tell the key's
// check value (a derive-only key generated in a device without
// CKA_CHECK_VALUE). It also matches ErrNotSupported.
var ErrKCVUnavailable = errors.New("KCV unavailable")

// KCV returns the key check value: the first 3 bytes of AES-ECB(key, 0^128)
// as 6 upper-case hex digits. keyward owns it rather than trusting a value
// the device supplies unchecked, in this order:
//
//  1. a key that may encrypt: AES-ECB of a zero block, computed in the
//     device now;
//  2. a key keyward imported: the KCV recorded in its CKA_ID at import,
//     after keyward proved the device holds that very value;
//  3. the device's CKA_CHECK_VALUE (SoftHSM2 has it; NSS softokn has not);
//  4. otherwise ErrKCVUnavailable.
func (k *Key) KCV(ctx context.Context) (string, error) {
	if k.Type != TypeAES {
		return "", fmt.Errorf("%w: %s has no KCV (AES keys only)", ErrUnsupported, k)
	}
	info, err := k.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.KCV == "" {
		return "", k.tok.st.kcvUnavailable(k.Label)
	}
	return info.KCV, nil
}

// kcvUnavailable says why a key has no KCV on this device.
func (st *tokenState) kcvUnavailable(label string) error {
	return fmt.Errorf("%w: %q may not encrypt and was generated in the device: %w",
		ErrKCVUnavailable, label, &NotSupportedError{Op: OpCheckValue, Mechanisms: []string{"CKA_CHECK_VALUE"}, Device: st.device()})
}

// kcv is the KCV of AES key h as KCV describes it; "" when unavailable.
func (st *tokenState) kcv(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, mayEncrypt bool, recorded []byte) string {
	if mayEncrypt && st.require(OpAESECB) == nil {
		if block, err := st.encryptZeroBlock(s, h); err == nil {
			return strings.ToUpper(hex.EncodeToString(block[:3]))
		}
	}
	if recorded != nil {
		return strings.ToUpper(hex.EncodeToString(recorded))
	}
	if v := st.readCheckValue(s, h); v != nil {
		return strings.ToUpper(hex.EncodeToString(v))
	}
	return ""
}

// encryptZeroBlock is AES-ECB(key h, 0^128) computed in the device.
func (st *tokenState) encryptZeroBlock(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) ([]byte, error) {
	c := st.mod.ctx
	if err := c.EncryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, h); err != nil {
		return nil, call("C_EncryptInit", err)
	}
	out, err := c.Encrypt(s, make([]byte, aes.BlockSize))
	if err != nil {
		return nil, call("C_Encrypt", err)
	}
	if len(out) != aes.BlockSize {
		return nil, fmt.Errorf("%w: AES-ECB of one block gave %d bytes", ErrDevice, len(out))
	}
	return out, nil
}

// idRecord is what keyward writes into the CKA_ID of every key it makes:
// 8 random bytes, "kw", 'g' (generated) or 'i' (imported), and for an
// imported AES key its 3-byte KCV. CKA_MODIFIABLE is false, so the record
// stays as written. Keys keyward did not make have other IDs.
type idRecord struct {
	generated bool
	kcv       []byte // imported AES keys only
}

func newID(rec idRecord) []byte {
	id := make([]byte, 8, 14)
	_, _ = rand.Read(id)
	origin := byte('i')
	if rec.generated {
		origin = 'g'
	}
	return append(append(id, 'k', 'w', origin), rec.kcv...)
}

func parseID(id []byte) (idRecord, bool) {
	if (len(id) != 11 && len(id) != 14) || id[8] != 'k' || id[9] != 'w' || (id[10] != 'g' && id[10] != 'i') {
		return idRecord{}, false
	}
	rec := idRecord{generated: id[10] == 'g'}
	if len(id) == 14 {
		if rec.generated {
			return idRecord{}, false
		}
		rec.kcv = id[11:14]
	}
	return rec, true
}

// ComputeKCV is the KCV of a raw AES key computed in Go: what a custodian
// compares with `openssl enc -aes-256-ecb -nopad -K <hex>` over a zero block.
func ComputeKCV(key []byte) (string, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return "", fmt.Errorf("%w: AES key must be 16, 24 or 32 bytes, got %d", ErrInvalidKey, len(key))
	}
	block := make([]byte, aes.BlockSize)
	b.Encrypt(block, block)
	return strings.ToUpper(hex.EncodeToString(block[:3])), nil
}

// secretTemplate is the template of every secret key keyward makes: token,
// private, sensitive, non-extractable, usable only as asked.
func secretTemplate(label string, id []byte, keyType KeyType, usage Usage) []*pkcs11.Attribute {
	return append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, uint(keyType)),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}, usage.attrs()...)
}

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

// GenerateAES makes an AES key of bits (128, 192 or 256) inside the device.
func (t *Token) GenerateAES(ctx context.Context, label string, bits int, usage Usage) (*Key, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	if bits != 128 && bits != 192 && bits != 256 {
		return nil, fmt.Errorf("%w: AES key size must be 128, 192 or 256 bits, got %d", ErrInvalidKey, bits)
	}
	if err := t.st.require(OpAESKeyGen); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	id := newID(idRecord{generated: true})
	var h pkcs11.ObjectHandle
	err := t.do(ctx, "generate", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		template := append(secretTemplate(label, id, TypeAES, usage), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, bits/8))
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
func (t *Token) ImportAES(ctx context.Context, label string, value []byte, usage Usage, expectKCV string) (*Key, error) {
	defer clear(value)
	if err := checkLabel(label); err != nil {
		return nil, err
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
	id := newID(idRecord{kcv: kcvBytes})
	var h pkcs11.ObjectHandle
	err = t.do(ctx, "import", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		template := append(secretTemplate(label, id, TypeAES, usage), pkcs11.NewAttribute(pkcs11.CKA_VALUE, value))
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

// isNotFound is a search that found nothing (not a stale handle).
func isNotFound(err error) bool { return errors.Is(err, ErrKeyNotFound) && codeOf(err) == 0 }

func isTrue(b []byte) bool { return len(b) > 0 && b[0] != 0 }

// bytesToUint reads a CK_ULONG attribute (host byte order).
func bytesToUint(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return 0
}

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
		return fmt.Errorf("%w: %s can prove neither by AES-ECB, nor by a derived HMAC, nor by CKA_CHECK_VALUE that it holds the key", ErrUnsupported, st.device())
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
	dh, err := st.deriveFrom(s, h, importCheckData)
	if err != nil {
		return err
	}
	defer st.mod.ctx.DestroyObject(s, dh)
	c := st.mod.ctx
	m := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
	if err := c.SignInit(s, m, dh); err != nil {
		return call("C_SignInit", err)
	}
	got, err := c.Sign(s, importCheckMsg)
	if err != nil {
		return call("C_Sign", err)
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
