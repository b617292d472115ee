package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/keystore"
)

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

// checkURL accepts an absolute http or https URL in field.
func checkURL(field, v string, required bool) error {
	if v == "" {
		if required {
			return fieldErr(field, "is required")
		}
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(field, "is not an absolute http or https URL")
	}
	// The URLs travel in the token, readable by whoever holds it.
	if u.User != nil {
		return fieldErr(field, "%s carries credentials; leave them out of the URL", u.Redacted())
	}
	return nil
}

// CreatePairing issues a single-use pairing token (5 minutes by default)
// carrying the URLs in its ext claim.
func (s *Service) CreatePairing(ctx context.Context, p PairingRequest) (Issued, error) {
	for _, u := range []struct {
		name, v  string
		required bool
	}{{"base_url", p.BaseURL, true}, {"exchange_url", p.ExchangeURL, true}, {"pairing_url", p.PairingURL, false}} {
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
	if err := checkLifetime("expires_in", expiresIn, s.opts.MaxLifetime); err != nil {
		return Issued{}, err
	}
	now := s.now()
	var out Issued
	err = s.store.ConsumePairing(ctx, c.ID, now, func(p keystore.TokenRecord) (keystore.TokenRecord, error) {
		r := Request{Kind: KindMaster, Subject: p.Subject, ExpiresIn: expiresIn, Ext: c.Ext, Description: "from pairing token " + p.ID}
		if err := r.normalize(s.Audience(), s.opts.MaxLifetime); err != nil {
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
