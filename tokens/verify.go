package tokens

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
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
	if len(token) > MaxTokenSize {
		return nil, invalid(ErrMalformed, "%d bytes, more than the %d a token may have", len(token), MaxTokenSize)
	}
	for _, a := range o.Algorithms {
		if !slices.Contains(Algorithms, a) {
			return nil, fmt.Errorf("%w: %q (use one of %v)", ErrAlgorithm, a, Algorithms)
		}
	}
	if o.Audience == "" {
		o.Audience = s.issuer
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

// keyUsable says the key a kid names may verify now.
func (s *Service) keyUsable(ctx context.Context, role keyring.Role, v int, wall time.Time) (bool, error) {
	if role == keyring.Join {
		return s.joinUsable(ctx, v, wall)
	}
	return s.signingUsable(ctx, v, wall)
}

func unusable(kid string, role keyring.Role) string {
	if role == keyring.Join {
		return fmt.Sprintf("%q is not a registered, unretired join key", kid)
	}
	return fmt.Sprintf("%q is not a signing key pair in this device", kid)
}

// isReason says err is about the token (it names an unknown key or one of
// the wrong kind), not about the database or the device.
func isReason(err error) bool { return errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrAlgorithm) }

// infraError carries a database or device failure through golang-jwt's
// key function, so that it is not reported as a bad token.
type infraError struct{ err error }

func (e infraError) Error() string { return e.err.Error() }
func (e infraError) Unwrap() error { return e.err }

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

// audienceMatches: an audience "name@*" in the token matches any instance
// "name@…"; otherwise names must be equal.
func audienceMatches(aud jwt.ClaimStrings, want string) bool {
	for _, a := range aud {
		if a == want {
			return true
		}
		if prefix, ok := strings.CutSuffix(a, "*"); ok && strings.HasSuffix(prefix, "@") && strings.HasPrefix(want, prefix) {
			return true
		}
	}
	return false
}

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

