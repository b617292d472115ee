package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
)

// deviceMethod is a jwt/v5 signing method that signs (and for HMAC,
// verifies) inside the device when given an *hsm.Key or *hsm.Signer, and
// behaves exactly like the stock method for any other key. keyward
// registers one under each standard name, so a token it signs verifies
// with any JWT library, and stock verifiers in this process keep working.
type deviceMethod struct {
	stock jwt.SigningMethod
	hash  crypto.Hash
}

func (m *deviceMethod) Alg() string { return m.stock.Alg() }

func (m *deviceMethod) Sign(signingString string, key any) ([]byte, error) {
	switch k := key.(type) {
	case *hsm.Key:
		return k.HMAC(context.Background(), m.hash, []byte(signingString))
	case *hsm.Signer:
		return m.signWith(k, signingString)
	}
	return m.stock.Sign(signingString, key)
}

func (m *deviceMethod) Verify(signingString string, sig []byte, key any) error {
	if k, ok := key.(*hsm.Key); ok {
		err := k.VerifyHMAC(context.Background(), m.hash, []byte(signingString), sig)
		if errors.Is(err, hsm.ErrAuthentication) {
			return jwt.ErrSignatureInvalid
		}
		return err
	}
	return m.stock.Verify(signingString, sig, key)
}

// signWith signs with a device key pair, in JWS's formats (RFC 7518):
// ECDSA as r ‖ s, RSA PKCS #1 v1.5 or PSS with the hash's salt length,
// Ed25519 over the message itself.
func (m *deviceMethod) signWith(s *hsm.Signer, signingString string) ([]byte, error) {
	if m.hash == 0 { // EdDSA
		return s.Sign(nil, []byte(signingString), crypto.Hash(0))
	}
	h := m.hash.New()
	h.Write([]byte(signingString))
	digest := h.Sum(nil)
	switch m.stock.(type) {
	case *jwt.SigningMethodECDSA:
		der, err := s.Sign(nil, digest, m.hash)
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			return nil, err
		}
		out := make([]byte, 64)
		rs.R.FillBytes(out[:32])
		rs.S.FillBytes(out[32:])
		return out, nil
	case *jwt.SigningMethodRSAPSS:
		return s.Sign(nil, digest, &rsa.PSSOptions{Hash: m.hash, SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return s.Sign(nil, digest, m.hash)
}

// The algorithms keyward signs with. "none" is never among them.
const (
	HS256 = "HS256"
	HS384 = "HS384"
	HS512 = "HS512"
	ES256 = "ES256"
	RS256 = "RS256"
	PS256 = "PS256"
	EdDSA = "EdDSA"
)

// Algorithms lists every algorithm keyward issues and accepts.
var Algorithms = []string{HS256, HS384, HS512, ES256, RS256, PS256, EdDSA}

// methods are keyward's signing methods by algorithm (the ones registered
// with golang-jwt), and hmacHash the hash of each HMAC algorithm.
var (
	methods  = map[string]*deviceMethod{}
	hmacHash = map[string]crypto.Hash{HS256: crypto.SHA256, HS384: crypto.SHA384, HS512: crypto.SHA512}
)

func init() {
	for _, m := range []*deviceMethod{
		{jwt.SigningMethodHS256, crypto.SHA256},
		{jwt.SigningMethodHS384, crypto.SHA384},
		{jwt.SigningMethodHS512, crypto.SHA512},
		{jwt.SigningMethodES256, crypto.SHA256},
		{jwt.SigningMethodRS256, crypto.SHA256},
		{jwt.SigningMethodPS256, crypto.SHA256},
		{jwt.SigningMethodEdDSA, 0},
	} {
		methods[m.Alg()] = m
		jwt.RegisterSigningMethod(m.Alg(), func() jwt.SigningMethod { return m })
	}
}

func isHMAC(alg string) bool { return alg == HS256 || alg == HS384 || alg == HS512 }

// keyTypeFor is the device key pair type an asymmetric algorithm needs.
func keyTypeFor(alg string) (hsm.KeyType, error) {
	switch alg {
	case ES256:
		return hsm.TypeEC, nil
	case RS256, PS256:
		return hsm.TypeRSA, nil
	case EdDSA:
		return hsm.TypeEd25519, nil
	}
	return 0, fmt.Errorf("%w: %q (use one of %v)", ErrAlgorithm, alg, Algorithms)
}

// publicMatches says pub is the kind of key alg verifies with.
func publicMatches(alg string, pub crypto.PublicKey) bool {
	switch pub.(type) {
	case *ecdsa.PublicKey:
		return alg == ES256
	case *rsa.PublicKey:
		return alg == RS256 || alg == PS256
	}
	return alg == EdDSA
}

// hmacDerivationData is the input of the join-key derivation for alg: four
// 16-byte blocks "kw-jwt-<alg>" ‖ uint32 BE i, i = 1..4 (docs/FORMAT.md).
func hmacDerivationData(alg string) []byte {
	data := make([]byte, 0, 64)
	for i := byte(1); i <= 4; i++ {
		data = append(data, "kw-jwt-"+alg...)
		data = append(data, 0, 0, 0, i)
	}
	return data
}
