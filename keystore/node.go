package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// Node is one node of the cluster: its device (a keyring) and the shared
// database. Opening a Node reconciles the two: every key the database
// registers (and has not retired) must be in the device with the same KCV,
// so a node loaded with another master key stops at once instead of
// producing garbage or decryption errors later.
type Node struct {
	store *Store
	ring  *keyring.Ring

	mu      sync.Mutex
	master  map[int]masterKey // by version, found once
	active  int               // active master version, 0 if none
	missing []KeyRecord       // registered, not retired, not in the device
	retired map[int]bool      // retired master versions

	maxRecord atomic.Int64 // largest value Put takes; 0: DefaultMaxRecord
}

type masterKey struct {
	key   *hsm.Key
	kcv   string
	state string
}

// NewNode reconciles ring with store and returns the node. A registered
// key missing from the device is ErrKeyMissing; a different key under a
// registered label is ErrKeyMismatch.
func NewNode(ctx context.Context, store *Store, ring *keyring.Ring) (*Node, error) {
	n, err := NewJoiningNode(ctx, store, ring)
	if err != nil {
		return nil, err
	}
	if err := n.CheckComplete(); err != nil {
		return nil, err
	}
	return n, nil
}

// NewJoiningNode is NewNode for a node that is being loaded: registered keys
// may still be missing from its device (Missing lists them), so that they
// can be imported. A different key under a registered label is still
// refused.
func NewJoiningNode(ctx context.Context, store *Store, ring *keyring.Ring) (*Node, error) {
	n := &Node{store: store, ring: ring}
	if err := n.Reconcile(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// Missing lists the registered keys this node's device lacks.
func (n *Node) Missing() []KeyRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]KeyRecord(nil), n.missing...)
}

// CheckComplete is ErrKeyMissing, naming the first registered key the
// device lacks (as of the last Reconcile), or nil.
func (n *Node) CheckComplete() error {
	if m := n.Missing(); len(m) > 0 {
		return n.missingErr(m[0])
	}
	return nil
}

func (n *Node) missingErr(r KeyRecord) error {
	return fmt.Errorf("%w: %s key v%d (KCV %s) is registered in %s but not in token %q; import the same key (the same hex or shares) on this node",
		ErrKeyMissing, r.Role, r.Version, r.KCV, n.store.Where(), n.ring.Token().Label())
}

// Store is the node's database.
func (n *Node) Store() *Store { return n.store }

// Ring is the node's device keys.
func (n *Node) Ring() *keyring.Ring { return n.ring }

