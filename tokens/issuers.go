package tokens

import (
	"context"
	"time"
)

// The issuer of a cluster's tokens. A server signs with its public URL
// (UseIssuer), which RFC 8414 and OpenID discovery need; the CLI, and a
// cluster older than that, sign as keyward@<instance id>. Every node
// accepts both: the URLs its database lists (every server registers its
// own) and the instance id. The audience of keyward's own API stays
// keyward@<instance id> (Audience), whatever the issuer.

// issuerView is the issuers the database listed when last read.
type issuerView struct {
	known map[string]bool
	read  time.Time
}

// Issuer is the iss of the tokens this service signs: its public URL once
// UseIssuer gave one, else keyward@<instance id>.
func (s *Service) Issuer() string {
	if u := s.signIss.Load(); u != nil {
		return *u
	}
	return s.issuer
}

// Audience is the audience of keyward's own API, keyward@<instance id>:
// the default audience of a token, and what the server checks.
func (s *Service) Audience() string { return s.issuer }

// UseIssuer makes url (a server's public URL, checked by the caller) the
// issuer of the tokens this service signs, and registers it in the
// database so that every node accepts them.
func (s *Service) UseIssuer(ctx context.Context, url string) error {
	if err := s.store.RegisterIssuer(ctx, url); err != nil {
		return err
	}
	s.signIss.Store(&url)
	s.issuers.Store(nil) // read again, with url
	return nil
}

// knownIssuer says iss is an issuer of this cluster. An issuer not in the
// last listing reads the database again, at most every RevocationRefresh.
func (s *Service) knownIssuer(ctx context.Context, iss string, wall time.Time) (bool, error) {
	if iss == s.issuer {
		return true, nil
	}
	v := s.issuers.Load()
	if v != nil && (v.known[iss] || wall.Sub(v.read) < s.opts.RevocationRefresh) {
		return v.known[iss], nil
	}
	list, err := s.store.Issuers(ctx)
	if err != nil {
		return false, err
	}
	nv := &issuerView{known: map[string]bool{}, read: wall}
	for _, u := range list {
		nv.known[u] = true
	}
	s.issuers.Store(nv)
	return nv.known[iss], nil
}
