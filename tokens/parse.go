package tokens

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// parse verifies a token's signature and issuer, and (with checkTime) its
// expiry; it does not look at audience, kind or revocation.
func (s *Service) parse(ctx context.Context, token string, checkTime bool) (*Claims, error) {
	v, err := s.parseWith(ctx, token, Algorithms, checkTime, time.Now())
	return v.claims, err
}

func (s *Service) parseWith(ctx context.Context, token string, algs []string, checkTime bool, wall time.Time) (verified, error) {
	if v, err, done := s.parseDirect(ctx, token, algs, wall); done {
		return v, err
	}
	return s.parseStock(ctx, token, algs, checkTime, wall)
}

// parseStock verifies any token with golang-jwt, after checkStrict.
func (s *Service) parseStock(ctx context.Context, token string, algs []string, checkTime bool, wall time.Time) (verified, error) {
	if err := checkStrict(token); err != nil {
		return verified{}, invalid(ErrMalformed, "%v", err)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithIssuer(s.issuer), jwt.WithLeeway(s.opts.Leeway),
		jwt.WithTimeFunc(s.now), jwt.WithExpirationRequired(), jwt.WithStrictDecoding()}
	if !checkTime {
		opts = append(opts, jwt.WithoutClaimsValidation())
	}
	c := &Claims{}
	t, err := jwt.NewParser(opts...).ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := s.verificationKey(ctx, t.Method.Alg(), kid, wall)
		if err != nil && !isReason(err) {
			return nil, infraError{err}
		}
		return k, err
	})
	if err != nil {
		var infra infraError
		if errors.As(err, &infra) {
			return verified{}, infra.err
		}
		return verified{}, classify(err)
	}
	if c.ID == "" || c.Kind == "" {
		return verified{}, invalid(ErrMalformed, "no jti or knd claim")
	}
	if c.Issuer != s.issuer { // checked here too when claims validation is off
		return verified{}, invalid(ErrIssuer, "not issued by this keyward")
	}
	v := verified{claims: c, alg: t.Method.Alg()}
	v.kid, _ = t.Header["kid"].(string)
	// A token another node signed, seen for the first time: its header is
	// one keyward writes, so the next such token takes the direct path.
	if seg, _, _ := strings.Cut(token, "."); seg == headerSegment(v.alg, v.kid) {
		s.knowHeader(seg, v.alg, v.kid)
	}
	return v, nil
}

// header is a JOSE header keyward writes (kept by its encoded segment),
// with its kid read.
type header struct {
	alg, kid string
	role     keyring.Role
	version  int
}

// knowHeader adds seg, the encoded header of alg and kid, to the headers
// parseDirect knows (a few per key version).
func (s *Service) knowHeader(seg, alg, kid string) {
	s.headers.loadOrMake(seg, func() (header, error) {
		role, v, ok := parseKid(kid)
		if !ok {
			return header{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		return header{alg: alg, kid: kid, role: role, version: v}, nil
	})
}

// parseDirect verifies a token whose header is one keyward wrote (known
// by its exact encoded bytes) and whose payload decodes directly, without
// golang-jwt's reflection. done is false when the token is not of that
// shape: parseWith then takes golang-jwt's path, which also words every
// error. It checks the signature (in the device for HMAC), the issuer and
// that exp, jti and knd are there; times are checkClaims' job.
func (s *Service) parseDirect(ctx context.Context, token string, algs []string, wall time.Time) (_ verified, _ error, done bool) {
	hdrSeg, rest, ok := strings.Cut(token, ".")
	if !ok {
		return verified{}, nil, false
	}
	payloadSeg, sigSeg, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sigSeg, '.') >= 0 {
		return verified{}, nil, false
	}
	hdr, ok := s.headers.load(hdrSeg)
	if !ok {
		return verified{}, nil, false
	}
	if !slices.Contains(algs, hdr.alg) {
		return verified{}, nil, false
	}
	var scratch [512]byte
	payload, err := b64url.AppendDecode(scratch[:0], []byte(payloadSeg))
	if err != nil {
		return verified{}, nil, false
	}
	text := string(payload)
	c, ok := decodeClaims(text)
	if !ok || c.ExpiresAt == nil || c.ID == "" || c.Kind == "" {
		return verified{}, nil, false
	}
	// The signature and (for HMAC) the signing input go to the device
	// from a pooled buffer: a fresh copy per token costs more than the
	// copying itself.
	buf := buffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 2*MaxTokenSize { // keep the pool's buffers small
			buffers.Put(buf)
		}
	}()
	sig, err := b64url.AppendDecode((*buf)[:0], []byte(sigSeg))
	if err != nil {
		return verified{}, nil, false
	}
	key, err := s.keyFor(ctx, hdr.alg, hdr.kid, hdr.role, hdr.version, wall)
	if err != nil {
		if isReason(err) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return verified{}, err, true
	}
	input := token[:len(hdrSeg)+1+len(payloadSeg)]
	if k, ok := key.(*hsm.Key); ok {
		all := append(sig, input...)
		*buf = all[:0]
		err = k.VerifyHMAC(ctx, hmacHash[hdr.alg], all[len(sig):], sig)
		if errors.Is(err, hsm.ErrAuthentication) {
			err = jwt.ErrSignatureInvalid
		}
	} else {
		err = methods[hdr.alg].Verify(input, sig, key)
	}
	if err != nil {
		if errors.Is(err, jwt.ErrSignatureInvalid) || errors.Is(err, jwt.ErrECDSAVerification) ||
			errors.Is(err, jwt.ErrEd25519Verification) || errors.Is(err, rsa.ErrVerification) {
			return verified{}, invalid(ErrSignature, "the signature does not match"), true
		}
		return verified{}, fmt.Errorf("verify the %s signature: %w", hdr.alg, err), true
	}
	if c.Issuer != s.issuer {
		return verified{}, invalid(ErrIssuer, "not issued by this keyward"), true
	}
	return verified{claims: c, alg: hdr.alg, kid: hdr.kid, payload: text}, nil, true
}

// buffers hold a signature and a signing input on their way to the device.
var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// isReason says err is about the token (it names an unknown key or one of
// the wrong kind), not about the database or the device.
func isReason(err error) bool { return errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrAlgorithm) }

// infraError carries a database or device failure through golang-jwt's
// key function, so that it is not reported as a bad token.
type infraError struct{ err error }

func (e infraError) Error() string { return e.err.Error() }
func (e infraError) Unwrap() error { return e.err }

// classify turns jwt/v5's errors into keyward's reasons.
func classify(err error) error {
	for _, reason := range []error{ErrUnknownKey, ErrAlgorithm} {
		if errors.Is(err, reason) {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if strings.Contains(err.Error(), "signing method") {
			return invalid(ErrAlgorithm, "%v", err)
		}
		return invalid(ErrSignature, "the signature does not match")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return invalid(ErrAlgorithm, "%v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid(ErrExpired, "%v", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid(ErrNotYetValid, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid(ErrIssuer, "not issued by this keyward")
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid(ErrMalformed, "%v", err)
	}
	return invalid(ErrMalformed, "%v", err)
}