// Reconcile checks every registered key against the device, caches the
// master keys and notes the missing ones.
func (n *Node) Reconcile(ctx context.Context) error {
	regs, err := n.store.Keys(ctx)
	if err != nil {
		return err
	}
	master := map[int]masterKey{}
	retired := map[int]bool{}
	active := 0
	var missing []KeyRecord
	for _, r := range regs {
		if r.State == StateRetired {
			retired[r.Version] = r.Role == string(keyring.Master)
			continue
		}
		role, err := keyring.ParseRole(r.Role)
		if err != nil {
			return fmt.Errorf("%w: registry names unknown role %q", ErrKeyMismatch, r.Role)
		}
		k, e, err := n.ring.Get(ctx, role, r.Version)
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
	n.mu.Lock()
	n.master, n.active, n.missing, n.retired = master, active, missing, retired
	n.mu.Unlock()
	return nil
}

// activeMaster is the key new data is encrypted with.
func (n *Node) activeMaster() (int, masterKey, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.missing {
		if m.Role == string(keyring.Master) && m.State == StateActive {
			return 0, masterKey{}, n.missingErr(m)
		}
	}
	if n.active == 0 {
		return 0, masterKey{}, fmt.Errorf("%w: no active master key in %s; run keyward key generate --role master (or key import)", ErrKeyState, n.store.Where())
	}
	return n.active, n.master[n.active], nil
}

// masterFor returns the key of version v, checking the KCV a ciphertext
// names against the device's.
func (n *Node) masterFor(h Header) (masterKey, error) {
	n.mu.Lock()
	k, ok := n.master[h.KeyVersion]
	retired := n.retired[h.KeyVersion]
	n.mu.Unlock()
	if retired {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d (KCV %s), which was retired (keyward key retire): nothing encrypted under it can be decrypted any more", ErrKeyRetired, h.KeyVersion, h.KCV)
	}
	if !ok {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d (KCV %s), which this node does not hold (retired or never registered)", ErrKeyMissing, h.KeyVersion, h.KCV)
	}
	if k.kcv != h.KCV {
		return masterKey{}, fmt.Errorf("%w: encrypted with master key v%d KCV %s, this device's master v%d has KCV %s", ErrKeyMismatch, h.KeyVersion, h.KCV, h.KeyVersion, k.kcv)
	}
	return k, nil
}

// nextVersion is one above both the registry's and the device's highest.
func (n *Node) nextVersion(ctx context.Context, role keyring.Role) (int, error) {
	v, err := n.ring.NextVersion(ctx, role)
	if err != nil {
		return 0, err
	}
	regs, err := n.store.Keys(ctx)
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
func (n *Node) Generate(ctx context.Context, role keyring.Role, bits int) (keyring.Entry, error) {
	v, err := n.nextVersion(ctx, role)
	if err != nil {
		return keyring.Entry{}, err
	}
	e, err := n.ring.GenerateVersion(ctx, role, v, bits)
	if err != nil {
		return keyring.Entry{}, err
	}
	return e, n.registerEntry(ctx, e)
}

// Import puts key into the device and registers it. A key the registry
// already knows (same role and KCV: imported on another node) takes that
// version, so every node labels it alike; a new key becomes the next
// version and active.
func (n *Node) Import(ctx context.Context, role keyring.Role, key []byte, expectKCV string) (keyring.Entry, error) {
	defer clear(key)
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		return keyring.Entry{}, err
	}
	regs, err := n.store.Keys(ctx)
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
		if v, err = n.nextVersion(ctx, role); err != nil {
			return keyring.Entry{}, err
		}
	}
	e, err := n.ring.ImportVersion(ctx, role, v, key, expectKCV)
	if err != nil {
		return keyring.Entry{}, err
	}
	return e, n.registerEntry(ctx, e)
}

func (n *Node) registerEntry(ctx context.Context, e keyring.Entry) error {
	err := n.store.register(ctx, KeyRecord{Role: string(e.Role), Version: e.Version, Label: e.Label, KCV: e.KCV, Origin: string(e.Origin)})
	if err != nil {
		return fmt.Errorf("%s is in the device but not registered: %w", e.Label, err)
	}
	return n.Reconcile(ctx)
}

// Rotate makes a new master (or join) version in the device, active; the
// older versions become decrypt-only. Follow with Rewrap.
func (n *Node) Rotate(ctx context.Context, role keyring.Role, bits int) (keyring.Entry, error) {
	e, err := n.Generate(ctx, role, bits)
	if err == nil {
		err = n.store.Audit(ctx, "key.rotate", e.Label, "KCV "+e.KCV)
	}
	return e, err
}

