package tokens

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// Kinds of token (claim "knd").
const (
	KindAccess    = "access"
	KindPairing   = "pairing"
	KindMaster    = "master"
	KindBootstrap = "bootstrap"
)

// Default lifetimes.
const (
	DefaultAccessTTL    = time.Hour
	DefaultRefreshTTL   = 30 * 24 * time.Hour
	DefaultPairingTTL   = 5 * time.Minute
	DefaultMasterTTL    = 365 * 24 * time.Hour
	DefaultBootstrapTTL = 15 * time.Minute
	DefaultLeeway       = 30 * time.Second
	DefaultMaxLifetime  = 365 * 24 * time.Hour
)

// Claims are keyward's JWT claims.
type Claims struct {
	jwt.RegisteredClaims
	Scope string `json:"scp,omitempty"`
	Kind  string `json:"knd"`
	Ext   string `json:"ext,omitempty"`
}

// Options tune a Service; zero values take the defaults.
type Options struct {
	Leeway            time.Duration // exp/nbf tolerance, default 30 s
	CacheSize         int           // verified tokens kept, default 10,000; -1 disables
	RevocationRefresh time.Duration // how often the revocation log is read, default 1 s
	MaxLifetime       time.Duration // longest token or refresh grant issued, default one year
	Now               func() time.Time
}

// Service issues and verifies tokens for one node.
type Service struct {
	node   *keystore.Vault
	store  *keystore.Store
	ring   *keyring.Ring
	issuer string
	opts   Options

	mu      sync.Mutex                 // guards signers
	hmac    cowMap[hmacName, *hsm.Key] // derived keys
	signers map[int]*hsm.Signer        // signing version → signer
	revoked *revocations
	cache   *verifiedCache
	headers cowMap[string, header]   // encoded segment → header, for the ones keyward writes
	joins   atomic.Pointer[joinView] // the registry's join versions, as last read
	signing atomic.Pointer[keyView]  // the device's signing key pairs, as last listed
}

// keyView is the signing key pair versions in the device when last listed.
type keyView struct {
	versions map[int]bool
	latest   int // the newest version, 0 for none
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

// New makes the token service of node.
func New(ctx context.Context, node *keystore.Vault, opts Options) (*Service, error) {
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10_000
	}
	if opts.MaxLifetime == 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.RevocationRefresh == 0 {
		opts.RevocationRefresh = time.Second
	}
	id, err := node.Store().InstanceID(ctx)
	if err != nil {
		return nil, err
	}
	s := &Service{node: node, store: node.Store(), ring: node.Ring(), issuer: "keyward@" + id, opts: opts,
		signers: map[int]*hsm.Signer{}}
	s.revoked = newRevocations(s.store, opts.RevocationRefresh, opts.Leeway, s.now)
	if opts.CacheSize > 0 {
		s.cache = newVerifiedCache(opts.CacheSize)
	}
	return s, nil
}

// now is the token clock: Options.Now, or the wall clock.
func (s *Service) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Issuer is the iss of this cluster's tokens: keyward@<instance id>.
func (s *Service) Issuer() string { return s.issuer }

// Request asks for a token.
type Request struct {
	Kind        string        // default access
	Subject     string        // required
	Scope       []string      // each scope one word
	Audience    []string      // default: this issuer
	ExpiresIn   time.Duration // default by kind
	Alg         string        // default HS256
	Description string
	Ext         string        // a JSON text, carried as the "ext" claim
	Refreshable bool          // access tokens only
	RefreshTTL  time.Duration // how long the grant can be refreshed; default 30 days
}

