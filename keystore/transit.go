package keystore

import (
	"context"
	"fmt"
	"io"

	"github.com/keyward/keyward/keyring"
)

// Transit ciphertexts and file streams: sealed in the device under the
// active master key for a caller to keep, not stored in the database.

// transitContext keeps a transit ciphertext apart from a stored record:
// one sealed for context "db/password" cannot pass for the record of that
// name.
func transitContext(context string) string { return "transit\x00" + context }

// Seal encrypts plaintext in the device under the active master key, bound
// to context, in the record format (docs/FORMAT.md), for a caller to keep:
// the server's transit encryption. The encryption is counted against the
// key's nonce limit.
func (vt *Vault) Seal(ctx context.Context, plaintext []byte, context string) ([]byte, error) {
	v, k, err := vt.activeMaster()
	if err != nil {
		return nil, err
	}
	blob, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, transitContext(context), plaintext)
	if err != nil {
		return nil, err
	}
	if err := vt.store.countEncryptions(ctx, string(keyring.Master), v, 1); err != nil {
		return nil, err
	}
	return blob, nil
}

// SealedSize is the size of what Seal returns for n bytes of plaintext.
func SealedSize(n int64) int64 { return n + HeaderSize + sealedOver }

// Unseal decrypts what Seal returned, with the same context. A tampered
// ciphertext or another context is hsm.ErrAuthentication, naming the key
// version and KCV.
func (vt *Vault) Unseal(ctx context.Context, blob []byte, context string) ([]byte, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, err
	}
	if h.Kind != KindRecord {
		return nil, fmt.Errorf("%w: a file stream, not a transit ciphertext", ErrFormat)
	}
	k, err := vt.masterFor(h)
	if err != nil {
		return nil, err
	}
	pt, err := openRecord(ctx, k.key, blob, transitContext(context))
	if err != nil {
		return nil, fmt.Errorf("master key v%d (KCV %s): %w: tampered, or sealed with another context", h.KeyVersion, h.KCV, err)
	}
	return pt, nil
}

// EncryptStream encrypts r to w with the active master key (see
// docs/FORMAT.md); context binds the ciphertext like a record's name.
func (vt *Vault) EncryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
	v, k, err := vt.activeMaster()
	if err != nil {
		return err
	}
	chunks, err := sealStream(ctx, k.key, Header{Kind: KindStream, KeyVersion: v, KCV: k.kcv}, context, r, w)
	if chunks > 0 {
		if cerr := vt.store.countEncryptions(ctx, string(keyring.Master), v, chunks); err == nil {
			err = cerr
		}
	}
	return err
}

// DecryptStream decrypts what EncryptStream wrote. Plaintext reaches w one
// authenticated chunk at a time; on an error the caller must discard what
// was written (the CLI writes to a temporary file and removes it).
func (vt *Vault) DecryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
	hb := make([]byte, HeaderSize+StreamIDSize)
	if _, err := io.ReadFull(r, hb); err != nil {
		return fmt.Errorf("%w: shorter than a header", ErrFormat)
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return err
	}
	if h.Kind != KindStream {
		return fmt.Errorf("%w: a stored record, not a file", ErrFormat)
	}
	k, err := vt.masterFor(h)
	if err != nil {
		return err
	}
	if err := openStream(ctx, k.key, hb, context, r, w); err != nil {
		return fmt.Errorf("master key v%d (KCV %s): %w", h.KeyVersion, h.KCV, err)
	}
	return nil
}
