package node

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// KeySpec is what a generated key is: Bits for an AES role key (master,
// join), Type for a signing key pair, and for either whether it may move
// to other nodes' devices.
type KeySpec struct {
	Bits   int             // 128, 192 (master only) or 256; default 256
	Type   hsm.KeyPairType // signing only; default ec-p256
	Policy hsm.Policy      // default local
}

func (s *KeySpec) defaults() {
	if s.Policy == "" {
		s.Policy = hsm.PolicyLocal
	}
	if s.Bits == 0 {
		s.Bits = 256
	}
	if s.Type == "" {
		s.Type = hsm.ECP256
	}
}

// GenerateKey makes the next version of role inside the device. An AES
// role key (master, join) is registered as the active version; a signing
// key pair is the newest, and signs from then on.
func (n *Node) GenerateKey(ctx context.Context, role keyring.Role, spec KeySpec) (keyring.Entry, error) {
	spec.defaults()
	if role == keyring.Signing {
		return n.ring.GenerateSigning(ctx, spec.Type, spec.Policy)
	}
	return n.vault.Generate(ctx, role, spec.Bits, spec.Policy)
}

// RotateKey makes a new active version of an AES role key in the device,
// of spec.Policy or, left empty, of the active version's policy; the older
// versions become decrypt-only. After a master key's rotation, Rewrap
// moves the records onto it.
func (n *Node) RotateKey(ctx context.Context, role keyring.Role, spec KeySpec) (keyring.Entry, error) {
	policy := spec.Policy // empty: the active version's
	spec.defaults()
	return n.vault.Rotate(ctx, role, spec.Bits, policy)
}

// RetireKey marks version v of role retired: refused while it is active
// or records still use it. What stops working is RetireEffect's to say.
func (n *Node) RetireKey(ctx context.Context, role keyring.Role, v int) error {
	return n.vault.Retire(ctx, role, v)
}

// RetireEffect says what stops working once version v of role is retired:
// the database's records were checked; files and tokens outside it cannot
// be.
func RetireEffect(role keyring.Role, v int) string {
	switch role {
	case keyring.Master:
		return fmt.Sprintf("files encrypted under master key v%d cannot be decrypted any more (decrypting them says \"retired\"); the database's records were checked, files outside it cannot be", v)
	case keyring.Signing:
		return fmt.Sprintf("signing key pair v%d signs no more tokens (tokens of its algorithm need another unretired key pair of its type); it stays in the JWKS, and its tokens verify, until the last token it signed has expired", v)
	}
	return fmt.Sprintf("tokens signed with %s key v%d no longer verify", role, v)
}

// DestroyCheck is the key DestroyKey would destroy, and what stops
// working when it goes ("" when nothing does).
type DestroyCheck struct {
	Entry  keyring.Entry
	Effect string
}

// CheckDestroy says whether DestroyKey would refuse version v of role,
// without destroying anything: for asking before a confirmation.
func (n *Node) CheckDestroy(ctx context.Context, role keyring.Role, v int) (DestroyCheck, error) {
	if err := n.vault.CheckDestroy(ctx, role, v); err != nil {
		return DestroyCheck{}, err
	}
	_, e, err := n.ring.Get(ctx, role, v)
	if err != nil || role != keyring.Signing {
		return DestroyCheck{Entry: e}, err
	}
	live, err := n.vault.SigningLiveUntil(ctx, v)
	if err != nil || live.IsZero() {
		return DestroyCheck{Entry: e}, err
	}
	return DestroyCheck{Entry: e, Effect: fmt.Sprintf("tokens it signed stop verifying at once (some may be valid until %s)", live.UTC().Format(time.RFC3339))}, nil
}

// DestroyKey deletes version v of role from the device for good. A
// version the registry knows must be retired first (keystore.Vault.Destroy
// holds that rule).
func (n *Node) DestroyKey(ctx context.Context, role keyring.Role, v int) (keyring.Entry, error) {
	return n.vault.Destroy(ctx, role, v)
}

// Import puts value (16, 24 or 32 bytes; cleared afterwards) into the
// device, local or transferable, and registers it: the version the
// registry already gives that key (imported on another node), else the
// next one, active. With expectKCV set, a key whose KCV differs is
// refused and nothing is imported.
func (n *Node) Import(ctx context.Context, role keyring.Role, value []byte, policy hsm.Policy, expectKCV string) (keyring.Entry, error) {
	if policy == "" {
		policy = hsm.PolicyLocal
	}
	return n.vault.Import(ctx, role, value, policy, expectKCV)
}

// ImportOptions say how a key from a file, a system.yaml, components or
// shares is imported.
type ImportOptions struct {
	Policy hsm.Policy // default local
	// Cluster refuses a key that differs from the registry's active key of
	// its role: a bootstrap file on one node of a cluster must hold the
	// cluster's key, not start a new version of it.
	Cluster bool
}