// verificationKey resolves kid to a known key version of the kind alg
// needs; anything else fails.
func (s *Service) verificationKey(ctx context.Context, alg, kid string, wall time.Time) (any, error) {
	role, v, ok := parseKid(kid)
	if !ok {
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	return s.keyFor(ctx, alg, kid, role, v, wall)
}

// keyFor is verificationKey with the kid read already. Its errors wrap
// ErrUnknownKey or ErrAlgorithm when the token names a key that cannot
// verify it; any other error is the database's or the device's.
func (s *Service) keyFor(ctx context.Context, alg, kid string, role keyring.Role, v int, wall time.Time) (any, error) {
	if isHMAC(alg) != (role == keyring.Join) {
		return nil, fmt.Errorf("%w: %s with kid %q", ErrAlgorithm, alg, kid)
	}
	usable, err := s.keyUsable(ctx, role, v, wall)
	if err != nil {
		return nil, err
	}
	if !usable {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, unusable(kid, role))
	}
	if role == keyring.Join {
		return s.hmacKey(ctx, v, alg)
	}
	sg, err := s.signer(ctx, v)
	if err != nil {
		return nil, err
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
// interval (this process's own at once). Lookups take no lock: verifiers
// on every core read it at once.
type revocations struct {
	store    *keystore.Store
	interval time.Duration
	keep     time.Duration // how long past its expiry an id is kept
	now      func() time.Time

	ids     sync.Map     // id → expiry (time.Time), pruned after it
	checked atomic.Int64 // wall clock of the last read, Unix ns

	mu  sync.Mutex // one reader of the log at a time
	seq int64      // the last log entry read
}

func newRevocations(store *keystore.Store, interval, leeway time.Duration, now func() time.Time) *revocations {
	// An id is kept while its token could still pass the expiry check
	// (exp + leeway), and an hour more for clocks that disagree.
	return &revocations{store: store, interval: interval, keep: leeway + time.Hour, now: now}
}

func (r *revocations) has(ctx context.Context, id string, wall time.Time) (bool, error) {
	if _, revoked := r.ids.Load(id); revoked {
		return true, nil
	}
	if wall.UnixNano()-r.checked.Load() < int64(r.interval) {
		return false, nil
	}
	if err := r.refresh(ctx); err != nil {
		return false, err
	}
	_, revoked := r.ids.Load(id)
	return revoked, nil
}

func (r *revocations) refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Now().UnixNano()-r.checked.Load() < int64(r.interval) {
		return nil // another caller just read it
	}
	log, err := r.store.RevocationsSince(ctx, r.seq)
	if err != nil {
		return err
	}
	for _, e := range log {
		r.ids.Store(e.TokenID, e.Expires)
		r.seq = e.Seq
	}
	now := r.now()
	r.ids.Range(func(id, exp any) bool {
		if now.After(exp.(time.Time).Add(r.keep)) {
			r.ids.Delete(id)
		}
		return true
	})
	r.checked.Store(time.Now().UnixNano())
	return nil
}

func (r *revocations) add(id string, exp time.Time) { r.ids.Store(id, exp) }

// sync reads the log now: after this node revoked tokens it cannot name
// (a whole family), so that it never accepts them again, not even for
// the interval.
func (r *revocations) sync(ctx context.Context) error {
	r.checked.Store(0)
	return r.refresh(ctx)
}

// verifiedCache keeps tokens whose signature verified, by the token's
// exact text, so the same token verifies again without the device. The
// key, time, audience, kind and revocation are checked on every hit.
//
// A token is hashed once (maphash, a per-process seed) to pick one of
// several shards, each a ring of slots with its own lock: verifiers on
// several cores rarely meet, and when a shard is full its oldest token
// makes room in O(1). A hit compares the whole token, so a hash collision
// can only cost a miss.
type verifiedCache struct {
	seed   maphash.Seed
	shards []cacheShard
}

type cacheShard struct {
	mu    sync.Mutex
	index map[uint64]int // token hash → slot
	slots []cacheSlot
	next  int // the slot to fill next

	hits, misses uint64 // under mu: for CacheStats
}

type cacheSlot struct {
	hash  uint64
	token string
	v     verified
}

func newVerifiedCache(max int) *verifiedCache {
	n := min(16, max)
	c := &verifiedCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n)}
	for i := range c.shards {
		size := max / n
		if i < max%n {
			size++
		}
		c.shards[i] = cacheShard{index: make(map[uint64]int, size), slots: make([]cacheSlot, size)}
	}
	return c
}

// key hashes token; shard is where it lives.
func (c *verifiedCache) key(token string) (uint64, *cacheShard) {
	h := maphash.String(c.seed, token)
	return h, &c.shards[h%uint64(len(c.shards))]
}

func (c *verifiedCache) get(token string) (verified, bool) {
	if c == nil {
		return verified{}, false
	}
	h, sh := c.key(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.index[h]; ok && sh.slots[i].token == token {
		sh.hits++
		return sh.slots[i].v, true
	}
	sh.misses++
	return verified{}, false
}

// stats adds up the shards' hits and misses.
func (c *verifiedCache) stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		hits, misses = hits+sh.hits, misses+sh.misses
		sh.mu.Unlock()
	}
	return hits, misses
}

func (c *verifiedCache) put(token string, v verified) {
	if c == nil {
		return
	}
	h, sh := c.key(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.index[h]; ok {
		return // there already (or a collision: keep the older)
	}
	slot := &sh.slots[sh.next]
	if slot.token != "" {
		delete(sh.index, slot.hash)
	}
	*slot = cacheSlot{hash: h, token: token, v: v}
	sh.index[h] = sh.next
	sh.next = (sh.next + 1) % len(sh.slots)
}

// len is the number of tokens kept.
func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.index)
		sh.mu.Unlock()
	}
	return n
}
