package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyward/keyward/tokens"
)

// Scopes the API knows.
const (
	ScopeAdmin      = "admin"
	ScopeIntrospect = "introspect"
	ScopeStoreRead  = "store:read"
	ScopeStoreWrite = "store:write"
)

// caller is who made a request: the claims of its Bearer token.
type caller struct {
	claims *tokens.Claims
}

// has says the caller's token grants scope (in keyward's words or
// JFrog's, scopes.go).
func (c caller) has(scope string) bool {
	return grants(strings.Fields(c.claims.Scope), scope)
}

func (c caller) admin() bool { return c.has(ScopeAdmin) }

// bearer is the token of the Authorization header. A token in the query
// string is refused: URLs end up in logs and browser histories.
func bearer(r *http.Request) (string, error) {
	if r.URL.RawQuery != "" {
		q := r.URL.Query()
		if q.Has("access_token") || q.Has("token") || q.Has("refresh_token") || q.Has("pairing_token") {
			return "", errorf(http.StatusBadRequest, "BAD_REQUEST", "tokens are accepted only in the Authorization header or the body, never in the URL")
		}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errNoCredentials
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errorf(http.StatusUnauthorized, "UNAUTHORIZED", "the Authorization header must be \"Bearer <token>\"")
	}
	return strings.TrimSpace(tok), nil
}

// authenticate verifies the caller's Bearer token (signature, expiry,
// audience this keyward, revocation) and notes its id for the access log.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	tok, err := bearer(r)
	if err != nil {
		return caller{}, err
	}
	c, err := s.node.Tokens().Verify(r.Context(), tok, tokens.VerifyOptions{})
	if err != nil {
		return caller{}, err
	}
	if info := requestInfo(r.Context()); info != nil {
		info.tokenID = c.ID
	}
	return caller{claims: c}, nil
}

// authorize authenticates the caller and checks it holds admin or one of
// scopes.
func (s *Server) authorize(r *http.Request, scopes ...string) (caller, error) {
	c, err := s.authenticate(r)
	if err != nil {
		return c, err
	}
	if c.admin() {
		return c, nil
	}
	for _, sc := range scopes {
		if c.has(sc) {
			return c, nil
		}
	}
	return c, errForbidden(strings.Join(append([]string{ScopeAdmin}, scopes...), " or "))
}

// reqInfo is what the access log learns while a request is served.
type reqInfo struct {
	tokenID string
}

type infoKey struct{}

func requestInfo(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(infoKey{}).(*reqInfo)
	return info
}
