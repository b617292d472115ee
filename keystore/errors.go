package keystore

import "errors"

// Sentinel errors, matched with errors.Is. Messages say what failed and
// why; what to run about it is the caller's to add.
var (
	ErrDatabase    = errors.New("database error")
	ErrSchemaNewer = errors.New("database is newer than this keyward")
	ErrNotFound    = errors.New("no such record")
	ErrKeyMismatch = errors.New("key mismatch between device and database")
	ErrKeyMissing  = errors.New("registered key missing from the device")
	ErrKeyRetired  = errors.New("key version retired")
	ErrNoActiveKey = errors.New("no active key")
	ErrFormat      = errors.New("not a keyward ciphertext")
	ErrKeyInUse    = errors.New("key version still in use")
	ErrKeyState    = errors.New("key version cannot do that")
	ErrRecordName  = errors.New("invalid record name")
	ErrTooLarge    = errors.New("record too large")

	ErrTokenUsed    = errors.New("token already used")
	ErrTokenRevoked = errors.New("token revoked")
	ErrTokenExpired = errors.New("token expired")
	ErrTokenUnknown = errors.New("token unknown")
	ErrTokenFilter  = errors.New("bad token filter")

	ErrNodeUnknown = errors.New("no such node")
)
