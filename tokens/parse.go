package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/keyring"
)

// parse verifies a token's signature and issuer, and (with checkTime) its
// expiry; it does not look at audience, kind or revocation.
func (s *Service) parse(ctx context.Context, token string, checkTime bool) (*Claims, error) {
	v, err := s.parseWith(ctx, token, Algorithms, checkTime, time.Now())
	return v.claims, err
}

// parseWith verifies token with the direct parser when it can, else with
// golang-jwt's.
func (s *Service) parseWith(ctx context.Context, token string, algs []string, checkTime bool, wall time.Time) (verified, error) {
	if !s.stockOnly {
		if v, err, done := s.parseDirect(ctx, token, algs, wall); done {
			if err == nil && s.parsed != nil {
				s.parsed(true)
			}
			return v, err
		}
	}
	v, err := s.parseStock(ctx, token, algs, checkTime, wall)
	if err == nil && s.parsed != nil {
		s.parsed(false)
	}
	return v, err
}

// stockParser is golang-jwt's parser, used only to decode: the signature
// is checked in keyward (checkSignature), the algorithm against the
// caller's set, the claims by Service.validator.
var stockParser = jwt.NewParser(jwt.WithStrictDecoding())

// parseStock verifies any token with golang-jwt's decoding and claim
// validation, after checkStrict. ParseUnverified (v5) splits the three
// segments, decodes them (strict base64url), reads the header and the
// claims with encoding/json and looks alg up in golang-jwt's registry; it
// checks no signature, method or claim. So, in this order: the algorithm
// against algs, the kid against the key registry, the signature through
// the device, then (with checkTime) golang-jwt's Validator on exp, nbf and
// iss, and last that jti, knd and the issuer are there.
func (s *Service) parseStock(ctx context.Context, token string, algs []string, checkTime bool, wall time.Time) (verified, error) {
	if err := checkStrict(token); err != nil {
		return verified{}, invalid(ErrMalformed, "%v", err)
	}
	c := &Claims{}
	t, parts, err := stockParser.ParseUnverified(token, c)
	if err != nil {
		return verified{}, classify(err)
	}
	alg, _ := t.Header["alg"].(string) // a string golang-jwt knows, or ParseUnverified failed
	if !slices.Contains(algs, alg) {
		return verified{}, invalid(ErrAlgorithm, "signing method %s is not accepted here", alg)
	}
	kid, _ := t.Header["kid"].(string)
	key, err := s.verificationKey(ctx, alg, kid, wall)
	if err != nil {
		if isReason(err) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return verified{}, err
	}
	sc := bufferPool.Get().(*buffers)
	defer sc.put()
	if err := checkSignature(ctx, alg, token[:len(parts[0])+1+len(parts[1])], t.Signature, key, &sc.msg); err != nil {
		return verified{}, err
	}
	if checkTime {
		if err := s.validator.Validate(c); err != nil {
			return verified{}, classify(err)
		}
	}
	if c.ID == "" || c.Kind == "" {
		return verified{}, invalid(ErrMalformed, "no jti or knd claim")
	}
	if ok, err := s.knownIssuer(ctx, c.Issuer, wall); err != nil {
		return verified{}, err
	} else if !ok {
		return verified{}, invalid(ErrIssuer, "not issued by this keyward")
	}
	// A token another node signed, seen for the first time: its header is
	// one keyward writes, so the next such token takes the direct path.
	if parts[0] == headerSegment(alg, kid) {
		s.knowHeader(parts[0], alg, kid)
	}
	return verified{claims: c, alg: alg, kid: kid}, nil
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
	// from pooled buffers: a fresh copy per token costs more than the
	// copying itself.
	sc := bufferPool.Get().(*buffers)
	defer sc.put()
	sig, err := b64url.AppendDecode(sc.sig[:0], []byte(sigSeg))
	if err != nil {
		return verified{}, nil, false
	}
	sc.sig = sig
	key, err := s.keyFor(ctx, hdr.alg, hdr.kid, hdr.role, hdr.version, wall)
	if err != nil {
		if isReason(err) {
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return verified{}, err, true
	}
	if err := checkSignature(ctx, hdr.alg, token[:len(hdrSeg)+1+len(payloadSeg)], sig, key, &sc.msg); err != nil {
		return verified{}, err, true
	}
	if ok, err := s.knownIssuer(ctx, c.Issuer, wall); err != nil {
		return verified{}, err, true
	} else if !ok {
		return verified{}, invalid(ErrIssuer, "not issued by this keyward"), true
	}
	return verified{claims: c, alg: hdr.alg, kid: hdr.kid, payload: text}, nil, true
}

// checkSignature verifies sig over input with key (as keyFor gave it)
// and words the outcome: a signature that does not match is the token's
// fault (ErrSignature); any other failure is the device's or a method's,
// never reported as a bad token.
func checkSignature(ctx context.Context, alg, input string, sig []byte, key any, msg *[]byte) error {
	err := methods[alg].verify(ctx, input, sig, key, msg)
	switch {
	case err == nil:
		return nil
	case badSignature(err):
		return invalid(ErrSignature, "the signature does not match")
	}
	return fmt.Errorf("verify the %s signature: %w", alg, err)
}

// buffers hold a signature and a signing input on their way to the
// device.
type buffers struct{ sig, msg []byte }

var bufferPool = sync.Pool{New: func() any { return &buffers{sig: make([]byte, 0, 512), msg: make([]byte, 0, 1024)} }}

func (b *buffers) put() {
	if cap(b.sig)+cap(b.msg) <= 2*MaxTokenSize { // keep the pool's buffers small
		bufferPool.Put(b)
	}
}

// isReason says err is about the token (it names an unknown key or one of
// the wrong kind), not about the database or the device.
func isReason(err error) bool { return errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrAlgorithm) }

// classify words golang-jwt's refusals — ParseUnverified's and the
// Validator's — as keyward's reasons, by their sentinel errors.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenUnverifiable): // alg missing, or a name golang-jwt does not know
		return invalid(ErrAlgorithm, "%v", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid(ErrExpired, "%v", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid(ErrNotYetValid, "%v", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid(ErrIssuer, "not issued by this keyward")
	}
	return invalid(ErrMalformed, "%v", err) // ErrTokenMalformed, ErrTokenRequiredClaimMissing
}
