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
	"github.com/keyward/keyward/keystore"
)

// VerifyOptions say what a verifier accepts.
type VerifyOptions struct {
	Audience    string   // expected audience; default this issuer
	AnyAudience bool     // skip the audience check (pairing redemption)
	Kinds       []string // accepted kinds; default access, master, bootstrap
	Algorithms  []string // accepted algorithms; default all keyward signs with
}

var defaultKinds = []string{KindAccess, KindMaster, KindBootstrap}

// Verify checks token: algorithm (from the fixed set, never "none", never
// the token's choice), kid (a known key version), signature (HMAC in the
// device), exp and nbf (with leeway), iss, aud, kind and revocation. It
// returns the claims, or an error wrapping ErrInvalid and the reason.
func (s *Service) Verify(ctx context.Context, token string, o VerifyOptions) (*Claims, error) {
	token = strings.TrimSpace(token)
	if o.Audience == "" {
		o.Audience = s.issuer
	}
	if o.Kinds == nil {
		o.Kinds = defaultKinds
	}
	now := s.opts.Now()
	if c, ok := s.cache.get(token); ok {
		if err := s.checkClaims(ctx, c, o, now); err != nil {
			return nil, err
		}
		cp := *c
		return &cp, nil
	}
	c, err := s.parseWith(ctx, token, o.Algorithms, true)
	if err != nil {
		return nil, err
	}
	if err := s.checkClaims(ctx, c, o, now); err != nil {
		return nil, err
	}
	cp := *c
	s.cache.put(token, &cp)
	return c, nil
}

// checkClaims checks what may change after the signature was verified:
// time, audience, kind, revocation.
func (s *Service) checkClaims(ctx context.Context, c *Claims, o VerifyOptions, now time.Time) error {
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(s.opts.Leeway)) {
		return invalid(ErrExpired, "expired at %s", fmtTime(c.ExpiresAt))
	}
	if c.NotBefore != nil && now.Add(s.opts.Leeway).Before(c.NotBefore.Time) {
		return invalid(ErrNotYetValid, "not valid before %s", fmtTime(c.NotBefore))
	}
	if !slices.Contains(o.Kinds, c.Kind) {
		return invalid(ErrKind, "a %q token, expected %s", c.Kind, strings.Join(o.Kinds, " or "))
	}
	if !o.AnyAudience && !audienceMatches(c.Audience, o.Audience) {
		return invalid(ErrAudience, "audience %v does not include %q", []string(c.Audience), o.Audience)
	}
	revoked, err := s.revoked.has(ctx, c.ID)
	if err != nil {
		return err
	}
	if revoked {
		return invalid(ErrRevoked, "token %s was revoked", c.ID)
	}
	return nil
}

func fmtTime(d *jwt.NumericDate) string {
	if d == nil {
		return "(none)"
	}
	return d.UTC().Format(time.RFC3339)
}

func invalid(reason error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalid, reason, fmt.Sprintf(format, args...))
}

// audienceMatches: an audience "name@*" in the token matches any instance
// "name@…"; otherwise names must be equal.
func audienceMatches(aud jwt.ClaimStrings, want string) bool {
	for _, a := range aud {
		if a == want {
			return true
		}
		if prefix, ok := strings.CutSuffix(a, "@*"); ok && strings.HasPrefix(want, prefix+"@") {
			return true
		}
	}
	return false
}

// parse verifies a token's signature and issuer, and (with checkTime) its
// expiry; it does not look at audience, kind or revocation.
func (s *Service) parse(ctx context.Context, token string, checkTime bool) (*Claims, error) {
	return s.parseWith(ctx, token, nil, checkTime)
}

func (s *Service) parseWith(ctx context.Context, token string, algs []string, checkTime bool) (*Claims, error) {
	if algs == nil {
		algs = Algorithms
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithIssuer(s.issuer), jwt.WithLeeway(s.opts.Leeway),
		jwt.WithTimeFunc(s.opts.Now), jwt.WithExpirationRequired()}
	if !checkTime {
		opts = append(opts, jwt.WithoutClaimsValidation())
	}
	c := &Claims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, c, func(t *jwt.Token) (any, error) {
		return s.verificationKey(ctx, t)
	})
	if err != nil {
		return nil, classify(err)
	}
	if c.ID == "" || c.Kind == "" {
		return nil, invalid(ErrMalformed, "no jti or knd claim")
	}
	return c, nil
}