// Retire marks version v of role retired. It refuses the active version
// and any version records still use. Once retired, the device object may
// be destroyed.
func (n *Node) Retire(ctx context.Context, role keyring.Role, v int) error {
	regs, err := n.store.Keys(ctx)
	if err != nil {
		return err
	}
	var reg *KeyRecord
	for i := range regs {
		if regs[i].Role == string(role) && regs[i].Version == v {
			reg = &regs[i]
		}
	}
	if reg == nil {
		return fmt.Errorf("%w: %s key v%d is not registered", ErrKeyState, role, v)
	}
	if reg.State == StateActive {
		return fmt.Errorf("%w: %s key v%d is the active version; rotate first", ErrKeyInUse, role, v)
	}
	if role == keyring.Master {
		counts, err := n.store.countByVersion(ctx)
		if err != nil {
			return err
		}
		if c := counts[v]; c > 0 {
			return fmt.Errorf("%w: %d records still use master key v%d; run keyward store rewrap first", ErrKeyInUse, c, v)
		}
	}
	if err := n.store.setState(ctx, string(role), v, StateRetired); err != nil {
		return err
	}
	if err := n.store.Audit(ctx, "key.retire", reg.Label, ""); err != nil {
		return err
	}
	return n.Reconcile(ctx)
}

// CheckDestroy refuses to destroy a registered version that is not retired.
func (n *Node) CheckDestroy(ctx context.Context, role keyring.Role, v int) error {
	regs, err := n.store.Keys(ctx)
	if err != nil {
		return err
	}
	for _, r := range regs {
		if r.Role == string(role) && r.Version == v && r.State != StateRetired {
			return fmt.Errorf("%w: %s key v%d is %s in %s; retire it first (keyward key retire)", ErrKeyInUse, role, v, r.State, n.store.Where())
		}
	}
	return nil
}

// DefaultMaxRecord is the largest record Put takes unless SetMaxRecord
// says otherwise: a record is read, sealed and stored whole, in memory.
const DefaultMaxRecord = 16 << 20

// SetMaxRecord sets the largest value Put takes, in bytes.
func (n *Node) SetMaxRecord(max int64) { n.maxRecord.Store(max) }

// MaxRecord is the largest value Put takes, in bytes.
func (n *Node) MaxRecord() int64 {
	if max := n.maxRecord.Load(); max > 0 {
		return max
	}
	return DefaultMaxRecord
}

// maxRecordName bounds a record name, in bytes.
const maxRecordName = 1024

// CheckRecordName refuses a record name that is empty, longer than 1024
// bytes, not UTF-8, or holds a control character or a bidirectional
// override: names are printed to terminals and logs, where those would
// act instead of show.
func CheckRecordName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: the name is empty", ErrRecordName)
	case len(name) > maxRecordName:
		return fmt.Errorf("%w: the name is %d bytes, over %d", ErrRecordName, len(name), maxRecordName)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: the name is not valid UTF-8", ErrRecordName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return fmt.Errorf("%w: the name holds the control character %U", ErrRecordName, r)
		}
	}
	return nil
}

// Put encrypts value in the device under the active master key and stores
// it as name, in one transaction with the encryption count and the audit
// entry: the old value stays readable until the new one is committed.
func (n *Node) Put(ctx context.Context, name string, value []byte) error {
	if err := CheckRecordName(name); err != nil {
		return err
	}
	if max := n.MaxRecord(); int64(len(value)) > max {
		return fmt.Errorf("%w: %d bytes, over the limit of %d (--max-record)", ErrTooLarge, len(value), max)
	}
	v, k, err := n.activeMaster()
	if err != nil {
		return err
	}
	blob, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, name, value)
	if err != nil {
		return err
	}
	return n.store.putWithCount(ctx, name, v, blob)
}

// Get decrypts record name. A tampered record, a record moved under another
// name, or a key mismatch is an error naming the key version and KCV.
func (n *Node) Get(ctx context.Context, name string) ([]byte, error) {
	_, blob, err := n.store.getRecord(ctx, name)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return nil, err
	}
	return n.openBlob(ctx, name, blob)
}

func (n *Node) openBlob(ctx context.Context, name string, blob []byte) ([]byte, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", name, err)
	}
	if h.Kind != KindRecord {
		return nil, fmt.Errorf("record %q: %w: a stream, not a record", name, ErrFormat)
	}
	k, err := n.masterFor(h)
	if err != nil {
		return nil, fmt.Errorf("record %q: %w", name, err)
	}
	pt, err := openRecord(ctx, k.key, blob, name)
	if err != nil {
		return nil, fmt.Errorf("record %q (master key v%d, KCV %s): %w: tampered, or stored under another name", name, h.KeyVersion, h.KCV, err)
	}
	return pt, nil
}

