package tokens

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// keyView is the signing key pair versions in the device when last listed.
type keyView struct {
	versions map[int]bool
	newest   map[hsm.KeyType]int // the newest unretired version of each type: it signs
	retired  map[int]bool        // retired in the cluster: signs no more
	read     time.Time
}

// joinView is what the key registry said of the join key's versions when
// it was last read: which one signs, and which may still verify (every
// registered version not retired).
type joinView struct {
	active int
	usable map[int]bool
	read   time.Time
}

// kidFor is the kid of a key version: "join/v3", "signing/v1".
func kidFor(role keyring.Role, v int) string { return string(role) + "/v" + strconv.Itoa(v) }

// psSuffix ends the kid of a PS256 token: an RSA key pair is published
// twice in the JWKS, as signing/vN for RS256 and signing/vN/PS256 for
// PS256, so that each JWK has the one alg a verifier checks.
const psSuffix = "/" + PS256

// signingKid is the kid a token of alg signed by key pair v carries.
func signingKid(alg string, v int) string {
	if alg == PS256 {
		return kidFor(keyring.Signing, v) + psSuffix
	}
	return kidFor(keyring.Signing, v)
}

// parseKid reads "join/vN", "signing/vN" or "signing/vN/PS256".
func parseKid(kid string) (keyring.Role, int, bool) {
	if k, ok := strings.CutSuffix(kid, psSuffix); ok && strings.HasPrefix(kid, string(keyring.Signing)+"/") {
		kid = k
	}
	role, ver, ok := strings.Cut(kid, "/v")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.Atoi(ver)
	if err != nil || n < 1 || strconv.Itoa(n) != ver {
		return "", 0, false
	}
	switch keyring.Role(role) {
	case keyring.Join, keyring.Signing:
		return keyring.Role(role), n, true
	}
	return "", 0, false
}

// signingKey returns the kid and device key to sign alg with now: the
// active join version's derived HMAC key, or the newest signing key pair
// of the type alg needs (key pairs of several types sign side by side).
// A type the last listing lacks is looked for again in the device at
// once: a key pair generated a moment ago signs the next request.
//
// v is the key pair's version (0 for a join key).
func (s *Service) signingKey(ctx context.Context, alg string) (kid string, v int, key any, err error) {
	if isHMAC(alg) {
		v, err := s.activeJoin(ctx)
		if err != nil {
			return "", 0, nil, err
		}
		k, err := s.hmacKey(ctx, v, alg)
		return kidFor(keyring.Join, v), 0, k, err
	}
	want, err := keyTypeFor(alg)
	if err != nil {
		return "", 0, nil, err
	}
	view, err := s.signingVersions(ctx, time.Now())
	if err != nil {
		return "", 0, nil, err
	}
	if view.newest[want] == 0 {
		if view, err = s.listNow(ctx); err != nil {
			return "", 0, nil, err
		}
	}
	v = view.newest[want]
	if v == 0 {
		return "", 0, nil, fmt.Errorf("%w: %s tokens need an unretired signing key pair (%s) in the device, and it holds none", keyring.ErrNoKey, alg, want)
	}
	signer, err := s.signer(ctx, v)
	if err != nil {
		return "", 0, nil, err
	}
	return signingKid(alg, v), v, signer, nil
}

// listNow lists the signing key pairs in the device now (or waits for the
// listing under way), and returns the view.
func (s *Service) listNow(ctx context.Context) (*keyView, error) {
	done := s.listing.start(func() error { return s.listSigning(time.Now()) })
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := s.listing.lastErr(); err != nil {
		return nil, err
	}
	return s.signing.Load(), nil
}

// joinVersions returns the registry's join versions, read again at most
// every RevocationRefresh (a rotation or retirement on another node is seen
// as fast as a revocation).
// While the revocation log's background reader runs, it reads them too
// (readJoins), and a view two intervals old still serves: verifications
// do not wait on the database for it.
func (s *Service) joinVersions(ctx context.Context, wall time.Time) (*joinView, error) {
	if v := s.joins.Load(); v != nil {
		age := wall.Sub(v.read)
		if age < s.opts.RevocationRefresh || (age < 2*s.opts.RevocationRefresh && s.revoked.running.Load()) {
			return v, nil
		}
	}
	return s.readJoins(ctx, wall)
}

// readJoins reads the registry's join versions.
func (s *Service) readJoins(ctx context.Context, wall time.Time) (*joinView, error) {
	keys, err := s.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	v := &joinView{usable: map[int]bool{}, read: wall}
	for _, k := range keys {
		if k.Role != string(keyring.Join) {
			continue
		}
		if k.State == keystore.StateActive {
			v.active = k.Version
		}
		v.usable[k.Version] = k.State != keystore.StateRetired
	}
	s.joins.Store(v)
	return v, nil
}

// activeJoin is the join version that signs.
func (s *Service) activeJoin(ctx context.Context) (int, error) {
	v, err := s.joinVersions(ctx, time.Now())
	if err == nil && v.active == 0 {
		// None in the last reading: look again at once, as for a signing
		// key pair (a join key imported a moment ago signs the next token).
		v, err = s.readJoins(ctx, time.Now())
	}
	if err != nil {
		return 0, err
	}
	if v.active == 0 {
		return 0, fmt.Errorf("%w: no active join key in the key registry, so no HMAC token can be signed", keystore.ErrNoActiveKey)
	}
	return v.active, nil
}

// hmacName names a derived HMAC key: join version and algorithm.
type hmacName struct {
	version int
	alg     string
}

