package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"maps"
	"math/big"
	"slices"
	"time"

	"github.com/keyward/keyward/keyring"
)

// JWK is a public key in RFC 7517 form.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKSet is what `keyward token jwks` prints.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWKS publishes the public keys of the device's signing key pairs, so that
// stock verifiers accept ES256, RS256, PS256 and EdDSA tokens. (HMAC keys
// are secret: whoever may verify HS256 tokens holds the join key.)
func (s *Service) JWKS(ctx context.Context) (JWKSet, error) {
	// The listing verification keeps (read again at most every
	// RevocationRefresh), not a device search per call: the server
	// answers this route to anyone.
	view, err := s.signingVersions(ctx, time.Now())
	if err != nil {
		return JWKSet{}, err
	}
	set := JWKSet{Keys: []JWK{}}
	for _, v := range slices.Sorted(maps.Keys(view.versions)) {
		sg, err := s.signer(ctx, v)
		if err != nil {
			return JWKSet{}, err
		}
		k := JWK{Kid: kidFor(keyring.Signing, v), Use: "sig"}
		switch pub := sg.Public().(type) {
		case *ecdsa.PublicKey:
			raw, _ := pub.Bytes() // 0x04 ‖ X ‖ Y
			k.Kty, k.Crv, k.Alg, k.X, k.Y = "EC", "P-256", ES256, b64(raw[1:33]), b64(raw[33:])
		case *rsa.PublicKey:
			k.Kty, k.N, k.E = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
		case ed25519.PublicKey:
			k.Kty, k.Crv, k.Alg, k.X = "OKP", "Ed25519", EdDSA, b64(pub)
		}
		set.Keys = append(set.Keys, k)
	}
	return set, nil
}

// Introspection is an RFC 7662 answer: {"active": false} alone, or the
// claims. Its members are in sorted order.
type Introspection struct {
	Active    bool     `json:"active"`
	Aud       []string `json:"aud,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Ext       string   `json:"ext,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Knd       string   `json:"knd,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
}

// Introspect answers like RFC 7662: {"active": false} for any token that
// does not verify (whatever the reason), else "active": true with the
// claims. o says what is accepted (kinds default to every kind, pairing
// tokens included). The error is not about the token: the database or
// the device failed, and nothing can be said of it.
func (s *Service) Introspect(ctx context.Context, token string, o VerifyOptions) (*Introspection, error) {
	if o.Kinds == nil {
		o.Kinds = []string{KindAccess, KindMaster, KindBootstrap, KindPairing}
	}
	c, err := s.Verify(ctx, token, o)
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			return nil, err
		}
		return &Introspection{}, nil
	}
	out := &Introspection{Active: true, TokenType: "Bearer", Sub: c.Subject, Iss: c.Issuer, Jti: c.ID, Aud: c.Audience,
		Exp: c.ExpiresAt.Unix(), Knd: c.Kind, Scope: c.Scope, Ext: c.Ext}
	if c.IssuedAt != nil {
		out.Iat = c.IssuedAt.Unix()
	}
	if c.NotBefore != nil {
		out.Nbf = c.NotBefore.Unix()
	}
	return out, nil
}

// CacheStats says how often Verify found a token in its cache, and how
// often not.
func (s *Service) CacheStats() (hits, misses uint64) { return s.cache.stats() }
