package tokens

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
	if len(token) > MaxTokenSize {
		return nil, invalid(ErrMalformed, "%d bytes, more than the %d a token may have", len(token), MaxTokenSize)
	}
	for _, a := range o.Algorithms {
		if !slices.Contains(Algorithms, a) {
			return nil, fmt.Errorf("%w: %q (use one of %v)", ErrAlgorithm, a, Algorithms)
		}
	}
	if o.Audience == "" {
		o.Audience = s.Audience()
	}
	if o.Kinds == nil {
		o.Kinds = defaultKinds
	}
	if o.Algorithms == nil {
		o.Algorithms = Algorithms
	}
	// wall paces the re-reads of the registry and the revocation log; now
	// is the token clock (the same, unless Options.Now says otherwise).
	wall := time.Now()
	now := wall
	if s.opts.Now != nil {
		now = s.now()
	}
	if v, ok := s.cache.get(token); ok {
		if err := s.checkKey(ctx, v, o.Algorithms, wall); err != nil {
			return nil, err
		}
		c := v.claims
		if v.payload != "" {
			c, _ = decodeClaims(v.payload) // it decoded the first time
		}
		if err := s.checkClaims(ctx, c, o, now, wall); err != nil {
			return nil, err
		}
		if v.payload == "" {
			c = c.clone()
		}
		return c, nil
	}
	v, err := s.parseWith(ctx, token, o.Algorithms, true, wall)
	if err != nil {
		return nil, err
	}
	if err := s.checkClaims(ctx, v.claims, o, now, wall); err != nil {
		return nil, err
	}
	if s.cache != nil {
		// The cache keeps the payload text when it decodes directly, and
		// decodes it again on a hit (fresh claims for every caller, nothing
		// to copy now); else a deep copy of the claims.
		kept := v
		if kept.payload != "" {
			kept.claims = nil
		} else {
			kept.claims = v.claims.clone()
		}
		s.cache.put(token, kept)
	}
	return v.claims, nil
}

// MaxTokenSize bounds the tokens keyward reads (its own are under 1 KiB).
const MaxTokenSize = 8 << 10

// clone is a deep copy of c, in one allocation: what a caller does with
// the claims it is given cannot reach the verified cache.
func (c *Claims) clone() *Claims {
	box := &struct {
		Claims
		dates [3]jwt.NumericDate
		aud   [1]string
	}{Claims: *c}
	cp := &box.Claims
	for i, d := range []**jwt.NumericDate{&cp.ExpiresAt, &cp.NotBefore, &cp.IssuedAt} {
		if *d != nil {
			box.dates[i] = **d
			*d = &box.dates[i]
		}
	}
	if len(c.Audience) == 1 {
		box.aud[0] = c.Audience[0]
		cp.Audience = box.aud[:]
	} else {
		cp.Audience = slices.Clone(c.Audience)
	}
	return cp
}

// verified is a token whose signature checked out: its claims, and the
// algorithm and key that signed it. payload is the claims' JSON text when
// the direct codec read them.
type verified struct {
	claims   *Claims
	alg, kid string
	payload  string
}

// checkKey checks again, for a token verified before, what may have
// changed since or may differ for this caller: that its algorithm is
// accepted and that its key is still usable (a join version not retired,
// a signing key pair still in the device).
func (s *Service) checkKey(ctx context.Context, v verified, algs []string, wall time.Time) error {
	if !slices.Contains(algs, v.alg) {
		return invalid(ErrAlgorithm, "signing method %s is not accepted here", v.alg)
	}
	role, n, _ := parseKid(v.kid)
	ok, err := s.keyUsable(ctx, role, n, wall)
	if err != nil {
		return err
	}
	if !ok {
		return invalid(ErrUnknownKey, "%s", unusable(v.kid, role))
	}
	return nil
}

// checkClaims checks what may change after the signature was verified:
// time, audience, kind, revocation.
func (s *Service) checkClaims(ctx context.Context, c *Claims, o VerifyOptions, now, wall time.Time) error {
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
	revoked, err := s.revoked.has(ctx, c.ID, wall)
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

// audienceMatches says the token's audience names want. Audiences of
// the form service@instance (JFrog's) may hold "*" for either part:
// "name@*" names every instance of name, "*@*" (JFrog's default) every
// service; otherwise names must be equal.
func audienceMatches(aud jwt.ClaimStrings, want string) bool {
	wantName, wantID, wantPair := strings.Cut(want, "@")
	for _, a := range aud {
		if a == want {
			return true
		}
		name, id, ok := strings.Cut(a, "@")
		if !ok || !wantPair || (name != "*" && id != "*") {
			continue
		}
		if (name == "*" || name == wantName) && (id == "*" || id == wantID) {
			return true
		}
	}
	return false
}
