package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
)

// deviceMethod signs a JWS inside the device and verifies one: HMAC in
// the device with the join key's derived *hsm.Key (which cannot leave it),
// a key pair's signature with golang-jwt's stock method and the public
// key. It is deliberately not registered with golang-jwt: that registry is
// process-wide, and every other importer of golang-jwt must keep getting
// the stock methods.
type deviceMethod struct {
	stock jwt.SigningMethod
	hash  crypto.Hash
}

func (m *deviceMethod) Alg() string { return m.stock.Alg() }

// sign signs input with an *hsm.Key (HMAC) or an *hsm.Signer.
func (m *deviceMethod) sign(ctx context.Context, input []byte, key any) ([]byte, error) {
	switch k := key.(type) {
	case *hsm.Key:
		return k.HMAC(ctx, m.hash, input)
	case *hsm.Signer:
		return m.signWith(ctx, k, input)
	}
	return nil, fmt.Errorf("%s: cannot sign with a %T", m.Alg(), key)
}

// verify checks sig over input with the key keyFor gave: an *hsm.Key
// verifies in the device (input is copied into *scratch, a pooled buffer,
// since the device takes bytes), a public key with the stock method. A
// signature that does not match is one of the errors badSignature knows.
func (m *deviceMethod) verify(ctx context.Context, input string, sig []byte, key any, scratch *[]byte) error {
	if k, ok := key.(*hsm.Key); ok {
		msg := append((*scratch)[:0], input...)
		*scratch = msg
		err := k.VerifyHMAC(ctx, m.hash, msg, sig)
		if errors.Is(err, hsm.ErrAuthentication) {
			return jwt.ErrSignatureInvalid
		}
		return err
	}
	if _, ok := m.stock.(*jwt.SigningMethodECDSA); ok && highS(sig) {
		// (r, n−s) verifies too: refused, so that a token has one text.
		return jwt.ErrSignatureInvalid
	}
	return m.stock.Verify(input, sig, key)
}

// p256HalfOrder is half the order of P-256's group: a signature's s above
// it is the high form.
var p256HalfOrder = new(big.Int).Rsh(elliptic.P256().Params().N, 1)

// highS says an ES256 signature r ‖ s has s in its high form.
func highS(sig []byte) bool {
	return len(sig) == 64 && new(big.Int).SetBytes(sig[32:]).Cmp(p256HalfOrder) > 0
}

// badSignature says err is a verifier's "the signature does not match",
// not a failure of the device or a misuse of a method.
func badSignature(err error) bool {
	return errors.Is(err, jwt.ErrSignatureInvalid) || errors.Is(err, jwt.ErrECDSAVerification) ||
		errors.Is(err, jwt.ErrEd25519Verification) || errors.Is(err, rsa.ErrVerification)
}

// signWith signs with a device key pair, in JWS's formats (RFC 7518):
// ECDSA as r ‖ s with s in its low form, RSA PKCS #1 v1.5 or PSS with the hash's salt length,
// Ed25519 over the message itself.
func (m *deviceMethod) signWith(ctx context.Context, s *hsm.Signer, input []byte) ([]byte, error) {
	if m.hash == 0 { // EdDSA
		return s.SignContext(ctx, input, crypto.Hash(0))
	}
	h := m.hash.New()
	h.Write(input)
	digest := h.Sum(nil)
	switch m.stock.(type) {
	case *jwt.SigningMethodECDSA:
		der, err := s.SignContext(ctx, digest, m.hash)
		if err != nil {
			return nil, err
		}
		var rs struct{ R, S *big.Int }
		if _, err := asn1.Unmarshal(der, &rs); err != nil {
			return nil, err
		}
		if rs.S.Cmp(p256HalfOrder) > 0 { // low S: one signature per token
			rs.S.Sub(elliptic.P256().Params().N, rs.S)
		}
		out := make([]byte, 64)
		rs.R.FillBytes(out[:32])
		rs.S.FillBytes(out[32:])
		return out, nil
	case *jwt.SigningMethodRSAPSS:
		return s.SignContext(ctx, digest, &rsa.PSSOptions{Hash: m.hash, SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return s.SignContext(ctx, digest, m.hash)
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

// methods are keyward's signing methods by algorithm, one for each of
// Algorithms and none else.
var methods = map[string]*deviceMethod{
	HS256: {jwt.SigningMethodHS256, crypto.SHA256},
	HS384: {jwt.SigningMethodHS384, crypto.SHA384},
	HS512: {jwt.SigningMethodHS512, crypto.SHA512},
	ES256: {jwt.SigningMethodES256, crypto.SHA256},
	RS256: {jwt.SigningMethodRS256, crypto.SHA256},
	PS256: {jwt.SigningMethodPS256, crypto.SHA256},
	EdDSA: {jwt.SigningMethodEdDSA, 0},
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
