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
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/keystore"
)

// Request asks for a token. Subject, Description, and each Scope and
// Audience word are printable UTF-8: a control or format character is
// refused (a *FieldError), whoever the caller.
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
		return fieldErr("kind", "%q is not a kind of token (%s, %s, %s or %s)", r.Kind, KindAccess, KindPairing, KindMaster, KindBootstrap)
	}
	if strings.TrimSpace(r.Subject) == "" {
		return fieldErr("subject", "is required")
	}
	if r.ExpiresIn == 0 {
		r.ExpiresIn = defaultTTL[r.Kind]
	}
	if err := checkLifetime("expires_in", r.ExpiresIn, max); err != nil {
		return err
	}
	if err := checkText("subject", r.Subject); err != nil {
		return err
	}
	if err := checkText("description", r.Description); err != nil {
		return err
	}
	if r.Alg == "" {
		r.Alg = HS256
	}
	if !slices.Contains(Algorithms, r.Alg) {
		return fieldErr("alg", "%w: %q (use one of %v)", ErrAlgorithm, r.Alg, Algorithms)
	}
	for _, sc := range r.Scope {
		if err := checkText("scope", sc); err != nil {
			return err
		}
		if sc == "" || strings.ContainsFunc(sc, notInWord) {
			return fieldErr("scope", "%q must be one word", sc)
		}
	}
	if len(r.Audience) == 0 {
		r.Audience = []string{issuer}
	}
	for _, a := range r.Audience {
		if err := checkText("audience", a); err != nil {
			return err
		}
		if a == "" || strings.ContainsFunc(a, unicode.IsSpace) {
			return fieldErr("audience", "%q must be one word", a)
		}
	}
	if r.Ext != "" && !json.Valid([]byte(r.Ext)) {
		return fieldErr("ext", "must be JSON")
	}
	if r.Refreshable && r.Kind != KindAccess {
		return fieldErr("refreshable", "only access tokens are refreshable, not %s tokens", r.Kind)
	}
	if r.RefreshTTL == 0 {
		r.RefreshTTL = DefaultRefreshTTL
	}
	if r.Refreshable {
		if err := checkLifetime("refresh_expires_in", r.RefreshTTL, max); err != nil {
			return err
		}
	}
	return nil
}

// checkLifetime refuses a lifetime under a second or over max, as a
// *FieldError of field.
func checkLifetime(field string, d, max time.Duration) error {
	if d < time.Second {
		return fieldErr(field, "must be at least 1s")
	}
	if d > max {
		return fieldErr(field, "%v is %w, %v", d, ErrLifetimeOverMax, max)
	}
	return nil
}

// checkText refuses text of field that is not UTF-8 or that holds a
// control character (C0, DEL, C1), a format character (bidi overrides and
// isolates, zero-width characters) or a line or paragraph separator: the
// text reaches logs, terminals and the token's readers as it is, where
// these forge lines or disguise what is shown. The character is named by
// its code point, never written out.
func checkText(field, v string) error {
	if !utf8.ValidString(v) {
		return fieldErr(field, "must be UTF-8")
	}
	for _, r := range v {
		if r >= ' ' && r < 0x7f {
			continue
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fieldErr(field, "holds %U, a control or format character: use printable text", r)
		}
	}
	return nil
}