// verificationKey resolves kid to a known key version of the kind alg
// needs; anything else fails.
func (s *Service) verificationKey(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	role, v, ok := parseKid(kid)
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	alg := t.Method.Alg()
	if isHMAC(alg) {
		if role != keyring.Join {
			return nil, fmt.Errorf("%w: %s with kid %q", ErrAlgorithm, alg, kid)
		}
		s.mu.Lock()
		k, ok := s.hmac[kidFor(role, v)+" "+alg]
		s.mu.Unlock()
		if ok {
			return k, nil
		}
		if !s.joinUsable(ctx, v) {
			return nil, fmt.Errorf("%w: %q is not a registered, unretired join key", ErrUnknownKey, kid)
		}
		k, err := s.hmacKey(ctx, v, alg)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrUnknownKey, kid, err)
		}
		return k, nil
	}
	if role != keyring.Signing {
		return nil, fmt.Errorf("%w: %s with kid %q", ErrAlgorithm, alg, kid)
	}
	sg, err := s.signer(ctx, v)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrUnknownKey, kid, err)
	}
	if !publicMatches(alg, sg.Public()) {
		return nil, fmt.Errorf("%w: %s with kid %q (a %s key)", ErrAlgorithm, alg, kid, sg.Key().Type)
	}
	return sg.Public(), nil
}

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

// revocations follows the database's revocation log: a set of revoked
// token ids, read again at most every interval (wall-clock, whatever the
// token clock says), so a revocation on any node reaches this one within
// interval (this process's own at once).
type revocations struct {
	store    *keystore.Store
	interval time.Duration
	now      func() time.Time

	mu      sync.RWMutex
	ids     map[string]time.Time // id → expiry (pruned after it)
	seq     int64
	checked time.Time
}

func newRevocations(store *keystore.Store, interval time.Duration, now func() time.Time) *revocations {
	return &revocations{store: store, interval: interval, now: now, ids: map[string]time.Time{}}
}

func (r *revocations) has(ctx context.Context, id string) (bool, error) {
	r.mu.RLock()
	fresh := time.Since(r.checked) < r.interval
	_, revoked := r.ids[id]
	r.mu.RUnlock()
	if fresh || revoked {
		return revoked, nil
	}
	if err := r.refresh(ctx); err != nil {
		return false, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, revoked = r.ids[id]
	return revoked, nil
}

func (r *revocations) refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) < r.interval {
		return nil
	}
	now := r.now()
	log, err := r.store.RevocationsSince(ctx, r.seq)
	if err != nil {
		return err
	}
	for _, e := range log {
		r.ids[e.TokenID] = e.Expires
		r.seq = e.Seq
	}
	for id, exp := range r.ids {
		if now.After(exp.Add(time.Hour)) {
			delete(r.ids, id)
		}
	}
	r.checked = time.Now()
	return nil
}

func (r *revocations) add(id string, exp time.Time) {
	r.mu.Lock()
	r.ids[id] = exp
	r.mu.Unlock()
}

// verifiedCache keeps the claims of tokens whose signature verified, by the
// token's exact text, so the same token verifies again without the device.
// Time, audience, kind and revocation are checked on every hit. When full,
// an arbitrary entry makes room.
type verifiedCache struct {
	mu   sync.RWMutex
	max  int
	byTk map[string]*Claims
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, byTk: make(map[string]*Claims, max)}
}

func (c *verifiedCache) get(token string) (*Claims, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.RLock()
	cl, ok := c.byTk[token]
	c.mu.RUnlock()
	return cl, ok
}

func (c *verifiedCache) put(token string, cl *Claims) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.byTk) >= c.max {
		for k := range c.byTk {
			delete(c.byTk, k)
			break
		}
	}
	c.byTk[token] = cl
	c.mu.Unlock()
}