// hmacKey derives (once per process) the HMAC key of join version v for
// alg; every verification looks one up.
func (s *Service) hmacKey(ctx context.Context, v int, alg string) (*hsm.Key, error) {
	return s.hmac.loadOrMake(hmacName{v, alg}, func() (*hsm.Key, error) {
		base, _, err := s.ring.Get(ctx, keyring.Join, v)
		if err != nil {
			return nil, err
		}
		return s.ring.Token().DeriveHMACKey(ctx, base, hmacDerivationData(alg), "jwt "+kidFor(keyring.Join, v)+" "+alg)
	})
}

func (s *Service) signer(ctx context.Context, v int) (*hsm.Signer, error) {
	s.mu.Lock()
	sg, ok := s.signers[v]
	s.mu.Unlock()
	if ok {
		return sg, nil
	}
	k, _, err := s.ring.Get(ctx, keyring.Signing, v)
	if err != nil {
		return nil, err
	}
	sg, err = k.Signer(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.signers[v] = sg
	s.mu.Unlock()
	return sg, nil
}

// signingVersions returns the signing key pairs in the device, listed
// again at most every RevocationRefresh (a key pair generated or destroyed
// on this device is seen as fast as a revocation), so neither signing nor
// verifying searches the device per token. Signers of key pairs gone are
// dropped.
func (s *Service) signingVersions(ctx context.Context, wall time.Time) (*keyView, error) {
	view := s.signing.Load()
	if view != nil && wall.Sub(view.read) < s.opts.RevocationRefresh {
		return view, nil
	}
	done := s.listing.start(func() error { return s.listSigning(wall) })
	if view == nil {
		// The first listing: nothing to fall back on.
		select {
		case <-done:
			if v := s.signing.Load(); v != nil {
				return v, nil
			}
			return nil, s.listing.lastErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Verification never waits long on the device: a device that is gone
	// or hangs leaves the last listing in use (key pairs change rarely,
	// and the device is asked again next time).
	select {
	case <-done:
	case <-time.After(staleListing):
	case <-ctx.Done():
	}
	return s.signing.Load(), nil
}

// Warm lists the signing key pairs and reads their public halves now, so
// that JWKS and verification by key pair need no device call later, and
// loads the live revocations (a server does it at start, before it
// serves).
func (s *Service) Warm(ctx context.Context) error {
	now := time.Now()
	if _, err := s.signingVersions(ctx, now); err != nil {
		return err
	}
	// The live revocations too: the first request after start must not
	// pay for reading them (at 1M tokens, 100k revocations, about 100 ms).
	// (Not the join versions: a key the server's bootstrap imports next
	// must be seen at once, and reading them is one small query.)
	return s.revoked.fresh(ctx, now)
}

// staleListing is how long a verification waits for a new listing of the
// signing key pairs before it takes the last one.
const staleListing = 50 * time.Millisecond

// listSigning lists the signing key pairs in the device and keeps the
// view; signers of key pairs gone are dropped. A failed listing keeps the
// old view.
func (s *Service) listSigning(wall time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	entries, err := s.ring.List(ctx)
	if err != nil {
		return err
	}
	states, err := s.store.SigningStates(ctx)
	if err != nil {
		return err
	}
	view := &keyView{versions: map[int]bool{}, newest: map[hsm.KeyType]int{}, retired: map[int]bool{}, read: wall}
	for _, e := range entries {
		if e.Role == keyring.Signing {
			view.versions[e.Version] = true
		}
	}
	for v, st := range states {
		view.retired[v] = !st.Retired.IsZero()
		s.bounds.raise(v, st.SignedUntil.Unix())
	}
	s.mu.Lock()
	for n := range s.signers {
		if !view.versions[n] {
			delete(s.signers, n)
		}
	}
	s.mu.Unlock()
	// Each key pair's public half is read now, while the device answers:
	// JWKS and ES256 verification then need no device call.
	for v := range view.versions {
		sg, err := s.signer(ctx, v)
		if err != nil {
			return err
		}
		if t := sg.Key().Type; !view.retired[v] {
			view.newest[t] = max(view.newest[t], v)
		}
	}
	s.signing.Store(view)
	return nil
}

// singleListing runs one listing at a time; callers that come while it
// runs wait for the same one.
type singleListing struct {
	mu   sync.Mutex
	done chan struct{} // closed when the listing under way ends; nil: none
	err  error         // the last listing's error
}

// start starts list unless a listing is under way, and returns a channel
// closed when it ends (lastErr then says how).
func (l *singleListing) start(list func() error) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil {
		return l.done
	}
	done := make(chan struct{})
	l.done = done
	go func() {
		err := list()
		l.mu.Lock()
		l.done, l.err = nil, err
		l.mu.Unlock()
		close(done)
	}()
	return done
}

// lastErr is the error of the last listing that ended.
func (l *singleListing) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// signingUsable says signing key pair version v is in the device (an
// unknown version costs no device lookup).
func (s *Service) signingUsable(ctx context.Context, v int, wall time.Time) (bool, error) {
	view, err := s.signingVersions(ctx, wall)
	if err != nil {
		return false, err
	}
	return view.versions[v], nil
}

// joinUsable says join version v may verify: registered and not retired.
func (s *Service) joinUsable(ctx context.Context, v int, wall time.Time) (bool, error) {
	view, err := s.joinVersions(ctx, wall)
	if err != nil {
		return false, err
	}
	return view.usable[v], nil
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
	if isHMAC(alg) != (role == keyring.Join) || strings.HasSuffix(kid, psSuffix) && alg != PS256 {
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
