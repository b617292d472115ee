package cluster

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// Sentinel errors.
var (
	// ErrIdentity is a node identity that is malformed or does not match
	// what the database says of it.
	ErrIdentity = errors.New("node identity")
	// ErrNotMember is a node with no identity yet: keyward node init
	// (or keyward serve, which does it at start) makes one.
	ErrNotMember = errors.New("this node has no node identity yet")
	// ErrFingerprint is a node whose fingerprint is not the one expected:
	// nothing is trusted, accepted or sent.
	ErrFingerprint = errors.New("fingerprint mismatch")
	// ErrNodeState is a node that cannot take part as asked: revoked,
	// or this node itself.
	ErrNodeState = errors.New("node cannot do that")
)

// Cluster is one node's part in moving keys: its identity, the nodes its
// security officer admitted (its device trusts their transfer keys), the
// senders its operator accepted (their signed copies are taken), and the
// copies waiting in the database. Safe for concurrent use; Sync runs one
// at a time, also across the processes of one node (lock.go).
type Cluster struct {
	tok   *hsm.Token
	ring  *keyring.Ring
	store *keystore.Store
	vault *keystore.Vault
	home  string // the node's home directory: its processes' lock

	mu       sync.Mutex // one Sync, Admit or Revoke at a time
	self     *Identity
	signer   *hsm.Signer
	reported string    // the holds last written
	seen     time.Time // when they were
	// mended: since the last DropDuplicateCopies, no label was met
	// twice. False at first, so that a process's first Sync mends what
	// an older keyward left.
	mended bool
}

// New returns the cluster part of a node: its device (ring), database and
// vault, and its home directory, which every keyward process of the node
// shares: they take turns at Sync, Init and Accept through a lock file
// there. An empty home takes no file lock (a device no other process
// uses).
func New(ring *keyring.Ring, store *keystore.Store, vault *keystore.Vault, home string) *Cluster {
	return &Cluster{tok: ring.Token(), ring: ring, store: store, vault: vault, home: home}
}

// identity is this device's node identity, read once; ok is false when
// it has none.
func (c *Cluster) identity(ctx context.Context) (Identity, bool, error) {
	if c.self != nil {
		return *c.self, true, nil
	}
	id, ok, err := readIdentity(ctx, c.tok)
	if err != nil || !ok {
		return Identity{}, false, err
	}
	k, err := c.tok.Find(ctx, SigningKeyLabel)
	if err != nil {
		return Identity{}, false, err
	}
	if c.signer, err = k.Signer(ctx); err != nil {
		return Identity{}, false, err
	}
	c.self = &id
	return id, true, nil
}

// record is this node's database record of id.
func (c *Cluster) record(id Identity) keystore.NodeRecord {
	return keystore.NodeRecord{ID: id.ID, TokenLabel: c.tok.Label(), Manufacturer: c.tok.Manufacturer(), Model: c.tok.Model(),
		Serial: c.tok.Serial(), PublicKey: id.transferDER, SigningKey: id.signingDER, Fingerprint: id.Fingerprint}
}

// Init gives this node its identity, once: a transfer key pair whose
// private half can only unwrap and never leaves the device, and a node
// signing key. It registers the node in the database as pending (a known
// node keeps its state) and returns its record. It needs a device that
// enforces trusted wrapping.
func (c *Cluster) Init(ctx context.Context) (keystore.NodeRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unlock, err := c.turn(ctx) // keyward serve inits at start, beside keyward node init
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	defer unlock()
	id, ok, err := c.identity(ctx)
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	if !ok {
		if _, err := makeIdentity(ctx, c.tok); err != nil {
			return keystore.NodeRecord{}, err
		}
		if id, _, err = c.identity(ctx); err != nil {
			return keystore.NodeRecord{}, err
		}
	}
	return c.store.RegisterNode(ctx, c.record(id))
}

// Self is this node's record, or ErrNotMember.
func (c *Cluster) Self(ctx context.Context) (keystore.NodeRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok, err := c.identity(ctx)
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	if !ok {
		return keystore.NodeRecord{}, ErrNotMember
	}
	return c.store.Node(ctx, id.ID)
}

// NodeStatus is a node as this node sees it.
type NodeStatus struct {
	keystore.NodeRecord
	Self     bool `json:"self"`     // this node
	Trusted  bool `json:"trusted"`  // this device's SO trusted its transfer key: keys are sent to it from here
	Accepted bool `json:"accepted"` // this device's operator accepted it as a sender: its copies are taken here
	Waiting  int  `json:"waiting"`  // copies waiting for it in the database
}

// Nodes lists every node of the cluster with what this device knows of
// it.
func (c *Cluster) Nodes(ctx context.Context) ([]NodeStatus, error) {
	recs, err := c.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	self, _, err := c.identity(ctx)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, len(recs))
	for i, r := range recs {
		s := NodeStatus{NodeRecord: r, Self: r.ID == self.ID}
		if s.Trusted, err = c.tok.HasObject(ctx, trustedLabel(r.ID), hsm.ClassPublic); err != nil {
			return nil, err
		}
		if s.Accepted, err = c.tok.HasObject(ctx, senderLabel(r.ID), hsm.ClassPublic); err != nil {
			return nil, err
		}
		waiting, err := c.store.TransfersTo(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		s.Waiting = len(waiting)
		out[i] = s
	}
	return out, nil
}

// checkedNode is node id's record and identity, its fingerprint the one
// expected (as people write it).
func (c *Cluster) checkedNode(ctx context.Context, id, fingerprint string) (keystore.NodeRecord, Identity, error) {
	want, err := NormalizeFingerprint(fingerprint)
	if err != nil {
		return keystore.NodeRecord{}, Identity{}, err
	}
	n, err := c.store.Node(ctx, id)
	if err != nil {
		return keystore.NodeRecord{}, Identity{}, err
	}
	idn, err := identityOfRecord(n)
	if err != nil {
		return keystore.NodeRecord{}, Identity{}, err
	}
	if idn.Fingerprint != want {
		return keystore.NodeRecord{}, Identity{}, fmt.Errorf("%w: node %s has fingerprint %s, expected %s; nothing was done", ErrFingerprint, id, idn.Fingerprint, want)
	}
	return n, idn, nil
}

// Accept makes this device take the copies node id signs: its signing
// key, checked against the fingerprint its operator read out, is stored
// in this device (where the database cannot change it). Without it, copies
// from id wait here unopened. A key already accepted for id must be the
// same.
func (c *Cluster) Accept(ctx context.Context, id, fingerprint string) (keystore.NodeRecord, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, idn, err := c.checkedNode(ctx, id, fingerprint)
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	if n.State == keystore.NodeRevoked {
		return keystore.NodeRecord{}, fmt.Errorf("%w: node %s is revoked", ErrNodeState, id)
	}
	unlock, err := c.turn(ctx)
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	defer unlock()
	err = c.tok.StorePublicKey(ctx, senderLabel(id), idn.Signing)
	if errors.Is(err, hsm.ErrKeyExists) {
		have, perr := c.tok.PublicKey(ctx, senderLabel(id))
		if perr != nil {
			return keystore.NodeRecord{}, perr
		}
		if ec, ok := have.(*ecdsa.PublicKey); !ok || !ec.Equal(idn.Signing) {
			return keystore.NodeRecord{}, fmt.Errorf("%w: this device accepted another signing key for node %s", ErrFingerprint, id)
		}
		err = nil
	}
	if err != nil {
		return keystore.NodeRecord{}, err
	}
	return n, c.store.Audit(ctx, "node.accept", id, idn.Fingerprint)
}
