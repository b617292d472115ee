package node

import (
	"context"

	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
)

// A cluster of nodes, each with its own device, sharing one set of keys:
// package cluster holds the rules (who trusts whom, what a copy must prove).

// InitNode gives this node its identity in its device (once) and registers
// it in the database as pending; its record carries the fingerprint its
// operator reads to a holder's.
func (n *Node) InitNode(ctx context.Context) (cluster.NodeStatus, error) {
	rec, err := n.cluster.Init(ctx)
	return cluster.NodeStatus{NodeRecord: rec, Self: true}, err
}

// Nodes lists the cluster's nodes with what this device knows of each.
func (n *Node) Nodes(ctx context.Context) ([]cluster.NodeStatus, error) { return n.cluster.Nodes(ctx) }

// AdmitNode lets node id receive this device's transferable keys, once
// its fingerprint is the one expected; so is this device's security
// officer PIN source. The copies for it are sent at once.
func (n *Node) AdmitNode(ctx context.Context, id, fingerprint string, so hsm.PINSource) (cluster.Admission, error) {
	return n.cluster.Admit(ctx, id, fingerprint, so)
}

// AcceptNode makes this device take the copies node id signs, once its
// fingerprint is the one expected.
func (n *Node) AcceptNode(ctx context.Context, id, fingerprint string) (cluster.NodeStatus, error) {
	rec, err := n.cluster.Accept(ctx, id, fingerprint)
	return cluster.NodeStatus{NodeRecord: rec, Accepted: err == nil}, err
}

// RevokeNode ends node id's part in the cluster as far as this node can.
func (n *Node) RevokeNode(ctx context.Context, id string) (cluster.Revocation, error) {
	return n.cluster.Revoke(ctx, id)
}

// SyncNodes takes the copies waiting for this node and sends its
// transferable keys to the nodes its device trusts (cluster.Sync).
func (n *Node) SyncNodes(ctx context.Context) (cluster.SyncReport, error) { return n.cluster.Sync(ctx) }
