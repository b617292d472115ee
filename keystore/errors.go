package keystore

import "errors"

var (
	ErrDatabase    = errors.New("database error")
	ErrSchemaNewer = errors.New("database is newer than this keyward")
	ErrNotFound    = errors.New("no such record")
	ErrKeyMismatch = errors.New("key mismatch between device and database")
	ErrKeyMissing  = errors.New("registered key missing from the device")
	ErrKeyRetired  = errors.New("key version retired")
	ErrFormat      = errors.New("not a keyward ciphertext")
	ErrKeyInUse    = errors.New("key version still in use")
	ErrKeyState    = errors.New("key version cannot do that")
	ErrRecordName  = errors.New("invalid record name")
	ErrTooLarge    = errors.New("record too large")
)