// notInWord says r has no place in a scope word: a space of any kind
// (strings.Fields, which splits a token's scope, splits at each), a quote
// or a backslash.
func notInWord(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\\' }

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
	kid, v, key, err := s.signingKey(ctx, alg)
	if err != nil {
		return "", err
	}
	if v > 0 {
		if err := s.coverSigned(ctx, v, c.ExpiresAt.Time); err != nil {
			return "", err
		}
	}
	var scratch [384]byte
	payload := appendClaims(scratch[:0], c)
	hdr := headerSegment(alg, kid)
	s.knowHeader(hdr, alg, kid)
	buf := make([]byte, 0, len(hdr)+1+b64url.EncodedLen(len(payload))+1+b64url.EncodedLen(512))
	buf = append(buf, hdr...)
	buf = append(buf, '.')
	buf = b64url.AppendEncode(buf, payload)
	sig, err := methods[alg].sign(ctx, buf, key)
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
			Issuer: s.Issuer(), Subject: r.Subject, Audience: r.Audience, ID: id,
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
	if err := r.normalize(s.Audience(), s.opts.MaxLifetime); err != nil {
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

// RefreshRequest asks for a refresh.
type RefreshRequest struct {
	RefreshToken string
	Scope        []string      // a subset of the grant's; empty: the grant's
	ExpiresIn    time.Duration // the new access token's lifetime; 0: the grant's
	// Final ends the grant: no new refresh token is issued.
	Final bool
	// Audience, when set, must be the grant's: a refresh never changes it.
	Audience []string
	// AccessToken, when set, must be the token the refresh token was
	// issued with (its signature is checked, not its expiry): a client that
	// names the token it refreshes gets an error when it is another one.
	AccessToken string
}

// Refresh exchanges a refresh token for a brand-new access token and a new
// refresh token; the old access token and the used refresh token stop
// working at once. scope, when not empty, must be a subset of the grant's. A
// refresh token used twice revokes its whole family.
func (s *Service) Refresh(ctx context.Context, refreshToken string, scope []string) (Issued, error) {
	return s.RefreshWith(ctx, RefreshRequest{RefreshToken: refreshToken, Scope: scope})
}

// RefreshWith is Refresh with the options of r.
func (s *Service) RefreshWith(ctx context.Context, r RefreshRequest) (Issued, error) {
	var named string // the jti of r.AccessToken
	if r.AccessToken != "" {
		v, err := s.parseWith(ctx, strings.TrimSpace(r.AccessToken), Algorithms, false, time.Now())
		if err != nil {
			return Issued{}, fieldErr("access_token", "is not a token of this keyward: %v", err)
		}
		named = v.claims.ID
	}
	if r.ExpiresIn != 0 {
		if err := checkLifetime("expires_in", r.ExpiresIn, s.opts.MaxLifetime); err != nil {
			return Issued{}, err
		}
	}
	now := s.now()
	var out Issued
	var revokedAccess string
	err := s.store.UseRefresh(ctx, hashRefresh(r.RefreshToken), now, func(old keystore.RefreshRecord) (keystore.TokenRecord, keystore.RefreshRecord, error) {
		if named != "" && named != old.AccessID {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, fieldErr("access_token", "token %s is not the one this refresh token was issued with", named)
		}
		if r.Audience != nil && !sameWords(r.Audience, strings.Fields(old.Audience)) {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, fieldErr("audience", "a refresh keeps the grant's audience %q; leave audience out", old.Audience)
		}
		granted := strings.Fields(old.Scope)
		scope := r.Scope
		if len(scope) == 0 {
			// An empty scope (a form's scope=) keeps the grant's: a
			// grant without scope would be useless for good.
			scope = granted
		}
		for _, sc := range scope {
			if !slices.Contains(granted, sc) {
				return keystore.TokenRecord{}, keystore.RefreshRecord{}, fmt.Errorf("%w: %q was not granted (granted: %q)", ErrScopeWidened, sc, old.Scope)
			}
		}
		ttl := r.ExpiresIn
		if ttl == 0 {
			ttl = old.AccessTTL
		}
		req := Request{Kind: KindAccess, Subject: old.Subject, Scope: scope, Audience: strings.Fields(old.Audience), ExpiresIn: ttl, Alg: old.Alg}
		if err := req.normalize(s.Audience(), s.opts.MaxLifetime); err != nil {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, err
		}
		id := newID(now)
		c, rec := s.claimsFor(req, id, old.Family, now)
		token, err := s.sign(ctx, c, req.Alg)
		if err != nil {
			return keystore.TokenRecord{}, keystore.RefreshRecord{}, err
		}
		out = Issued{AccessToken: token, TokenID: id, TokenType: "Bearer", ExpiresIn: int64(req.ExpiresIn / time.Second), Scope: c.Scope, ExpiresAt: rec.Expires}
		revokedAccess = old.AccessID
		if r.Final {
			return rec, keystore.RefreshRecord{}, nil
		}
		value, hash := newRefreshToken()
		out.RefreshToken = value
		// The new refresh token ends when the grant's first one would
		// have: refreshing never extends a grant.
		return rec, keystore.RefreshRecord{Hash: hash, Family: old.Family, AccessID: id, Subject: old.Subject, Scope: c.Scope,
			Audience: old.Audience, Alg: old.Alg, AccessTTL: req.ExpiresIn, Issued: now, Expires: old.Expires}, nil
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

// sameWords says a and b hold the same words, in any order.
func sameWords(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
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

// IsRefreshToken says v has the form of a keyward refresh token (kwr_…),
// not of a JWT.
func IsRefreshToken(v string) bool { return strings.HasPrefix(strings.TrimSpace(v), "kwr_") }

// List returns the page of recorded tokens f selects (never the tokens
// themselves); the page's Next, as f.Cursor, asks for the page after.
func (s *Service) List(ctx context.Context, f keystore.TokenFilter) (keystore.TokenPage, error) {
	return s.store.Tokens(ctx, f, s.now())
}

// ListPages hands each page of the recorded tokens f selects to fn, from
// f.Cursor on, until the last page or fn's error: memory holds one page
// however many tokens there are. A token issued meanwhile is listed only
// if it sorts after the page being read.
func (s *Service) ListPages(ctx context.Context, f keystore.TokenFilter, fn func([]keystore.TokenRecord) error) error {
	for {
		page, err := s.List(ctx, f)
		if err != nil {
			return err
		}
		if err := fn(page.Tokens); err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		f.Cursor = page.Next
	}
}
