package tokens

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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
)

// Defaults of Options: what a zero field means.
const (
	DefaultLeeway      = 30 * time.Second
	DefaultCacheSize   = 10_000
	DefaultMaxLifetime = 365 * 24 * time.Hour
	// DefaultRevocationRefresh bounds how late a revocation, rotation or
	// retirement on another node is seen here; reading the log costs one
	// small query, so four a second are cheap.
	DefaultRevocationRefresh = 250 * time.Millisecond
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
	Leeway            time.Duration // exp/nbf tolerance, default DefaultLeeway (30 s)
	CacheSize         int           // verified tokens kept, default DefaultCacheSize (10,000); -1 disables
	RevocationRefresh time.Duration // how often the revocation log is read, default DefaultRevocationRefresh (250 ms)
	MaxLifetime       time.Duration // longest token or refresh grant issued, default DefaultMaxLifetime (one year)
	Now               func() time.Time
}

// Service issues and verifies tokens for one node.
type Service struct {
	node   *keystore.Vault
	store  *keystore.Store
	ring   *keyring.Ring
	issuer string
	opts   Options

	mu        sync.Mutex                 // guards signers
	hmac      cowMap[hmacName, *hsm.Key] // derived keys
	signers   map[int]*hsm.Signer        // signing version → signer
	revoked   *revocations
	cache     *verifiedCache
	validator *jwt.Validator             // golang-jwt's claim checks: exp (required), nbf, iss
	headers   cowMap[string, header]     // encoded segment → header, for the ones keyward writes
	joins     atomic.Pointer[joinView]   // the registry's join versions, as last read
	signIss   atomic.Pointer[string]     // the issuer signed with (UseIssuer); nil: s.issuer
	issuers   atomic.Pointer[issuerView] // the cluster's registered issuers, as last read
	signing   atomic.Pointer[keyView]    // the device's signing key pairs, as last listed
	bounds    signedBounds               // signing version → the cluster's signed-until bound
	listing   singleListing              // the one listing of them under way

	// For tests and benchmarks (export_test.go), set before first use:
	// stockOnly sends every token to golang-jwt's path, and parsed hears
	// which parser verified each token.
	stockOnly bool
	parsed    func(direct bool)
}

// New makes the token service of node.
func New(ctx context.Context, node *keystore.Vault, opts Options) (*Service, error) {
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MaxLifetime == 0 {
		opts.MaxLifetime = DefaultMaxLifetime
	}
	if opts.RevocationRefresh == 0 {
		opts.RevocationRefresh = DefaultRevocationRefresh
	}
	id, err := node.Store().InstanceID(ctx)
	if err != nil {
		return nil, err
	}
	s := &Service{node: node, store: node.Store(), ring: node.Ring(), issuer: "keyward@" + id, opts: opts,
		signers: map[int]*hsm.Signer{}}
	// The issuer is checked by knownIssuer (issuers.go), after the
	// Validator: a cluster has more than one.
	s.validator = jwt.NewValidator(jwt.WithLeeway(opts.Leeway), jwt.WithTimeFunc(s.now), jwt.WithExpirationRequired())
	s.revoked = newRevocations(s.store, opts.RevocationRefresh, opts.Leeway, s.now)
	s.revoked.also = func(ctx context.Context) { s.readJoins(ctx, time.Now()) }
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

// MaxLifetime is the longest lifetime of a token or refresh grant this
// service issues (Options.MaxLifetime).
func (s *Service) MaxLifetime() time.Duration { return s.opts.MaxLifetime }

// Close stops the service's background reader of the revocation log;
// call it before closing the store. Verifying after Close reads the log
// on the verification path.
func (s *Service) Close() { s.revoked.close() }
