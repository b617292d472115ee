package tokens

import "errors"

// Sentinel errors; every verification failure wraps ErrInvalid and one
// reason.
var (
	ErrInvalid      = errors.New("invalid token")
	ErrExpired      = errors.New("token expired")
	ErrNotYetValid  = errors.New("token not yet valid")
	ErrRevoked      = errors.New("token revoked")
	ErrSignature    = errors.New("bad signature")
	ErrUnknownKey   = errors.New("unknown kid")
	ErrAudience     = errors.New("wrong audience")
	ErrAlgorithm    = errors.New("algorithm not allowed")
	ErrIssuer       = errors.New("wrong issuer")
	ErrKind         = errors.New("wrong kind of token")
	ErrMalformed    = errors.New("malformed token")
	ErrRequest      = errors.New("invalid token request")
	ErrScopeWidened = errors.New("scope may only be narrowed")
)