// Issued is a token as the CLI and the API hand it out.
type Issued struct {
	AccessToken  string    `json:"access_token"`
	TokenID      string    `json:"token_id"`
	TokenType    string    `json:"token_type"`
	ExpiresIn    int64     `json:"expires_in"`
	Scope        string    `json:"scope"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	ExpiresAt    time.Time `json:"-"`
}

var defaultTTL = map[string]time.Duration{
	KindAccess: DefaultAccessTTL, KindPairing: DefaultPairingTTL, KindMaster: DefaultMasterTTL, KindBootstrap: DefaultBootstrapTTL,
}

func (r *Request) normalize(issuer string, max time.Duration) error {
	if r.Kind == "" {
		r.Kind = KindAccess
	}
	if _, ok := defaultTTL[r.Kind]; !ok {
		return fmt.Errorf("%w: kind %q", ErrRequest, r.Kind)
	}
	if strings.TrimSpace(r.Subject) == "" {
		return fmt.Errorf("%w: a subject is required", ErrRequest)
	}
	if r.ExpiresIn == 0 {
		r.ExpiresIn = defaultTTL[r.Kind]
	}
	if err := checkLifetime("expires-in", r.ExpiresIn, max); err != nil {
		return err
	}
	if !utf8.ValidString(r.Subject) || !utf8.ValidString(r.Description) {
		return fmt.Errorf("%w: subject and description must be UTF-8", ErrRequest)
	}
	if r.Alg == "" {
		r.Alg = HS256
	}
	if !slices.Contains(Algorithms, r.Alg) {
		return fmt.Errorf("%w: %q (use one of %v)", ErrAlgorithm, r.Alg, Algorithms)
	}
	for _, sc := range r.Scope {
		if sc == "" || strings.ContainsAny(sc, " \t\n\"\\") {
			return fmt.Errorf("%w: scope %q must be one word", ErrRequest, sc)
		}
	}
	if len(r.Audience) == 0 {
		r.Audience = []string{issuer}
	}
	for _, a := range r.Audience {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			return fmt.Errorf("%w: audience %q must be one word", ErrRequest, a)
		}
	}
	if r.Ext != "" && !json.Valid([]byte(r.Ext)) {
		return fmt.Errorf("%w: ext must be JSON", ErrRequest)
	}
	if r.Refreshable && r.Kind != KindAccess {
		return fmt.Errorf("%w: only access tokens are refreshable", ErrRequest)
	}
	if r.RefreshTTL == 0 {
		r.RefreshTTL = DefaultRefreshTTL
	}
	if r.Refreshable {
		if err := checkLifetime("refresh-expires-in", r.RefreshTTL, max); err != nil {
			return err
		}
	}
	return nil
}

// checkLifetime refuses a lifetime under a second or over max.
func checkLifetime(name string, d, max time.Duration) error {
	if d < time.Second {
		return fmt.Errorf("%w: %s must be at least 1s", ErrRequest, name)
	}
	if d > max {
		return fmt.Errorf("%w: %s %v is over the longest token lifetime, %v (--max-token-lifetime)", ErrRequest, name, d, max)
	}
	return nil
}

// newID is a version 7 UUID (RFC 9562): 48 bits of Unix milliseconds, then
// 74 random bits. Time-ordered ids make recording a token an append to the
// database's indexes instead of a write to a random page; the random bits
// keep ids unique and unguessable enough for an identifier (a jti is not a
// secret: it is listed, logged and used to revoke).
func newID(now time.Time) string {
	var b [16]byte
	rand.Read(b[6:])
	ms := uint64(now.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// sign makes the JWT for claims with alg and the current key: the same
// bytes jwt.NewWithClaims(…).SignedString would make, without reflection.
func (s *Service) sign(ctx context.Context, c *Claims, alg string) (string, error) {
	kid, key, err := s.signingKey(ctx, alg)
	if err != nil {
		return "", err
	}
	var scratch [384]byte
	payload := appendClaims(scratch[:0], c)
	hdr := headerSegment(alg, kid)
	s.knowHeader(hdr, alg, kid)
	buf := make([]byte, 0, len(hdr)+1+b64url.EncodedLen(len(payload))+1+b64url.EncodedLen(512))
	buf = append(buf, hdr...)
	buf = append(buf, '.')
	buf = b64url.AppendEncode(buf, payload)
	var sig []byte
	if k, ok := key.(*hsm.Key); ok {
		sig, err = k.HMAC(ctx, hmacHash[alg], buf)
	} else {
		sig, err = methods[alg].Sign(string(buf), key)
	}
	if err != nil {
		return "", err
	}
	buf = append(buf, '.')
	buf = b64url.AppendEncode(buf, sig)
	return string(buf), nil
}

// claimsFor builds the claims of a normalized request.
func (s *Service) claimsFor(r Request, id, family string, now time.Time) (*Claims, keystore.TokenRecord) {
	now = now.Truncate(time.Second)
	exp := now.Add(r.ExpiresIn)
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer, Subject: r.Subject, Audience: r.Audience, ID: id,
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
		},
		Scope: strings.Join(r.Scope, " "), Kind: r.Kind, Ext: r.Ext,
	}
	rec := keystore.TokenRecord{ID: id, Kind: r.Kind, Subject: r.Subject, Scope: c.Scope, Audience: keystore.JoinAudience(r.Audience),
		Issued: now, Expires: exp, Family: family, Description: r.Description}
	return c, rec
}

// Create signs and records a token (and a refresh token when asked).
func (s *Service) Create(ctx context.Context, r Request) (Issued, error) {
	if err := r.normalize(s.issuer, s.opts.MaxLifetime); err != nil {
		return Issued{}, err
	}
	now := s.now()
	id := newID(now)
	c, rec := s.claimsFor(r, id, id, now)
	token, err := s.sign(ctx, c, r.Alg)
	if err != nil {
		return Issued{}, err
	}
	out := Issued{AccessToken: token, TokenID: id, TokenType: "Bearer", ExpiresIn: int64(r.ExpiresIn / time.Second), Scope: c.Scope, ExpiresAt: rec.Expires}
	var refresh *keystore.RefreshRecord
	if r.Refreshable {
		value, hash := newRefreshToken()
		out.RefreshToken = value
		refresh = &keystore.RefreshRecord{Hash: hash, Family: id, AccessID: id, Subject: r.Subject, Scope: c.Scope,
			Audience: rec.Audience, Alg: r.Alg, AccessTTL: r.ExpiresIn, Issued: now, Expires: now.Add(r.RefreshTTL)}
	}
	if err := s.store.RecordIssue(ctx, rec, refresh); err != nil {
		return Issued{}, err
	}
	return out, nil
}

// newRefreshToken is 256 random bits, base64url, and its SHA-256 hash:
// only the hash is stored.
func newRefreshToken() (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	v := "kwr_" + base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(v))
	return v, h[:]
}

func hashRefresh(v string) []byte {
	h := sha256.Sum256([]byte(strings.TrimSpace(v)))
	return h[:]
}

// Refresh exchanges a refresh token for a brand-new access token and a new
// refresh token; the old access token and the used refresh token stop
// working at once. scope, when given, must be a subset of the grant's. A
// refresh token used twice revokes its whole family.
func (s *Service) Refresh(ctx context.Context, refreshToken string, scope []string) (Issued, error) {
	now := s.now()
	var out Issued
	var revokedAccess string
	err := s.store.UseRefresh(ctx, hashRefresh(refreshToken), now, func(old keystore.RefreshRecord) (keystore.TokenRecord, keystore.RefreshRecord, error) {
		granted := strings.Fields(old.Scope)
		if scope == nil {
			scope = granted
		}
		for _, sc := range scope {
			if !slices.Contains(granted, sc) {
				return keystore.TokenRecord{}, keystore.RefreshRecord{}, fmt.Errorf("%w: %q was not granted (granted: %q)", ErrScopeWidened, sc, old.Scope)
			}
		}
		r := Request{Kind: KindAccess, Subject: old.Subject, Scope: scope, Audience: strings.Fields(old.Audience), ExpiresIn: old.AccessTTL, Alg: old.Alg}
		if err := r.normalize(s.issuer, s.opts.MaxLifetime); err != nil {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, err
		}
		id := newID(now)
		c, rec := s.claimsFor(r, id, old.Family, now)
		token, err := s.sign(ctx, c, r.Alg)
		if err != nil {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, err
		}
		value, hash := newRefreshToken()
		out = Issued{AccessToken: token, TokenID: id, TokenType: "Bearer", ExpiresIn: int64(r.ExpiresIn / time.Second), Scope: c.Scope, RefreshToken: value, ExpiresAt: rec.Expires}
		revokedAccess = old.AccessID
		// The new refresh token ends when the grant's first one would
		// have: refreshing never extends a grant.
		return rec, keystore.RefreshRecord{Hash: hash, Family: old.Family, AccessID: id, Subject: old.Subject, Scope: c.Scope,
			Audience: old.Audience, Alg: old.Alg, AccessTTL: old.AccessTTL, Issued: now, Expires: old.Expires}, nil
	})
	if err != nil {
		if errors.Is(err, keystore.ErrTokenUsed) {
			// The reuse revoked the grant's whole family.
			s.revoked.sync(ctx)
		}
		return Issued{}, mapStoreErr(err)
	}
	s.revoked.add(revokedAccess, now.Add(DefaultMasterTTL))
	return out, nil
}

func mapStoreErr(err error) error {
	switch {
	case errors.Is(err, keystore.ErrTokenUsed):
		return fmt.Errorf("%w: %w", ErrRevoked, err)
	case errors.Is(err, keystore.ErrTokenRevoked):
		return fmt.Errorf("%w: %w", ErrRevoked, err)
	case errors.Is(err, keystore.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrExpired, err)
	case errors.Is(err, keystore.ErrTokenUnknown):
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return err
}

// Revoke revokes token id on every node (through the revocation log).
func (s *Service) Revoke(ctx context.Context, id string) error {
	if err := s.store.RevokeToken(ctx, id, s.now()); err != nil {
		return mapStoreErr(err)
	}
	t, err := s.store.Token(ctx, id)
	if err != nil {
		// Without its expiry the id would be pruned at once: read the log.
		s.revoked.sync(ctx)
		return nil
	}
	s.revoked.add(id, t.Expires)
	return nil
}

// RevokeToken revokes the token itself: its signature must be ours (an
// expired or already revoked token may still be named).
func (s *Service) RevokeToken(ctx context.Context, token string) error {
	c, err := s.parse(ctx, strings.TrimSpace(token), false)
	if err != nil {
		return err
	}
	return s.Revoke(ctx, c.ID)
}

// RevokeRefreshToken revokes the grant of a refresh token (RFC 7009 with
// token_type_hint=refresh_token): every token of its family.
func (s *Service) RevokeRefreshToken(ctx context.Context, refreshToken string) error {
	if err := s.store.RevokeRefresh(ctx, hashRefresh(refreshToken), s.now()); err != nil {
		return mapStoreErr(err)
	}
	return s.revoked.sync(ctx)
}

// IsRefreshToken says v has the form of a keyward refresh token (kwr_…),
// not of a JWT.
func IsRefreshToken(v string) bool { return strings.HasPrefix(strings.TrimSpace(v), "kwr_") }

// List lists recorded tokens (never the tokens themselves).
func (s *Service) List(ctx context.Context, subject string, all bool) ([]keystore.TokenRecord, error) {
	return s.store.Tokens(ctx, subject, all, s.now())
}

// PairingRequest asks for a pairing token.
type PairingRequest struct {
	Subject     string
	BaseURL     string // required
	ExchangeURL string // required
	PairingURL  string // optional
	ExpiresIn   time.Duration
	Description string
	Alg         string
}

// checkURL accepts an absolute http or https URL.
func checkURL(name, v string, required bool) error {
	if v == "" {
		if required {
			return fmt.Errorf("%w: --%s is required", ErrRequest, name)
		}
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --%s is not an absolute http or https URL", ErrRequest, name)
	}
	// The URLs travel in the token, readable by whoever holds it.
	if u.User != nil {
		return fmt.Errorf("%w: --%s %s carries credentials; leave them out of the URL", ErrRequest, name, u.Redacted())
	}
	return nil
}

// CreatePairing issues a single-use pairing token (5 minutes by default)
// carrying the URLs in its ext claim.
func (s *Service) CreatePairing(ctx context.Context, p PairingRequest) (Issued, error) {
	for _, u := range []struct {
		name, v  string
		required bool
	}{{"base-url", p.BaseURL, true}, {"exchange-url", p.ExchangeURL, true}, {"pairing-url", p.PairingURL, false}} {
		if err := checkURL(u.name, u.v, u.required); err != nil {
			return Issued{}, err
		}
	}
	ext := map[string]string{"base_url": p.BaseURL, "exchange_url": p.ExchangeURL}
	if p.PairingURL != "" {
		ext["pairing_url"] = p.PairingURL
	}
	extJSON, _ := json.Marshal(ext)
	if p.Subject == "" {
		p.Subject = "pairing"
	}
	if p.ExpiresIn == 0 {
		p.ExpiresIn = DefaultPairingTTL
	}
	return s.Create(ctx, Request{Kind: KindPairing, Subject: p.Subject, ExpiresIn: p.ExpiresIn, Description: p.Description, Ext: string(extJSON), Alg: p.Alg})
}

// RedeemPairing verifies a pairing token, consumes it atomically (once,
// across goroutines, processes and nodes) and returns a long-lived master
// token.
func (s *Service) RedeemPairing(ctx context.Context, pairingToken string, expiresIn time.Duration) (Issued, error) {
	c, err := s.Verify(ctx, pairingToken, VerifyOptions{Kinds: []string{KindPairing}, AnyAudience: true})
	if errors.Is(err, ErrRevoked) {
		// Redeeming revokes it: say "used before" when that is why.
		if pc, perr := s.parse(ctx, strings.TrimSpace(pairingToken), false); perr == nil {
			if t, terr := s.store.Token(ctx, pc.ID); terr == nil && t.Consumed != nil {
				return Issued{}, fmt.Errorf("%w: %w: pairing token %s was redeemed at %s", ErrRevoked, keystore.ErrTokenUsed, pc.ID, t.Consumed.Format(time.RFC3339))
			}
		}
	}
	if err != nil {
		return Issued{}, err
	}
	if expiresIn == 0 {
		expiresIn = DefaultMasterTTL
	}
	// Refused before the pairing token is consumed, not after.
	if err := checkLifetime("expires-in", expiresIn, s.opts.MaxLifetime); err != nil {
		return Issued{}, err
	}
	now := s.now()
	var out Issued
	err = s.store.ConsumePairing(ctx, c.ID, now, func(p keystore.TokenRecord) (keystore.TokenRecord, error) {
		r := Request{Kind: KindMaster, Subject: p.Subject, ExpiresIn: expiresIn, Ext: c.Ext, Description: "from pairing token " + p.ID}
		if err := r.normalize(s.issuer, s.opts.MaxLifetime); err != nil {
			return keystore.TokenRecord{}, err
		}
		id := newID(now)
		mc, rec := s.claimsFor(r, id, id, now)
		token, err := s.sign(ctx, mc, HS256)
		if err != nil {
			return keystore.TokenRecord{}, err
		}
		out = Issued{AccessToken: token, TokenID: id, TokenType: "Bearer", ExpiresIn: int64(expiresIn / time.Second), ExpiresAt: rec.Expires}
		return rec, nil
	})
	if err != nil {
		return Issued{}, mapStoreErr(err)
	}
	s.revoked.add(c.ID, c.ExpiresAt.Time)
	return out, nil
}

// keyLabel is the kid of a key version: "join/v3", "signing/v1".
func kidFor(role keyring.Role, v int) string { return string(role) + "/v" + strconv.Itoa(v) }

// parseKid reads "join/vN" or "signing/vN".
func parseKid(kid string) (keyring.Role, int, bool) {
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
// active join version's derived HMAC key, or the newest signing key pair.
func (s *Service) signingKey(ctx context.Context, alg string) (string, any, error) {
	if isHMAC(alg) {
		v, err := s.activeJoin(ctx)
		if err != nil {
			return "", nil, err
		}
		k, err := s.hmacKey(ctx, v, alg)
		return kidFor(keyring.Join, v), k, err
	}
	want, err := keyTypeFor(alg)
	if err != nil {
		return "", nil, err
	}
	view, err := s.signingVersions(ctx, time.Now())
	if err != nil {
		return "", nil, err
	}
	if view.latest == 0 {
		return "", nil, fmt.Errorf("%w: %s needs a signing key: keyward key generate --role signing --type ec-p256|rsa-3072|ed25519", keyring.ErrNoKey, alg)
	}
	signer, err := s.signer(ctx, view.latest)
	if err != nil {
		return "", nil, err
	}
	if signer.Key().Type != want {
		return "", nil, fmt.Errorf("%w: %s needs a %s key, signing/v%d is %s", ErrAlgorithm, alg, want, view.latest, signer.Key().Type)
	}
	return kidFor(keyring.Signing, view.latest), signer, nil
}

// joinVersions returns the registry's join versions, read again at most
// every RevocationRefresh (a rotation or retirement on another node is seen
// as fast as a revocation).
func (s *Service) joinVersions(ctx context.Context, wall time.Time) (*joinView, error) {
	if v := s.joins.Load(); v != nil && wall.Sub(v.read) < s.opts.RevocationRefresh {
		return v, nil
	}
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
	if err != nil {
		return 0, err
	}
	if v.active == 0 {
		return 0, fmt.Errorf("%w: no active join key; keyward key generate --role join (or key import)", keystore.ErrKeyState)
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
	if view := s.signing.Load(); view != nil && wall.Sub(view.read) < s.opts.RevocationRefresh {
		return view, nil
	}
	entries, err := s.ring.List(ctx)
	if err != nil {
		return nil, err
	}
	view := &keyView{versions: map[int]bool{}, read: wall}
	for _, e := range entries {
		if e.Role == keyring.Signing {
			view.versions[e.Version] = true
			view.latest = max(view.latest, e.Version)
		}
	}
	s.signing.Store(view)
	s.mu.Lock()
	for n := range s.signers {
		if !view.versions[n] {
			delete(s.signers, n)
		}
	}
	s.mu.Unlock()
	return view, nil
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
