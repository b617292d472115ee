package tokens

import (
	"context"
	"strings"
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
