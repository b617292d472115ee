package cluster

import (
	"context"
	"fmt"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
)

// Admission is what Admit did.
type Admission struct {
	Node     keystore.NodeRecord // the node admitted
	Admitter keystore.NodeRecord // this node: its operator tells the new node's operator this fingerprint
	Sent     int                 // copies wrapped for it now
}

// Admit lets node id receive this device's transferable keys. Its
// fingerprint must be the one its operator read out (else
// ErrFingerprint, and nothing is done). This device's security officer
// (PIN from so) marks the node's transfer key trusted here and makes a
// transport key for it (for key pairs); the node is recorded admitted,
// and every transferable key it lacks is wrapped for its device and
// stored, signed by this node. Its operator then accepts this node as a
// sender (Accept), and the copies open there.
func (c *Cluster) Admit(ctx context.Context, id, fingerprint string, so hsm.PINSource) (Admission, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	self, ok, err := c.identity(ctx)
	if err != nil {
		return Admission{}, err
	}
	if !ok {
		return Admission{}, fmt.Errorf("%w: the admitting node signs what it sends", ErrNotMember)
	}
	if id == self.ID {
		return Admission{}, fmt.Errorf("%w: a node does not admit itself", ErrNodeState)
	}
	n, idn, err := c.checkedNode(ctx, id, fingerprint)
	if err != nil {
		return Admission{}, err
	}
	if n.State == keystore.NodeRevoked {
		return Admission{}, fmt.Errorf("%w: node %s was revoked; a revoked node is not admitted again (give it a new identity: a new device or token)", ErrNodeState, id)
	}
	if err := c.tok.Require(hsm.OpTrustedWrap); err != nil {
		return Admission{}, err
	}
	err = c.tok.AsSecurityOfficer(ctx, so, func(o *hsm.Officer) error {
		if err := o.TrustPublicKey(trustedLabel(id), idn.Transfer); err != nil {
			return err
		}
		return o.MakeTransportKey(transportLabel(id))
	})
	if err != nil {
		return Admission{}, err
	}
	if n.State != keystore.NodeAdmitted {
		if err := c.store.SetNodeState(ctx, id, keystore.NodeAdmitted); err != nil {
			return Admission{}, err
		}
		n.State = keystore.NodeAdmitted
	}
	me, err := c.store.Node(ctx, self.ID)
	if err != nil {
		return Admission{}, err
	}
	sent, err := c.push(ctx, self, []keystore.NodeRecord{n})
	return Admission{Node: n, Admitter: me, Sent: sent}, err
}

// Revocation is what Revoke did.
type Revocation struct {
	Node      keystore.NodeRecord
	Destroyed int // objects for it destroyed in this device: its trusted key, transport key, accepted signing key
	Deleted   int // copies for it deleted from the database before it took them
}

// Revoke ends node id's part in the cluster as far as this node can: its
// trusted key, transport key and accepted signing key are destroyed in
// this device (nothing more is wrapped for it or taken from it here), it
// is recorded revoked (no node sends to it), and the copies waiting for it
// are deleted. Keys it already received stay in its device: rotate them.
func (c *Cluster) Revoke(ctx context.Context, id string) (Revocation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.store.Node(ctx, id)
	if err != nil {
		return Revocation{}, err
	}
	var r Revocation
	for _, label := range []string{trustedLabel(id), transportLabel(id), senderLabel(id)} {
		d, err := c.tok.DestroyLabelled(ctx, label)
		r.Destroyed += d
		if err != nil {
			return r, err
		}
	}
	if err := c.store.SetNodeState(ctx, id, keystore.NodeRevoked); err != nil {
		return r, err
	}
	n.State = keystore.NodeRevoked
	r.Node = n
	r.Deleted, err = c.store.DeleteTransfersTo(ctx, id)
	return r, err
}
