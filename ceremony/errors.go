package ceremony

import "errors"

var (
	ErrMalformed = errors.New("malformed key material")
	ErrKeyLength = errors.New("wrong key length")
	ErrNotFound  = errors.New("no key in the file")
	ErrShares    = errors.New("cannot reconstruct the key from these shares")
)
