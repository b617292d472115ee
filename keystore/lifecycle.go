package keystore

import (
	"context"
	"fmt"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// A key version's life: generated or imported into the device and
// registered active; decrypt-only once a newer version is; retired once no
// record uses it; then destroyed. Every rule that guards that life lives
// here, so no caller of the library can skip one.

// nextVersion is one above both the registry's and the device's highest.
func (vt *Vault) nextVersion(ctx context.Context, role keyring.Role) (int, error) {
	v, err := vt.ring.NextVersion(ctx, role)
	if err != nil {
		return 0, err
	}
	regs, err := vt.store.Keys(ctx)
	if err != nil {
		return 0, err
	}
	for _, r := range regs {
		if r.Role == string(role) && r.Version >= v {
			v = r.Version + 1
		}
	}
	return v, nil
}

// Generate makes the next version of role in the device and registers it
// as active. (Generated keys cannot leave the device: in an HA cluster use
// Import on every node instead.)
func (vt *Vault) Generate(ctx context.Context, role keyring.Role, bits int, policy hsm.Policy) (keyring.Entry, error) {
	v, err := vt.nextVersion(ctx, role)
	if err != nil {
		return keyring.Entry{}, err
	}
	e, err := vt.ring.GenerateVersion(ctx, role, v, bits, policy)
	if err != nil {
		return keyring.Entry{}, err
	}
	return e, vt.registerEntry(ctx, e)
}

// Import puts key into the device and registers it. A key the registry
// already knows (same role and KCV: imported on another node) takes that
// version, so every node labels it alike; a new key becomes the next
// version and active.
func (vt *Vault) Import(ctx context.Context, role keyring.Role, key []byte, policy hsm.Policy, expectKCV string) (keyring.Entry, error) {
	defer clear(key)
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		return keyring.Entry{}, err
	}
	regs, err := vt.store.Keys(ctx)
	if err != nil {
		return keyring.Entry{}, err
	}
	v := 0
	for _, r := range regs {
		if r.Role == string(role) && r.KCV == kcv {
			v = r.Version
		}
	}
	if v == 0 {
		if v, err = vt.nextVersion(ctx, role); err != nil {
			return keyring.Entry{}, err
		}
	}
	e, err := vt.ring.ImportVersion(ctx, role, v, key, policy, expectKCV)
	if err != nil {
		return keyring.Entry{}, err
	}
	return e, vt.registerEntry(ctx, e)
}

func (vt *Vault) registerEntry(ctx context.Context, e keyring.Entry) error {
	err := vt.store.register(ctx, KeyRecord{Role: string(e.Role), Version: e.Version, Label: e.Label, KCV: e.KCV, Origin: string(e.Origin), Policy: string(e.Policy)})
	if err != nil {
		return fmt.Errorf("%s is in the device but not registered: %w", e.Label, err)
	}
	return vt.Reconcile(ctx)
}

// Adopt registers keys the device holds and the registry does not know
// (a database started afresh beside a device with a history): each
// role's newest version becomes active, the others decrypt-only.
func (vt *Vault) Adopt(ctx context.Context, entries []keyring.Entry) error {
	for _, e := range entries {
		if err := vt.registerEntry(ctx, e); err != nil {
			return err
		}
		if err := vt.store.Audit(ctx, "key.adopt", e.Label, "KCV "+e.KCV); err != nil {
			return err
		}
	}
	return nil
}

// Rotate makes a new master (or join) version in the device, active; the
// older versions become decrypt-only. Follow with Rewrap. An empty policy
// is the active version's: a rotation in a cluster stays transferable, so
// the new version reaches every node.
func (vt *Vault) Rotate(ctx context.Context, role keyring.Role, bits int, policy hsm.Policy) (keyring.Entry, error) {
	if policy == "" {
		policy = hsm.PolicyLocal
		regs, err := vt.store.Keys(ctx)
		if err != nil {
			return keyring.Entry{}, err
		}
		for _, r := range regs {
			if r.Role == string(role) && r.State == StateActive && r.Policy != "" {
				policy = hsm.Policy(r.Policy)
			}
		}
	}
	e, err := vt.Generate(ctx, role, bits, policy)
	if err == nil {
		err = vt.store.Audit(ctx, "key.rotate", e.Label, "KCV "+e.KCV)
	}
	return e, err
}

