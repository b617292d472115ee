package keystore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// Vault is the shared database bound to one device's keys: what a node
// encrypts, decrypts and rotates with. Making a Vault reconciles the two:
// every key the database registers (and has not retired) must be in the
// device with the same KCV, so a node loaded with another master key stops
// at once instead of producing garbage or decryption errors later.
type Vault struct {
	store     *Store
	ring      *keyring.Ring
	maxRecord int64 // largest value Put takes

	mu      sync.Mutex
	master  map[int]masterKey // by version, found once
	active  int               // active master version, 0 if none
	missing []KeyRecord       // registered, not retired, not in the device
	retired map[int]bool      // retired master versions
}

type masterKey struct {
	key   *hsm.Key
	kcv   string
	state string
}

// VaultOptions tune a Vault; zero values take the defaults.
type VaultOptions struct {
	// Joining makes a Vault for a node that is being loaded: registered
	// keys may still be missing from its device (Missing lists them), so
	// that they can be imported. A different key under a registered label
	// is refused all the same.
	Joining bool
	// MaxRecord is the largest value Put takes, in bytes; default
	// DefaultMaxRecord.
	MaxRecord int64
}

// NewVault reconciles ring with store and returns the vault. A registered
// key missing from the device is ErrKeyMissing (unless o.Joining); a
// different key under a registered label is ErrKeyMismatch.
func NewVault(ctx context.Context, store *Store, ring *keyring.Ring, o VaultOptions) (*Vault, error) {
	if o.MaxRecord <= 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	vt := &Vault{store: store, ring: ring, maxRecord: o.MaxRecord}
	if err := vt.Reconcile(ctx); err != nil {
		return nil, err
	}
	if !o.Joining {
		if err := vt.CheckComplete(); err != nil {
			return nil, err
		}
	}
	return vt, nil
}

// Missing lists the registered keys this node's device lacks.
func (vt *Vault) Missing() []KeyRecord {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return append([]KeyRecord(nil), vt.missing...)
}

// CheckComplete is ErrKeyMissing, naming the first registered key the
// device lacks (as of the last Reconcile), or nil.
func (vt *Vault) CheckComplete() error {
	if m := vt.Missing(); len(m) > 0 {
		return vt.missingErr(m[0])
	}
	return nil
}

func (vt *Vault) missingErr(r KeyRecord) error {
	return fmt.Errorf("%w: %s key v%d (KCV %s) is registered in %s but not in token %q; import the same key (the same hex or shares) on this node",
		ErrKeyMissing, r.Role, r.Version, r.KCV, vt.store.Where(), vt.ring.Token().Label())
}

// Store is the vault's database.
func (vt *Vault) Store() *Store { return vt.store }

// Ring is the vault's device keys.
func (vt *Vault) Ring() *keyring.Ring { return vt.ring }

// Reconcile checks every registered key against the device, caches the
// master keys and notes the missing ones.
func (vt *Vault) Reconcile(ctx context.Context) error {
	regs, err := vt.store.Keys(ctx)
	if err != nil {
		return err
	}
	master := map[int]masterKey{}
	retired := map[int]bool{}
	active := 0
	var missing []KeyRecord
	for _, r := range regs {
		if r.State == StateRetired {
			if r.Role == string(keyring.Master) {
				retired[r.Version] = true
			}
			continue
		}
		role, err := keyring.ParseRole(r.Role)
		if err != nil {
			return fmt.Errorf("%w: registry names unknown role %q", ErrKeyMismatch, r.Role)
		}
		k, e, err := vt.ring.Get(ctx, role, r.Version)
		if errors.Is(err, keyring.ErrNoKey) {
			missing = append(missing, r)
			continue
		}
		if err != nil {
			return err
		}
		if e.KCV != r.KCV {
			return fmt.Errorf("%w: %s key v%d: this device holds KCV %s, the database expects KCV %s", ErrKeyMismatch, r.Role, r.Version, e.KCV, r.KCV)
		}
		if role == keyring.Master {
			master[r.Version] = masterKey{key: k, kcv: r.KCV, state: r.State}
			if r.State == StateActive {
				active = r.Version
			}
		}
	}
	vt.mu.Lock()
	vt.master, vt.active, vt.missing, vt.retired = master, active, missing, retired
	vt.mu.Unlock()
	return nil
}

// activeMaster is the key new data is encrypted with.
func (vt *Vault) activeMaster() (int, masterKey, error) {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	for _, m := range vt.missing {
		if m.Role == string(keyring.Master) && m.State == StateActive {
			return 0, masterKey{}, vt.missingErr(m)
		}
	}
	if vt.active == 0 {
		return 0, masterKey{}, fmt.Errorf("%w: the registry in %s has no active master key", ErrNoActiveKey, vt.store.Where())
	}
	return vt.active, vt.master[vt.active], nil
}

// masterFor returns the key of version v, checking the KCV a ciphertext
// names against the device's.
func (vt *Vault) masterFor(h Header) (masterKey, error) {
	vt.mu.Lock()
	k, ok := vt.master[h.KeyVersion]
	retired := vt.retired[h.KeyVersion]
	vt.mu.Unlock()
	if retired {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d (KCV %s), which was retired: nothing encrypted under it can be decrypted any more", ErrKeyRetired, h.KeyVersion, h.KCV)
	}
	if !ok {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d (KCV %s), which this node does not hold (retired or never registered)", ErrKeyMissing, h.KeyVersion, h.KCV)
	}
	if k.kcv != h.KCV {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d KCV %s, this device's master v%d has KCV %s", ErrKeyMismatch, h.KeyVersion, h.KCV, h.KeyVersion, k.kcv)
	}
	return k, nil
}