// importer is the node as a ceremony.Importer.
type importer struct {
	n *Node
	o ImportOptions
}

func (i importer) Import(ctx context.Context, role keyring.Role, value []byte, expectKCV string) (keyring.Entry, error) {
	if i.o.Cluster {
		kcv, err := hsm.ComputeKCV(value)
		if err != nil {
			clear(value)
			return keyring.Entry{}, err
		}
		regs, err := i.n.store.Keys(ctx)
		if err != nil {
			clear(value)
			return keyring.Entry{}, err
		}
		for _, r := range regs {
			if r.Role == string(role) && r.State == keystore.StateActive && r.KCV != kcv {
				clear(value)
				return keyring.Entry{}, fmt.Errorf("%w: the cluster's active %s key is v%d with KCV %s, this key has KCV %s; nothing was imported",
					keystore.ErrKeyMismatch, role, r.Version, r.KCV, kcv)
			}
		}
	}
	return i.n.Import(ctx, role, value, i.o.Policy, expectKCV)
}

var _ ceremony.Importer = importer{}

// ImportHexFile imports the hex key in path ("-": stdin) as role; with
// remove, the file is overwritten and removed once the key is in the
// device with a matching KCV, and left exactly as it was on any failure.
func (n *Node) ImportHexFile(ctx context.Context, role keyring.Role, o ImportOptions, path string, stdin io.Reader, expectKCV string, remove bool) (keyring.Entry, error) {
	return ceremony.ImportHexFile(ctx, importer{n, o}, role, path, stdin, expectKCV, remove)
}

// ImportSystemYAML imports the masterKey and/or joinKey of a system.yaml
// (every role asked for must be there, or nothing is imported); with
// scrub the file is rewritten without them.
func (n *Node) ImportSystemYAML(ctx context.Context, roles []keyring.Role, o ImportOptions, path string, scrub bool) ([]keyring.Entry, error) {
	return ceremony.ImportSystemYAML(ctx, importer{n, o}, roles, path, scrub)
}

// ImportComponents XORs split-knowledge components into the key and
// imports it; seen is told each component's own KCV as it is read.
func (n *Node) ImportComponents(ctx context.Context, role keyring.Role, o ImportOptions, paths []string, expectKCV string, remove bool, seen func(i int, path, kcv string)) (keyring.Entry, error) {
	return ceremony.ImportComponents(ctx, importer{n, o}, role, paths, expectKCV, remove, seen)
}

// CombineShares rebuilds a key from Shamir shares and imports it as role:
// nothing is imported unless its KCV is the one the shares record (and
// expectKCV, when given).
func (n *Node) CombineShares(ctx context.Context, role keyring.Role, o ImportOptions, shares []ceremony.ShareInfo, expectKCV string) (keyring.Entry, error) {
	e, err := ceremony.CombineAndImport(ctx, importer{n, o}, role, shares, expectKCV)
	if err != nil {
		return keyring.Entry{}, fmt.Errorf("%w; nothing was imported", err)
	}
	return e, nil
}

// ListedKey is a key in the device with what the registry says of it.
type ListedKey struct {
	keyring.Entry
	State          string `json:"state,omitempty"`
	Encryptions    int64  `json:"encryptions"`
	Records        int    `json:"records"`
	NearNonceLimit bool   `json:"near_nonce_limit"`
}

// KeyList is the device's keyward keys joined with the registry, and the
// registered keys the device lacks.
type KeyList struct {
	Keys    []ListedKey
	Missing []keystore.KeyRecord
}

// ListKeys lists keyward's keys in the device with their registry state,
// use and nonce warnings, and what the registry holds that the device
// lacks.
func (n *Node) ListKeys(ctx context.Context) (KeyList, error) {
	entries, err := n.ring.List(ctx)
	if err != nil {
		return KeyList{}, err
	}
	statuses, err := n.vault.KeyStatuses(ctx)
	if err != nil {
		return KeyList{}, err
	}
	byLabel := map[string]keystore.KeyStatus{}
	for _, s := range statuses {
		byLabel[s.Label] = s
	}
	out := KeyList{Keys: make([]ListedKey, len(entries)), Missing: n.vault.Missing()}
	for i, e := range entries {
		s := byLabel[e.Label]
		out.Keys[i] = ListedKey{Entry: e, State: s.State, Encryptions: s.Encryptions, Records: s.Records, NearNonceLimit: s.NearCap}
	}
	return out, nil
}

// MissingKeys lists the registered keys this node's device lacks (a
// joining node's still to import).
func (n *Node) MissingKeys() []keystore.KeyRecord { return n.vault.Missing() }
