package tokens

import (
	"errors"
	"fmt"
)

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
	// ErrLifetimeOverMax: a lifetime asked for is longer than
	// Options.MaxLifetime allows. It comes in a *FieldError.
	ErrLifetimeOverMax = errors.New("over the longest token lifetime")
)

// FieldError is a token request refused for one field. Field is the
// field's name in the HTTP API's JSON — "subject", "scope", "audience",
// "kind", "alg", "ext", "description", "refreshable", "expires_in",
// "refresh_expires_in", "base_url", "exchange_url", "pairing_url" — so the
// server can name it as is and the CLI can name its flag. Err says why,
// worded to follow the name ("must be at least 1s"), and may wrap another
// sentinel (ErrLifetimeOverMax, ErrAlgorithm).
type FieldError struct {
	Field string
	Err   error
}

// Error is "<field>: <reason>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap gives ErrRequest and the reason, so that errors.Is finds both.
func (e *FieldError) Unwrap() []error { return []error{ErrRequest, e.Err} }

// fieldErr makes a *FieldError whose reason is formatted like fmt.Errorf.
func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}
