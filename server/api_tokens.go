package server

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/tokens"
)

// createToken is POST /access/api/v1/tokens: create (admin), or with
// grant_type=refresh_token a refresh, authenticated by the refresh token
// alone.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	switch p["grant_type"] {
	case "refresh_token":
		return s.refresh(w, r, p)
	case "":
	default:
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "grant_type must be refresh_token (or left out to create a token)")
	}
	if _, err := s.authorize(r); err != nil {
		return err
	}
	req, err := tokenRequest(p)
	if err != nil {
		return err
	}
	iss, err := s.node.Tokens().Create(r.Context(), req)
	if err != nil {
		return err
	}
	s.metrics.issued[tokens.KindAccess].Inc()
	writeJSON(w, http.StatusOK, iss)
	return nil
}

// tokenRequest reads a create request's fields.
func tokenRequest(p params) (tokens.Request, error) {
	subject, err := p.required("subject")
	if err != nil {
		return tokens.Request{}, err
	}
	expires, err := p.seconds("expires_in")
	if err != nil {
		return tokens.Request{}, err
	}
	refreshTTL, err := p.seconds("refresh_expires_in")
	if err != nil {
		return tokens.Request{}, err
	}
	refreshable, err := p.bool("refreshable")
	if err != nil {
		return tokens.Request{}, err
	}
	return tokens.Request{Subject: subject, Scope: strings.Fields(p["scope"]), Audience: strings.Fields(p["audience"]),
		ExpiresIn: expires, Refreshable: refreshable, RefreshTTL: refreshTTL, Alg: p["alg"], Description: p["description"]}, nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request, p params) error {
	rt, err := p.required("refresh_token")
	if err != nil {
		return err
	}
	var scope []string
	if v, ok := p["scope"]; ok {
		scope = strings.Fields(v)
	}
	iss, err := s.node.Tokens().Refresh(r.Context(), rt, scope)
	if err != nil {
		return err
	}
	s.metrics.tokensRefreshed.Inc()
	writeJSON(w, http.StatusOK, iss)
	return nil
}

// listTokens is GET /access/api/v1/tokens (admin): ?subject= filters,
// ?all=true includes expired, revoked and used tokens.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r); err != nil {
		return err
	}
	q := r.URL.Query()
	list, err := s.node.Tokens().List(r.Context(), q.Get("subject"), q.Get("all") == "true")
	if err != nil {
		return err
	}
	if list == nil {
		list = []keystore.TokenRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": list})
	return nil
}

// myToken is GET /access/api/v1/tokens/me: the record of the caller's
// own token.
func (s *Server) myToken(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	rec, err := s.node.TokenRecord(r.Context(), c.claims.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rec)
	return nil
}

// revokeTokenByID is DELETE /access/api/v1/tokens/{id}: an admin, or the
// holder of that very token.
func (s *Server) revokeTokenByID(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !c.admin() && c.claims.ID != id {
		return errorf(http.StatusForbidden, "FORBIDDEN", "only an admin, or the token's own holder, may revoke a token")
	}
	if err := s.node.Tokens().Revoke(r.Context(), id); err != nil {
		if errors.Is(err, keystore.ErrTokenUnknown) {
			err = errorf(http.StatusNotFound, "NOT_FOUND", "no token with id %q", id)
		}
		return err
	}
	s.metrics.tokensRevoked.Inc()
	writeJSON(w, http.StatusOK, map[string]any{"token_id": id, "revoked": true})
	return nil
}

// revokeTokenByValue is POST /access/api/v1/tokens/revoke with token: the
// token itself is the credential (whoever holds it may end it).
func (s *Server) revokeTokenByValue(w http.ResponseWriter, r *http.Request) error {
	_, tok, err := s.readRequired(w, r, "token")
	if err != nil {
		return err
	}
	if err := s.revokeValue(r, tok); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": true})
	return nil
}

// revokeValue revokes a JWT keyward signed, or the grant of a refresh
// token.
func (s *Server) revokeValue(r *http.Request, tok string) error {
	var err error
	if tokens.IsRefreshToken(tok) {
		err = s.node.Tokens().RevokeRefreshToken(r.Context(), tok)
	} else {
		err = s.node.Tokens().RevokeToken(r.Context(), tok)
	}
	if err == nil {
		s.metrics.tokensRevoked.Inc()
	}
	return err
}

