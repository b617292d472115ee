package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/tokens"
)

// The fields of a token request: JFrog's create and refresh, RFC 6749's
// refresh_token grant, and keyward's own. Any other is refused.
var (
	createFields  = []string{"grant_type", "username", "subject", "scope", "expires_in", "refreshable", "refresh_expires_in", "description", "audience", "alg", "include_reference_token", "force_revocable", "project_key"}
	refreshFields = []string{"grant_type", "refresh_token", "scope", "expires_in", "refreshable", "access_token", "token_type", "audience", "include_reference_token", "client_id"}
)

// createToken is POST /access/api/v1/tokens: JFrog's create (grant_type
// client_credentials, the default), or with grant_type=refresh_token a
// refresh, authenticated by the refresh token alone.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	p, err := readParams(w, r, s.cfg.MaxBody)
	if err != nil {
		return err
	}
	switch p["grant_type"] {
	case "refresh_token": // its only credential is the refresh token
		return s.rateLimited(func(w http.ResponseWriter, r *http.Request) error { return s.refresh(w, r, p) })(w, r)
	case "", "client_credentials":
	default:
		return errorf(http.StatusBadRequest, "UNSUPPORTED_GRANT_TYPE", "grant_type %q is not supported: use client_credentials (the default) to create a token, refresh_token to refresh one", p["grant_type"])
	}
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if err := p.only(createFields...); err != nil {
		return err
	}
	req, notes, err := s.tokenRequest(p, c)
	if err != nil {
		return err
	}
	iss, err := s.node.Tokens().Create(r.Context(), req)
	if err != nil {
		return asUsername(err, p)
	}
	s.metrics.issued[tokens.KindAccess].Inc()
	writeJSON(w, http.StatusOK, issuedBody{Issued: iss, Notes: notes})
	return nil
}

// issuedBody is a created or refreshed token, with what keyward did
// differently from what was asked, and why.
type issuedBody struct {
	tokens.Issued
	Notes []string `json:"notes,omitempty"`
}

// tokenRequest reads a create request's fields for caller c. The subject
// is username (JFrog's name) or subject, by default the caller's own. A
// caller without admin may only create tokens for itself, with scopes it
// holds.
func (s *Server) tokenRequest(p params, c caller) (tokens.Request, []string, error) {
	var notes []string
	subject := strings.TrimSpace(p["username"])
	if v := strings.TrimSpace(p["subject"]); v != "" {
		if subject != "" && subject != v {
			return tokens.Request{}, nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "username and subject name the token's subject twice, differently; give one")
		}
		subject = v
	}
	if subject == "" {
		subject = c.claims.Subject
	}
	scope := words(p["scope"])
	if !c.admin() {
		if subject != c.claims.Subject {
			return tokens.Request{}, nil, errForbidden("admin, to create a token for another subject than the caller's own")
		}
		if !within(scope, strings.Fields(c.claims.Scope)) {
			return tokens.Request{}, nil, errForbidden("admin, or a token that holds every scope asked for")
		}
	}
	expires, err := p.seconds("expires_in")
	if err != nil && p["expires_in"] != "0" {
		return tokens.Request{}, nil, err
	}
	if p["expires_in"] == "0" {
		// JFrog: non-expiring. keyward never issues a token beyond its
		// longest lifetime.
		expires = s.node.Tokens().MaxLifetime()
		notes = append(notes, fmt.Sprintf("expires_in 0 (non-expiring) gives this server's longest token lifetime, %v (--max-token-lifetime): keyward issues no token that never expires", expires))
	}
	refreshTTL, err := p.seconds("refresh_expires_in")
	if err != nil {
		return tokens.Request{}, nil, err
	}
	refreshable, err := p.bool("refreshable")
	if err != nil {
		return tokens.Request{}, nil, err
	}
	if ref, err := p.bool("include_reference_token"); err != nil {
		return tokens.Request{}, nil, err
	} else if ref {
		return tokens.Request{}, nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "include_reference_token: keyward issues no reference tokens; use the access_token itself (leave include_reference_token out or false)")
	}
	if _, err := p.bool("force_revocable"); err != nil { // every keyward token is revocable
		return tokens.Request{}, nil, err
	}
	if p["project_key"] != "" {
		return tokens.Request{}, nil, errorf(http.StatusBadRequest, "BAD_REQUEST", "project_key: keyward has no projects; leave it out")
	}
	return tokens.Request{Subject: subject, Scope: scope, Audience: words(p["audience"]),
		ExpiresIn: expires, Refreshable: refreshable, RefreshTTL: refreshTTL, Alg: p["alg"], Description: p["description"]}, notes, nil
}

