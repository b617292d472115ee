package node

import (
	"context"
	"io"

	"github.com/keyward/keyward/keystore"
)

// Encrypted shared data: records in the database, transit ciphertexts and
// file streams, all sealed in the device under the active master key.

// Put encrypts value in the device and stores it as record name; the old
// value stays readable until the new one is committed.
func (n *Node) Put(ctx context.Context, name string, value []byte) error {
	return n.vault.Put(ctx, name, value)
}

// Get decrypts record name.
func (n *Node) Get(ctx context.Context, name string) ([]byte, error) {
	return n.vault.Get(ctx, name)
}

// Delete removes record name.
func (n *Node) Delete(ctx context.Context, name string) error {
	return n.vault.Delete(ctx, name)
}

// Records lists the records' metadata (never their values).
func (n *Node) Records(ctx context.Context) ([]keystore.Record, error) {
	return n.vault.Records(ctx)
}

// MaxRecord is the largest record or transit plaintext the node seals.
func (n *Node) MaxRecord() int64 { return n.vault.MaxRecord() }

// Rewrap re-encrypts the records under older master versions with the
// active one, batch by batch (resumable; safe on several nodes at once).
func (n *Node) Rewrap(ctx context.Context, batch int, progress func(done, total int)) (int, error) {
	return n.vault.Rewrap(ctx, batch, progress)
}

// Seal encrypts plaintext bound to context for the caller to keep (transit
// encryption).
func (n *Node) Seal(ctx context.Context, plaintext []byte, context string) ([]byte, error) {
	return n.vault.Seal(ctx, plaintext, context)
}

// Unseal decrypts what Seal returned, with the same context.
func (n *Node) Unseal(ctx context.Context, sealed []byte, context string) ([]byte, error) {
	return n.vault.Unseal(ctx, sealed, context)
}

// EncryptStream encrypts r to w, a file of any size, bound to context.
func (n *Node) EncryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
	return n.vault.EncryptStream(ctx, r, w, context)
}

// DecryptStream decrypts what EncryptStream wrote; on an error the caller
// must discard what reached w.
func (n *Node) DecryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
	return n.vault.DecryptStream(ctx, r, w, context)
}

// TokenRecord is the database's record of token id (never the token).
func (n *Node) TokenRecord(ctx context.Context, id string) (keystore.TokenRecord, error) {
	return n.store.Token(ctx, id)
}
