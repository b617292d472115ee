package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"
)

// KeyPairType is the kind of key pair GenerateKeyPair makes.
type KeyPairType string

const (
	ECP256  KeyPairType = "ec-p256"
	RSA2048 KeyPairType = "rsa-2048"
	RSA3072 KeyPairType = "rsa-3072"
	Ed25519 KeyPairType = "ed25519"
)

var (
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
)

func curveByParams(params []byte) (elliptic.Curve, bool) {
	if bytes.Equal(params, oidP256) {
		return elliptic.P256(), true
	}
	return nil, false
}

// GenerateKeyPair makes a signing key pair inside the device and returns its
// private half. The private key is token, private, sensitive, extractable
// only as policy says, and may only sign; the public key may only verify.
func (t *Token) GenerateKeyPair(ctx context.Context, label string, kind KeyPairType, policy Policy) (*Key, error) {
	if err := checkLabel(label); err != nil {
		return nil, err
	}
	if err := t.allow(ctx, policy); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	id := newID(idRecord{origin: originGenerated})
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		// Every usage that applies to a public key, set explicitly.
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}
	priv := privateTemplate(label, id, policy)
	var mech uint
	var keyType KeyType
	bits := 256
	switch kind {
	case ECP256:
		mech, keyType = pkcs11.CKM_EC_KEY_PAIR_GEN, TypeEC
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidP256))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
	case Ed25519:
		mech, keyType = ckmECEdwardsKeyPairGen, TypeEd25519
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards))
	case RSA2048, RSA3072:
		bits = 2048
		if kind == RSA3072 {
			bits = 3072
		}
		mech, keyType = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, TypeRSA
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, bits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, []byte{1, 0, 1}))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA))
	default:
		return nil, fmt.Errorf("%w: key pair type %q (use ec-p256, rsa-2048, rsa-3072 or ed25519)", ErrNotSupported, kind)
	}
	op := kind.Op()
	if err := t.st.require(op); err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	var h pkcs11.ObjectHandle
	err := t.do(ctx, "generate_pair", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		var err error
		_, h, err = t.st.mod.ctx.GenerateKeyPair(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv)
		return t.st.notSupported(op, call("C_GenerateKeyPair", err))
	})
	if err != nil {
		return nil, fmt.Errorf("generate %q: %w", label, err)
	}
	return t.remember(KeyInfo{Label: label, ID: id, Class: ClassPrivate, Type: keyType, Bits: bits}, h), nil
}

// privateTemplate is the template of a signing private key: token,
// private, sensitive, extractable only as policy says, sign only.
func privateTemplate(label string, id []byte, policy Policy) []*pkcs11.Attribute {
	return append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
	}, policy.attrs()...)
}

// Signer is a crypto.Signer whose private key stays in the device.
// Signatures are in Go's standard formats: ASN.1 DER for ECDSA, PKCS #1 v1.5
// or PSS for RSA, 64 bytes for Ed25519.
type Signer struct {
	key *Key
	pub crypto.PublicKey
}

var _ crypto.Signer = (*Signer)(nil)

// Signer returns a crypto.Signer for the private key k, reading its public
// half from the device once.
func (k *Key) Signer(ctx context.Context) (*Signer, error) {
	if k.Class != ClassPrivate {
		return nil, fmt.Errorf("%w: %s is not a private key", ErrNotSupported, k)
	}
	pub, err := k.tok.PublicKey(ctx, k.Label)
	if err != nil {
		return nil, fmt.Errorf("public key of %q: %w", k.Label, err)
	}
	return &Signer{key: k, pub: pub}, nil
}

// PublicKey reads the public key object labelled label: the public half
// of a key pair, or a public key stored alone (StorePublicKey).
func (t *Token) PublicKey(ctx context.Context, label string) (crypto.PublicKey, error) {
	st := t.st
	var pub crypto.PublicKey
	err := t.do(ctx, "public_key", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		h, err := st.findOne(s, label, ClassPublic)
		if err != nil {
			return err
		}
		kt, err := st.attrs(s, h, pkcs11.CKA_KEY_TYPE)
		if err != nil {
			return err
		}
		switch KeyType(bytesToUint(kt[pkcs11.CKA_KEY_TYPE])) {
		case TypeEC, TypeEd25519:
			a, err := st.attrs(s, h, pkcs11.CKA_EC_PARAMS, pkcs11.CKA_EC_POINT)
			if err != nil {
				return err
			}
			point := unwrapOctetString(a[pkcs11.CKA_EC_POINT])
			if bytes.Equal(a[pkcs11.CKA_EC_PARAMS], oidEd25519) {
				if len(point) != ed25519.PublicKeySize {
					return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrNotSupported, len(point))
				}
				pub = ed25519.PublicKey(point)
				return nil
			}
			curve, ok := curveByParams(a[pkcs11.CKA_EC_PARAMS])
			if !ok {
				return fmt.Errorf("%w: EC curve of %q (P-256 only)", ErrNotSupported, label)
			}
			ec, err := ecdsa.ParseUncompressedPublicKey(curve, point)
			if err != nil {
				return fmt.Errorf("%w: malformed EC point for %q: %v", ErrDevice, label, err)
			}
			pub = ec
		case TypeRSA:
			a, err := st.attrs(s, h, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT)
			if err != nil {
				return err
			}
			e := new(big.Int).SetBytes(a[pkcs11.CKA_PUBLIC_EXPONENT])
			pub = &rsa.PublicKey{N: new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS]), E: int(e.Int64())}
		default:
			return fmt.Errorf("%w: public key %q of type %s", ErrNotSupported, label, KeyType(bytesToUint(kt[pkcs11.CKA_KEY_TYPE])))
		}
		return nil
	})
	return pub, err
}

