package tokens

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/keystore"
)

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
	_, err := s.RevokeTokenID(ctx, token)
	return err
}

// RevokeTokenID is RevokeToken, and says the id of the token revoked.
func (s *Service) RevokeTokenID(ctx context.Context, token string) (string, error) {
	c, err := s.parse(ctx, strings.TrimSpace(token), false)
	if err != nil {
		return "", err
	}
	return c.ID, s.Revoke(ctx, c.ID)
}

// RevokeRefreshToken revokes the grant of a refresh token (RFC 7009 with
// token_type_hint=refresh_token): every token of its family.
func (s *Service) RevokeRefreshToken(ctx context.Context, refreshToken string) error {
	if err := s.store.RevokeRefresh(ctx, hashRefresh(refreshToken), s.now()); err != nil {
		return mapStoreErr(err)
	}
	return s.revoked.sync(ctx)
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
