package tokens

import (
	"context"
	"time"
)

// A signing key pair that no longer signs (retired, or a newer one of its
// type signs) stays in the JWKS until the last token it signed has
// expired, on every node. The cluster knows until when from a bound in
// the database (keystore's `signed-until`), raised before a token that
// outlives it is handed out. The bound moves in whole hours past the
// token's expiry, so a steady stream of tokens writes it about once an
// hour per key pair, not once per token.

// boundStep is how far past a token's expiry the bound is set.
const boundStep = time.Hour

// signedBounds is each signing version's bound as this node last knew
// it (Unix seconds): read on every token, raised a few times an hour.
type signedBounds struct{ m cowMap[int, int64] }

func (b *signedBounds) get(v int) int64 {
	u, _ := b.m.load(v)
	return u
}

// raise keeps the larger of v's bound and until.
func (b *signedBounds) raise(v int, until int64) {
	if until <= b.get(v) {
		return
	}
	b.m.update(v, func(old int64, _ bool) (int64, bool) { return until, until > old })
}

// coverSigned makes sure the cluster's bound for signing version v covers
// a token expiring at exp, before the token leaves.
func (s *Service) coverSigned(ctx context.Context, v int, exp time.Time) error {
	if exp.Unix() <= s.bounds.get(v) {
		return nil
	}
	bound := exp.Truncate(boundStep).Add(boundStep)
	if err := s.store.RaiseSignedUntil(ctx, v, bound); err != nil {
		return err
	}
	s.bounds.raise(v, bound.Unix())
	return nil
}

// published says whether the JWKS carries signing version v at wall: it
// signs now, or a token it signed may not have expired (leeway included).
func (s *Service) published(v int, signs bool, wall time.Time) bool {
	return signs || s.bounds.get(v) > wall.Add(-s.opts.Leeway).Unix()
}