// transitContext keeps a transit ciphertext apart from a stored record:
// one sealed for context "db/password" cannot pass for the record of that
// name.
func transitContext(context string) string { return "transit\x00" + context }

// Seal encrypts plaintext in the device under the active master key, bound
// to context, in the record format (docs/FORMAT.md), for a caller to keep:
// the server's transit encryption. The encryption is counted against the
// key's nonce limit.
func (n *Node) Seal(ctx context.Context, plaintext []byte, context string) ([]byte, error) {
	v, k, err := n.activeMaster()
	if err != nil {
		return nil, err
	}
	blob, err := sealRecord(ctx, k.key, Header{Kind: KindRecord, KeyVersion: v, KCV: k.kcv}, transitContext(context), plaintext)
	if err != nil {
		return nil, err
	}
	if err := n.store.countEncryptions(ctx, string(keyring.Master), v, 1); err != nil {
		return nil, err
	}
	return blob, nil
}

// Unseal decrypts what Seal returned, with the same context. A tampered
// ciphertext or another context is hsm.ErrAuthentication, naming the key
// version and KCV.
func (n *Node) Unseal(ctx context.Context, blob []byte, context string) ([]byte, error) {
	h, err := ParseHeader(blob)
	if err != nil {
		return nil, err
	}
	if h.Kind != KindRecord {
		return nil, fmt.Errorf("%w: a file stream, not a transit ciphertext", ErrFormat)
	}
	k, err := n.masterFor(h)
	if err != nil {
		return nil, err
	}
	pt, err := openRecord(ctx, k.key, blob, transitContext(context))
	if err != nil {
		return nil, fmt.Errorf("master key v%d (KCV %s): %w: tampered, or sealed with another context", h.KeyVersion, h.KCV, err)
	}
	return pt, nil
}

// Delete removes record name.
func (n *Node) Delete(ctx context.Context, name string) error {
	if err := n.store.deleteRecord(ctx, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		return err
	}
	return n.store.Audit(ctx, "store.delete", name, "")
}

// EncryptStream encrypts r to w with the active master key (see
// docs/FORMAT.md); context binds the ciphertext like a record's name.
func (n *Node) EncryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
	v, k, err := n.activeMaster()
	if err != nil {
		return err
	}
	chunks, err := sealStream(ctx, k.key, Header{Kind: KindStream, KeyVersion: v, KCV: k.kcv}, context, r, w)
	if chunks > 0 {
		if cerr := n.store.countEncryptions(ctx, string(keyring.Master), v, chunks); err == nil {
			err = cerr
		}
	}
	return err
}

// DecryptStream decrypts what EncryptStream wrote. Plaintext reaches w one
// authenticated chunk at a time; on an error the caller must discard what
// was written (the CLI writes to a temporary file and removes it).
func (n *Node) DecryptStream(ctx context.Context, r io.Reader, w io.Writer, context string) error {
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
	k, err := n.masterFor(h)
	if err != nil {
		return err
	}
	if err := openStream(ctx, k.key, hb, context, r, w); err != nil {
		return fmt.Errorf("master key v%d (KCV %s): %w", h.KeyVersion, h.KCV, err)
	}
	return nil
}

// KeyStatus is a registered key with what the registry knows of its use.
type KeyStatus struct {
	KeyRecord
	Records int  `json:"records"`
	NearCap bool `json:"near_nonce_limit"`
}

// KeyStatuses lists the registry with record counts and nonce warnings.
func (n *Node) KeyStatuses(ctx context.Context) ([]KeyStatus, error) {
	regs, err := n.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := n.store.countByVersion(ctx)
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