// asUsername is err, but naming username where it names the subject the
// caller gave as username (JFrog's name for it).
func asUsername(err error, p params) error {
	var fe *tokens.FieldError
	if p["subject"] == "" && p["username"] != "" && errors.As(err, &fe) && fe.Field == "subject" {
		return &tokens.FieldError{Field: "username", Err: fe.Err}
	}
	return err
}

// refresh is the refresh_token grant, JFrog's and RFC 6749's: a new access
// token, and a new refresh token unless refreshable is false. Errors are
// RFC 6749's: a refresh token that is not good any more is invalid_grant.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request, p params) error {
	if err := p.only(refreshFields...); err != nil {
		return err
	}
	rt, err := p.required("refresh_token")
	if err != nil {
		return err
	}
	// An empty scope (scope=) keeps the grant's, as no scope does.
	req := tokens.RefreshRequest{RefreshToken: rt, AccessToken: p["access_token"], Scope: words(p["scope"])}
	if req.ExpiresIn, err = p.seconds("expires_in"); err != nil {
		return err
	}
	if v, ok := p["refreshable"]; ok && v != "" {
		keep, err := p.bool("refreshable")
		if err != nil {
			return err
		}
		req.Final = !keep
	}
	if t := p["token_type"]; t != "" && !strings.EqualFold(t, "Bearer") && t != "access_token" {
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "token_type %q: keyward issues Bearer tokens only", t)
	}
	if ref, err := p.bool("include_reference_token"); err != nil {
		return err
	} else if ref {
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "include_reference_token: keyward issues no reference tokens; leave it out or false")
	}
	if aud, ok := p["audience"]; ok && aud != "" {
		// A refresh keeps the grant's audience; naming another is an
		// error, not a silent change.
		req.Audience = words(aud)
	}
	iss, err := s.node.Tokens().RefreshWith(r.Context(), req)
	if err != nil {
		return grantError(err)
	}
	s.metrics.tokensRefreshed.Inc()
	writeJSON(w, http.StatusOK, issuedBody{Issued: iss})
	return nil
}

// grantError is a refresh's error as RFC 6749 §5.2 has it: a refresh
// token unknown, used, revoked or expired is invalid_grant, a scope not
// granted invalid_scope; anything else as it is.
func grantError(err error) error {
	switch {
	case errors.Is(err, tokens.ErrScopeWidened):
		return errorf(http.StatusBadRequest, "INVALID_SCOPE", "%s", err.Error())
	case errors.Is(err, tokens.ErrInvalid), errors.Is(err, tokens.ErrRevoked), errors.Is(err, tokens.ErrExpired), errors.Is(err, keystore.ErrTokenUsed):
		return errorf(http.StatusBadRequest, "INVALID_GRANT", "%s", err.Error())
	}
	return err
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

// metadata is RFC 8414's /.well-known/oauth-authorization-server and
// OpenID Connect Discovery's /.well-known/openid-configuration, built from
// the public URL (never from the request's Host). The issuer is that URL:
// the iss of the tokens this server signs.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	base := s.public // "" only for a Handler used without Run: paths alone
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                 s.node.Tokens().Issuer(),
		"jwks_uri":               base + "/.well-known/jwks.json",
		"token_endpoint":         base + "/access/api/v1/tokens",
		"introspection_endpoint": base + "/oauth2/introspect",
		"revocation_endpoint":    base + "/oauth2/revoke",
		"grant_types_supported":  []string{"client_credentials", "refresh_token"},
		// A refresh is authenticated by the refresh token, a create by a
		// Bearer token: no client authentication either way.
		"token_endpoint_auth_methods_supported":         []string{"none"},
		"revocation_endpoint_auth_methods_supported":    []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"bearer"},
		"scopes_supported":                              []string{ScopeAdmin, ScopeIntrospect, ScopeStoreRead, ScopeStoreWrite, jfrogAdmin, jfrogUser},
		"response_types_supported":                      []string{"token"},
		"subject_types_supported":                       []string{"public"},
		// The algorithms a verifier can check with the JWKS (HS* tokens
		// need the join key, which is never published).
		"id_token_signing_alg_values_supported": []string{tokens.ES256, tokens.RS256, tokens.PS256, tokens.EdDSA},
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scp", "knd", "ext"},
	})
	return nil
}

// createPairing is POST /access/api/v1/pairing (admin). The URLs default
// to this server's public URL, never to the request's Host (a proxy that
// passes any Host would let a caller send redeemers elsewhere).
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
		base = s.public
	}
	if base == "" { // a Handler used without Run: never the request's Host
		return errorf(http.StatusBadRequest, "BAD_REQUEST", "give base_url: this server has no public URL (serve --public-url)")
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
