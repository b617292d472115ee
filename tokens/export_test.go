package tokens

import (
	"context"
	"sync/atomic"
	"time"
)

// CacheLen is the number of tokens in the verified cache.
func (s *Service) CacheLen() int { return s.cache.len() }

// Settings are the options New settled on, defaults filled in.
func (s *Service) Settings() Options { return s.opts }

// ParseDirect and ParseStock are the two parsers, for FuzzDifferential:
// signature, issuer, jti, knd and exp checked, times not.
func (s *Service) ParseDirect(ctx context.Context, token string) (c *Claims, err error, done bool) {
	v, err, done := s.parseDirect(ctx, token, Algorithms, time.Now())
	return v.claims, err, done
}

func (s *Service) ParseStock(ctx context.Context, token string) (*Claims, error) {
	v, err := s.parseStock(ctx, token, Algorithms, false, time.Now())
	return v.claims, err
}

// SameClaims compares claims field by field (dates as instants).
var SameClaims = sameClaims

// Paths counts the tokens each parser verified (signature and issuer
// good), from now on.
type Paths struct{ Direct, Stock atomic.Int64 }

func (s *Service) CountPaths() *Paths {
	p := &Paths{}
	s.parsed = func(direct bool) {
		if direct {
			p.Direct.Add(1)
		} else {
			p.Stock.Add(1)
		}
	}
	return p
}

// ForceStockPath sends every token to golang-jwt's path.
func (s *Service) ForceStockPath() { s.stockOnly = true }

// RevocationsHeld is the number of revoked ids the service holds, and
// RevocationRowsRead the log entries it has read.
func (s *Service) RevocationsHeld() int      { return s.revoked.set.len() }
func (s *Service) RevocationRowsRead() int64 { return s.revoked.rows.Load() }

// RevSet is the revocation set alone, for its unit test.
type RevSet struct{ s revSet }

func (r *RevSet) Add(id string, drop time.Time)               { r.s.add(id, drop) }
func (r *RevSet) Has(id string) bool                          { return r.s.has(id) }
func (r *RevSet) Expire(now time.Time) (dropped, visited int) { return r.s.expire(now) }
func (r *RevSet) Len() int                                    { return r.s.len() }
