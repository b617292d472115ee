package hsm

import (
	"context"
	"encoding/binary"
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
	// found: the device showed this key before. Not finding it again is
	// then suspect (a library that lost track of its objects) and worth
	// one reinit before it counts as gone.
	found atomic.Bool
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
	k.found.Store(true)
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
	// Received: unwrapped from a copy another device wrapped for this one
	// (keyward's CKA_ID record says so).
	Received bool
	// Policy: local (non-extractable), transferable (extractable only
	// under a trusted key), or extractable (a key keyward did not make).
	Policy Policy
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
		info.Local, info.Received = rec.origin == originGenerated, rec.origin == originReceived
	}
	info.Policy = PolicyLocal
	if info.Extractable {
		// Read alone: a device without the attribute fails the whole
		// C_GetAttributeValue it is asked in.
		a, err := st.attrs(s, h, pkcs11.CKA_WRAP_WITH_TRUSTED)
		info.Policy = policyOf(true, err == nil && isTrue(a[pkcs11.CKA_WRAP_WITH_TRUSTED]))
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
