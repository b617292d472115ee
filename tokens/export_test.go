package tokens

import (
	"context"
	"time"
)

// CacheLen is the number of tokens in the verified cache.
func (s *Service) CacheLen() int { return s.cache.len() }

// Settings are the options New settled on, defaults filled in.
func (s *Service) Settings() Options { return s.opts }

// ParseDirect and ParseStock are the two parsers, for FuzzDifferential:
// signature, issuer, jti, knd and exp checked, times not.
func (s *Service) ParseDirect(token string) (c *Claims, err error, done bool) {
	v, err, done := s.parseDirect(context.Background(), token, Algorithms, time.Now())
	return v.claims, err, done
}

func (s *Service) ParseStock(token string) (*Claims, error) {
	v, err := s.parseStock(context.Background(), token, Algorithms, false, time.Now())
	return v.claims, err
}

// SameClaims compares claims field by field (dates as instants).
var SameClaims = sameClaims
