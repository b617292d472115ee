// Package ceremony holds the key ceremonies' file work: key material as hex,
// the security section of a system.yaml, split-knowledge components and
// Shamir share files. It never prints or returns key material in an error.
package ceremony

import "errors"

var (
	ErrMalformed = errors.New("malformed key material")
	ErrKeyLength = errors.New("wrong key length")
	ErrNotFound  = errors.New("no key in the file")
	ErrShares    = errors.New("cannot reconstruct the key from these shares")
)
