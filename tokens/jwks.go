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
	"strings"
	"time"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
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
// stock verifiers accept ES256, RS256, PS256 and EdDSA tokens: each key
// pair that signs, and each that no longer does until the last token it
// signed has expired. (HMAC keys
// are secret: whoever may verify HS256 tokens holds the join key.)
func (s *Service) JWKS(ctx context.Context) (JWKSet, error) {
	// The listing verification keeps (read again at most every
	// RevocationRefresh), not a device search per call: the server
	// answers this route to anyone.
	view, err := s.signingVersions(ctx, time.Now())
	if err != nil {
		return JWKSet{}, err
	}
	if time.Since(view.read) >= s.opts.RevocationRefresh {
		// Stale: a key pair generated a moment ago must be published
		// before a verifier sees a token it signed. The device gets a
		// second; a device away leaves the last listing.
		wait, cancel := context.WithTimeout(ctx, time.Second)
		if fresh, err := s.listNow(wait); err == nil {
			view = fresh
		}
		cancel()
	}
	set := JWKSet{Keys: []JWK{}}
	wall := time.Now()
	for _, v := range slices.Sorted(maps.Keys(view.versions)) {
		sg, err := s.signer(ctx, v)
		if err != nil {
			return JWKSet{}, err
		}
		if !s.published(v, view.newest[sg.Key().Type] == v, wall) {
			continue // retired or superseded, and every token it signed has expired
		}
		k := JWK{Kid: kidFor(keyring.Signing, v), Use: "sig"}
		switch pub := sg.Public().(type) {
		case *ecdsa.PublicKey:
			raw, _ := pub.Bytes() // 0x04 ‖ X ‖ Y
			k.Kty, k.Crv, k.Alg, k.X, k.Y = "EC", "P-256", ES256, b64(raw[1:33]), b64(raw[33:])
		case *rsa.PublicKey:
			// Twice: RS256 as signing/vN, PS256 as signing/vN/PS256 (each
			// JWK has the one alg its tokens carry).
			k.Kty, k.Alg, k.N, k.E = "RSA", RS256, b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
			ps := k
			ps.Kid, ps.Alg = signingKid(PS256, v), PS256
			set.Keys = append(set.Keys, k)
			k = ps
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
	if IsRefreshToken(token) {
		return s.introspectRefresh(ctx, token)
	}
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

// introspectRefresh answers for a refresh token: active while it may be
// used, with token_type refresh_token and its grant's subject, scope and
// audience.
func (s *Service) introspectRefresh(ctx context.Context, token string) (*Introspection, error) {
	r, err := s.store.LiveRefresh(ctx, hashRefresh(token), s.now())
	if errors.Is(err, keystore.ErrTokenUnknown) {
		return &Introspection{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &Introspection{Active: true, TokenType: "refresh_token", Sub: r.Subject, Iss: s.Issuer(), Aud: strings.Fields(r.Audience),
		Exp: r.Expires.Unix(), Iat: r.Issued.Unix(), Scope: r.Scope}, nil
}

// CacheStats says how often Verify found a token in its cache, and how
// often not.
func (s *Service) CacheStats() (hits, misses uint64) { return s.cache.stats() }