// StorePublicKey stores pub in the device as a public token object
// labelled label, which may only verify: a peer's key this device is told
// to believe (a node's signing key, accepted by its operator).
func (t *Token) StorePublicKey(ctx context.Context, label string, pub crypto.PublicKey) error {
	template, _, err := publicTemplate(label, newID(idRecord{origin: originImported}), pub)
	if err != nil {
		return err
	}
	return t.do(ctx, "store_public_key", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		if err := t.st.ensureFree(s, label); err != nil {
			return err
		}
		_, err := t.st.mod.ctx.CreateObject(s, template)
		return call("C_CreateObject", err)
	})
}

// unwrapOctetString strips the DER OCTET STRING that PKCS#11 puts around
// CKA_EC_POINT; some devices return the bare point.
func unwrapOctetString(b []byte) []byte {
	var inner []byte
	if rest, err := asn1.Unmarshal(b, &inner); err == nil && len(rest) == 0 {
		return inner
	}
	return b
}

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// Key is the private key object behind the signer.
func (s *Signer) Key() *Key { return s.key }

// Sign signs digest (for Ed25519: the whole message, with opts.HashFunc()
// zero). rand is ignored: the device makes its own randomness.
func (s *Signer) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), digest, opts)
}

// digestInfoPrefix is the DER DigestInfo header PKCS #1 v1.5 puts before
// the hash (RFC 8017, section 9.2, note 1).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

var pssHash = map[crypto.Hash][2]uint{
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// SignContext is Sign with a context for waiting on a session.
func (s *Signer) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	hash := opts.HashFunc()
	if hash != 0 && len(digest) != hash.Size() {
		return nil, fmt.Errorf("%w: digest of %d bytes for %v", ErrConfig, len(digest), hash)
	}
	var mech *pkcs11.Mechanism
	input := digest
	switch s.key.Type {
	case TypeEC:
		if hash == 0 {
			return nil, fmt.Errorf("%w: ECDSA signs a digest; set opts to its hash", ErrConfig)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
	case TypeEd25519:
		if hash != 0 {
			return nil, fmt.Errorf("%w: Ed25519ph (a pre-hashed message)", ErrNotSupported)
		}
		mech = pkcs11.NewMechanism(ckmEdDSA, nil)
	case TypeRSA:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			h, ok := pssHash[hash]
			if !ok {
				return nil, fmt.Errorf("%w: RSA-PSS with %v", ErrNotSupported, hash)
			}
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash {
				salt = hash.Size()
			}
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(h[0], h[1], uint(salt)))
		} else {
			prefix, ok := digestInfoPrefix[hash]
			if !ok {
				return nil, fmt.Errorf("%w: RSA PKCS #1 v1.5 with %v", ErrNotSupported, hash)
			}
			input = append(append([]byte(nil), prefix...), digest...)
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
		}
	default:
		return nil, fmt.Errorf("%w: %s cannot sign", ErrNotSupported, s.key)
	}
	var sig []byte
	err := s.key.tok.do(ctx, "sign", s.key, func(ss pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		c := s.key.tok.st.mod.ctx
		if err := c.SignInit(ss, []*pkcs11.Mechanism{mech}, h); err != nil {
			return call("C_SignInit", err)
		}
		var err error
		sig, err = c.Sign(ss, input)
		return call("C_Sign", err)
	})
	if err != nil {
		return nil, fmt.Errorf("sign with %q: %w", s.key.Label, err)
	}
	if s.key.Type == TypeEC {
		return ecdsaASN1(sig)
	}
	return sig, nil
}

// ecdsaASN1 turns the raw r ‖ s of CKM_ECDSA into Go's ASN.1 form.
func ecdsaASN1(raw []byte) ([]byte, error) {
	if len(raw) == 0 || len(raw)%2 != 0 {
		return nil, fmt.Errorf("%w: ECDSA signature of %d bytes", ErrDevice, len(raw))
	}
	n := len(raw) / 2
	return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(raw[:n]), new(big.Int).SetBytes(raw[n:])})
}