// registered is the registry's record of version v of role, or nil.
func (vt *Vault) registered(ctx context.Context, role keyring.Role, v int) (*KeyRecord, error) {
	regs, err := vt.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	for i := range regs {
		if regs[i].Role == string(role) && regs[i].Version == v {
			return &regs[i], nil
		}
	}
	return nil, nil
}

// Retire marks version v of role retired. It refuses the active version
// and any version records still use. Once retired, the device object may
// be destroyed. A signing key pair is retired at once: it signs no more.
func (vt *Vault) Retire(ctx context.Context, role keyring.Role, v int) error {
	if role == keyring.Signing {
		return vt.retireSigning(ctx, v)
	}
	reg, err := vt.registered(ctx, role, v)
	if err != nil {
		return err
	}
	if reg == nil {
		return fmt.Errorf("%w: %s key v%d is not registered", ErrKeyState, role, v)
	}
	if reg.State == StateActive {
		return fmt.Errorf("%w: %s key v%d is the active version; rotate first", ErrKeyInUse, role, v)
	}
	if role == keyring.Master {
		counts, err := vt.store.countByVersion(ctx)
		if err != nil {
			return err
		}
		if c := counts[v]; c > 0 {
			return fmt.Errorf("%w: %d records still use master key v%d; rewrap them first", ErrKeyInUse, c, v)
		}
	}
	if err := vt.store.setState(ctx, string(role), v, StateRetired); err != nil {
		return err
	}
	if err := vt.store.Audit(ctx, "key.retire", reg.Label, ""); err != nil {
		return err
	}
	return vt.Reconcile(ctx)
}

// CheckDestroy says whether Destroy would refuse version v of role: a
// registered version, or a signing key pair, must be retired first.
// Destroy checks again; this is for asking before a confirmation.
func (vt *Vault) CheckDestroy(ctx context.Context, role keyring.Role, v int) error {
	if v < 1 {
		return fmt.Errorf("%w: name the version to destroy", ErrKeyState)
	}
	if role == keyring.Signing {
		_, err := vt.SigningLiveUntil(ctx, v)
		return err
	}
	reg, err := vt.registered(ctx, role, v)
	if err != nil {
		return err
	}
	if reg != nil && reg.State != StateRetired {
		return fmt.Errorf("%w: %s key v%d is %s in %s; retire it first", ErrKeyInUse, role, v, reg.State, vt.store.Where())
	}
	return nil
}

// Destroy deletes version v of role from the device for good, and returns
// what it was. It refuses a version the registry knows and has not
// retired (CheckDestroy): an active or decrypt-only key still opens data.
// A key the registry does not know (a key left over from a failed import)
// may go.
func (vt *Vault) Destroy(ctx context.Context, role keyring.Role, v int) (keyring.Entry, error) {
	if err := vt.CheckDestroy(ctx, role, v); err != nil {
		return keyring.Entry{}, err
	}
	k, e, err := vt.ring.Get(ctx, role, v)
	if err != nil {
		return keyring.Entry{}, err
	}
	if err := vt.ring.Token().Destroy(ctx, k); err != nil {
		return keyring.Entry{}, err
	}
	if err := vt.store.Audit(ctx, "key.destroy", e.Label, "KCV "+e.KCV); err != nil {
		return e, err
	}
	return e, vt.Reconcile(ctx)
}

// KeyStatus is a registered key with what the registry knows of its use.
type KeyStatus struct {
	KeyRecord
	Records int  `json:"records"`
	NearCap bool `json:"near_nonce_limit"`
}

// KeyStatuses lists the registry with record counts and nonce warnings.
func (vt *Vault) KeyStatuses(ctx context.Context) ([]KeyStatus, error) {
	regs, err := vt.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := vt.store.countByVersion(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyStatus, len(regs))
	for i, r := range regs {
		out[i] = KeyStatus{KeyRecord: r, NearCap: r.Encryptions >= WarnEncryptions}
		if r.Role == string(keyring.Master) {
			out[i].Records = counts[r.Version]
		}
	}
	return out, nil
}
