package keystore

import (
	"context"
	"errors"
	"fmt"
)

// Records: values sealed in the device under the active master key and
// stored by name, each bound to its name (docs/FORMAT.md).

// DefaultMaxRecord is the largest record Put takes unless
// VaultOptions.MaxRecord says otherwise: a record is read, sealed and
// stored whole, in memory.
const DefaultMaxRecord = 16 << 20

// MaxRecord is the largest value Put takes, in bytes.
func (vt *Vault) MaxRecord() int64 { return vt.maxRecord }

// Put encrypts value in the device under the active master key and stores
// it as name, which must pass the name rule (CheckRecordName), in one
// transaction with the encryption count and the audit
// entry: the old value stays readable until the new one is committed.
func (vt *Vault) Put(ctx context.Context, name string, value []byte) error {
	if err := CheckRecordName(name); err != nil {
		return err
	}
	if max := vt.MaxRecord(); int64(len(value)) > max {
		return fmt.Errorf("%w: %d bytes, over the limit of %d", ErrTooLarge, len(value), max)
	}
	v, k, err := vt.activeMaster()
	if err != nil {
		return err
	}
	blob, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, name, value)
	if err != nil {
		return err
	}
	return vt.store.putWithCount(ctx, name, v, blob)
}

// Get decrypts record name, any name stored (the name rule is for
// writes: a record from before it stays readable). A tampered record, a record moved under another
// name, or a key mismatch is an error naming the key version and KCV.
func (vt *Vault) Get(ctx context.Context, name string) ([]byte, error) {
	_, blob, err := vt.store.getRecord(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return nil, err
	}
	return vt.openBlob(ctx, name, blob)
}

func (vt *Vault) openBlob(ctx context.Context, name string, blob []byte) ([]byte, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", name, err)
	}
	if h.Kind != KindRecord {
		return nil, fmt.Errorf("record %q: %w: a stream, not a record", name, ErrFormat)
	}
	k, err := vt.masterFor(h)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", name, err)
	}
	pt, err := openRecord(ctx, k.key, blob, name)
	if err != nil {
		return nil, fmt.Errorf("record %q (master key v%d, KCV %s): %w: tampered, or stored under another name", name, h.KeyVersion, h.KCV, err)
	}
	return pt, nil
}

// Delete removes record name, any name stored, as Get reads it.
func (vt *Vault) Delete(ctx context.Context, name string) error {
	if err := vt.store.deleteRecord(ctx, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return err
	}
	return vt.store.Audit(ctx, "store.delete", name, "")
}

// Records lists the records' metadata by name (never their values).
func (vt *Vault) Records(ctx context.Context) ([]Record, error) { return vt.store.Records(ctx) }
