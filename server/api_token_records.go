package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/keystore"
)

// tokenView is a token's record as JFrog Access answers it (epoch seconds,
// issuer, refreshable), with keyward's own fields after.
type tokenView struct {
	TokenID     string `json:"token_id"`
	Subject     string `json:"subject"`
	Expiry      int64  `json:"expiry"`
	IssuedAt    int64  `json:"issued_at"`
	Issuer      string `json:"issuer"`
	Description string `json:"description,omitempty"`
	Refreshable bool   `json:"refreshable"`

	Kind      string `json:"kind"`
	Scope     string `json:"scope"`
	Audience  string `json:"audience"` // space-separated
	Family    string `json:"family"`
	RevokedAt int64  `json:"revoked_at,omitempty"`
	// ConsumedAt is when a pairing token was redeemed.
	ConsumedAt int64 `json:"consumed_at,omitempty"`
}

func epoch(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

func (s *Server) view(t keystore.TokenRecord) tokenView {
	return tokenView{TokenID: t.ID, Subject: t.Subject, Expiry: t.Expires.Unix(), IssuedAt: t.Issued.Unix(), Issuer: s.node.Tokens().Issuer(),
		Description: t.Description, Refreshable: t.Refreshable, Kind: t.Kind, Scope: t.Scope, Audience: t.Audience, Family: t.Family,
		RevokedAt: epoch(t.Revoked), ConsumedAt: epoch(t.Consumed)}
}

// listFilters are the query parameters of GET /access/api/v1/tokens:
// JFrog's, then keyward's own (subject, all, and the page: limit, cursor).
var listFilters = []string{"username", "description", "refreshable", "token_id", "order_by", "descending_order", "subject", "all", "limit", "cursor"}

// listTokens is GET /access/api/v1/tokens: an admin lists every subject's
// tokens, anyone else its own; every filter is applied, an unknown one
// refused. One page is answered, with "next" when there are more: JFrog
// answers every token at once, which at a million tokens is hundreds of
// megabytes.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	q, err := query(r, listFilters...)
	if err != nil {
		return err
	}
	f, err := tokenFilter(q)
	if err != nil {
		return err
	}
	if !c.admin() {
		if f.Subject != "" && f.Subject != c.claims.Subject {
			return errForbidden("admin, to list another subject's tokens")
		}
		f.Subject = c.claims.Subject
	}
	page, err := s.node.Tokens().List(r.Context(), f)
	if err != nil {
		return err
	}
	views := make([]tokenView, len(page.Tokens))
	for i, t := range page.Tokens {
		views[i] = s.view(t)
	}
	out := map[string]any{"tokens": views}
	if page.Next != "" {
		out["next"] = page.Next
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// tokenFilter reads a listing's query.
func tokenFilter(q params) (keystore.TokenFilter, error) {
	f := keystore.TokenFilter{Subject: q["username"], ID: q["token_id"], Description: q["description"], OrderBy: q["order_by"], Descending: true,
		Cursor: q["cursor"]}
	if v := q["subject"]; v != "" {
		if f.Subject != "" && f.Subject != v {
			return f, errorf(http.StatusBadRequest, "BAD_REQUEST", "username and subject name two subjects; give one")
		}
		f.Subject = v
	}
	if _, ok := keystore.TokenOrders[f.OrderBy]; f.OrderBy != "" && !ok {
		return f, errorf(http.StatusBadRequest, "BAD_REQUEST", "order_by %q: use created, token_id, subject or expiry", f.OrderBy)
	}
	if v, ok := q["refreshable"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, errorf(http.StatusBadRequest, "BAD_REQUEST", "refreshable must be true or false")
		}
		f.Refreshable = &b
	}
	var err error
	if f.Limit, err = pageLimit(q); err != nil {
		return f, err
	}
	if _, ok := q["descending_order"]; ok {
		if f.Descending, err = q.bool("descending_order"); err != nil {
			return f, err
		}
	}
	if f.All, err = q.bool("all"); err != nil {
		return f, err
	}
	if f.ID != "" {
		f.All = true // a token asked for by id is shown whatever its state
	}
	return f, nil
}

// pageLimit reads a listing's limit: a page of 1 to MaxTokenPage records,
// by default DefaultTokenPage.
func pageLimit(q params) (int, error) {
	v, ok := q["limit"]
	if !ok {
		return keystore.DefaultTokenPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > keystore.MaxTokenPage {
		return 0, errorf(http.StatusBadRequest, "BAD_REQUEST", "limit must be a whole number from 1 to %d (records a page; default %d)", keystore.MaxTokenPage, keystore.DefaultTokenPage)
	}
	return n, nil
}

// getToken is GET /access/api/v1/tokens/{id}, and …/me for the caller's
// own: an admin may read any token's record, anyone else its own
// subject's.
func (s *Server) getToken(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == "" || id == "me" { // GET …/tokens/me
		id = c.claims.ID
	}
	page, err := s.node.Tokens().List(r.Context(), keystore.TokenFilter{ID: id, All: true})
	if err != nil {
		return err
	}
	list := page.Tokens
	if len(list) == 0 || !c.admin() && list[0].Subject != c.claims.Subject {
		// Another subject's token is as unknown as a missing one.
		return errorf(http.StatusNotFound, "NOT_FOUND", "no token with id %q", id)
	}
	writeJSON(w, http.StatusOK, s.view(list[0]))
	return nil
}

// revokeTokenByID is DELETE /access/api/v1/tokens/{id}, and …/me for the
// caller's own: an admin, the token's own holder, or a holder of a token
// of the same subject. As JFrog: 200 when revoked (again, if it was),
// 204 when no token has that id.
func (s *Server) revokeTokenByID(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return err
	}
	if _, err := query(r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == "me" {
		id = c.claims.ID
	}
	if !c.admin() && c.claims.ID != id {
		rec, err := s.node.TokenRecord(r.Context(), id)
		if errors.Is(err, keystore.ErrTokenUnknown) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if err != nil {
			return err
		}
		if rec.Subject != c.claims.Subject {
			return errorf(http.StatusForbidden, "FORBIDDEN", "only an admin, or a holder of a token of the same subject, may revoke a token")
		}
	}
	if err := s.node.Tokens().Revoke(r.Context(), id); err != nil {
		if errors.Is(err, keystore.ErrTokenUnknown) {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		return err
	}
	s.metrics.tokensRevoked.Inc()
	writeJSON(w, http.StatusOK, map[string]any{"token_id": id, "revoked": true})
	return nil
}

// revokeByValueJFrog is JFrog's DELETE /access/api/v1/tokens/revoke with
// {"token": …} (admin): the token's signature must be this keyward's; an
// expired or revoked one may still be named.
func (s *Server) revokeByValueJFrog(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.authorize(r); err != nil {
		return err
	}
	p, tok, err := s.readRequired(w, r, "token")
	if err != nil {
		return err
	}
	if err := p.only("token"); err != nil {
		return err
	}
	id, err := s.node.Tokens().RevokeTokenID(r.Context(), tok)
	if err != nil {
		if classify(err).status == http.StatusUnauthorized {
			// The token named is not this keyward's: JFrog's 400, not a
			// failure of the caller's own credentials.
			return errorf(http.StatusBadRequest, "BAD_REQUEST", "the token cannot be revoked here: %s", err.Error())
		}
		return err
	}
	s.metrics.tokensRevoked.Inc()
	writeJSON(w, http.StatusOK, map[string]any{"revoked-token-id": id})
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