// oauthRevoke is RFC 7009: 200 whether or not the token was valid; a
// database or device failure is a 503 (the caller must try again).
func (s *Server) oauthRevoke(w http.ResponseWriter, r *http.Request) error {
	_, tok, err := s.readRequired(w, r, "token")
	if err != nil {
		return err
	}
	if err := s.revokeValue(r, tok); err != nil && classify(err).status >= 500 {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return nil
}

// introspect is RFC 7662; the caller needs admin or introspect. The
// audience is not checked unless the form names one.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r, ScopeIntrospect); err != nil {
		return err
	}
	p, tok, err := s.readRequired(w, r, "token")
	if err != nil {
		return err
	}
	o := tokens.VerifyOptions{Audience: p["audience"], AnyAudience: p["audience"] == ""}
	out, err := s.node.Tokens().Introspect(r.Context(), tok, o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) error {
	set, err := s.node.Tokens().JWKS(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "max-age=60")
	writeJSON(w, http.StatusOK, set)
	return nil
}

// baseURL is the server's URL as the caller reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: r.Host}).String()
}

// metadata is RFC 8414. The issuer is the iss of keyward's tokens
// (keyward@<instance id>), which is what verifiers compare.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	base := baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 s.node.Tokens().Issuer(),
		"jwks_uri":               base + "/.well-known/jwks.json",
		"token_endpoint":         base + "/access/api/v1/tokens",
		"introspection_endpoint": base + "/oauth2/introspect",
		"revocation_endpoint":    base + "/oauth2/revoke",
		"grant_types_supported":  []string{"refresh_token"},
		// Revocation is authenticated by the token presented.
		"revocation_endpoint_auth_methods_supported": []string{"none"},
		"scopes_supported":                           []string{ScopeAdmin, ScopeIntrospect, ScopeStoreRead, ScopeStoreWrite},
		"response_types_supported":                   []string{"none"},
	})
	return nil
}

// createPairing is POST /access/api/v1/pairing (admin). The URLs default
// to this server's own.
func (s *Server) createPairing(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r); err != nil {
		return err
	}
	p, err := readParams(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	ttl, err := p.seconds("expires_in")
	if err != nil {
		return err
	}
	base := p["base_url"]
	if base == "" {
		base = baseURL(r)
	}
	exchange := p["exchange_url"]
	if exchange == "" {
		exchange = strings.TrimSuffix(base, "/") + "/access/api/v1/pairing/redeem"
	}
	iss, err := s.node.Tokens().CreatePairing(r.Context(), tokens.PairingRequest{Subject: p["subject"], BaseURL: base, ExchangeURL: exchange,
		PairingURL: p["pairing_url"], ExpiresIn: ttl, Description: p["description"]})
	if err != nil {
		return err
	}
	s.metrics.issued[tokens.KindPairing].Inc()
	writeJSON(w, http.StatusOK, map[string]any{"pairing_token": iss.AccessToken, "token_id": iss.TokenID, "expires_in": iss.ExpiresIn})
	return nil
}

// redeemPairing is POST /access/api/v1/pairing/redeem: the pairing token
// is the credential, used once across every server.
func (s *Server) redeemPairing(w http.ResponseWriter, r *http.Request) error {
	p, tok, err := s.readRequired(w, r, "pairing_token")
	if err != nil {
		return err
	}
	ttl, err := p.seconds("expires_in")
	if err != nil {
		return err
	}
	iss, err := s.node.Tokens().RedeemPairing(r.Context(), tok, ttl)
	if err != nil {
		if errors.Is(err, tokens.ErrRevoked) && errors.Is(err, keystore.ErrTokenUsed) {
			return errorf(http.StatusConflict, "ALREADY_USED", "this pairing token was redeemed before")
		}
		return err
	}
	s.metrics.issued[tokens.KindMaster].Inc()
	writeJSON(w, http.StatusOK, map[string]any{"master_token": iss.AccessToken, "token_id": iss.TokenID, "expires_in": iss.ExpiresIn,
		"expires_at": iss.ExpiresAt.UTC().Format(time.RFC3339)})
	return nil
}

// readRequired reads the body's fields, one of which must be there.
func (s *Server) readRequired(w http.ResponseWriter, r *http.Request, field string) (params, string, error) {
	p, err := readParams(w, r, s.cfg.MaxBody)
	if err != nil {
		return nil, "", err
	}
	v, err := p.required(field)
	return p, v, err
}
