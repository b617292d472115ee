package ceremony

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/keyward/keyward/keyring"
	"io"
	"os"
)

// ParseHexKey reads an AES key written as 32, 48 or 64 hex digits with
// optional surrounding whitespace (what `openssl rand -hex 32` prints).
// The input is not cleared; the caller owns it. Errors never quote it.
func ParseHexKey(text []byte, what string) ([]byte, error) {
	t := bytes.TrimSpace(text)
	for i, c := range t {
		if !isHex(c) {
			return nil, fmt.Errorf("%w: %s: character %d is not a hex digit; the key must be 32, 48 or 64 hex digits (openssl rand -hex 32)", ErrMalformed, what, i+1)
		}
	}
	switch len(t) {
	case 32, 48, 64:
	default:
		return nil, fmt.Errorf("%w: %s has %d hex digits; an AES key is 32 (AES-128), 48 (AES-192) or 64 (AES-256)", ErrKeyLength, what, len(t))
	}
	key := make([]byte, len(t)/2)
	if _, err := hex.Decode(key, t); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrMalformed, what)
	}
	return key, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ReadHexKeyFile reads a hex key from path ("-": r). The file's bytes are
// cleared from memory after parsing.
func ReadHexKeyFile(path string, r io.Reader) ([]byte, error) {
	var text []byte
	var err error
	if path == "-" {
		text, err = io.ReadAll(io.LimitReader(r, 4096))
		path = "standard input"
	} else {
		text, err = readSmallFile(path)
	}
	if err != nil {
		return nil, err
	}
	defer clear(text)
	return ParseHexKey(text, path)
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

// XORComponents combines split-knowledge components into the key: the XOR
// of them all. They must be of one length.
func XORComponents(components [][]byte) ([]byte, error) {
	if len(components) < 2 {
		return nil, fmt.Errorf("%w: a split-knowledge key needs at least 2 components, got %d", ErrShares, len(components))
	}
	key := make([]byte, len(components[0]))
	for i, c := range components {
		if len(c) != len(key) {
			return nil, fmt.Errorf("%w: component %d has %d bytes, component 1 has %d; all must be the same length", ErrKeyLength, i+1, len(c), len(key))
		}
		for j := range i {
			if bytes.Equal(c, components[j]) {
				return nil, fmt.Errorf("%w: components %d and %d are identical (the same file twice?); each custodian's component must be their own", keyring.ErrWeakKey, j+1, i+1)
			}
		}
		for j := range key {
			key[j] ^= c[j]
		}
	}
	return key, nil
}

// RemoveSource overwrites the file at path with zeros, syncs it and removes
// it. Call it only after the key is in the device and its KCV matched.
// (On copy-on-write or journaling file systems the old blocks may survive;
// the overwrite is best effort, the removal is not.)
func RemoveSource(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err == nil {
		_, err = f.WriteAt(make([]byte, st.Size()), 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("overwrite %s: %w", path, err)
	}
	return os.Remove(path)
}

// NewRandomKey returns bits/8 random bytes from crypto/rand.
func NewRandomKey(bits int) ([]byte, error) {
	if bits != 128 && bits != 192 && bits != 256 {
		return nil, fmt.Errorf("%w: AES key size must be 128, 192 or 256 bits, got %d", ErrKeyLength, bits)
	}
	key := make([]byte, bits/8)
	_, err := rand.Read(key)
	return key, err
}
