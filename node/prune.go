package node

import (
	"context"
	"time"

	"github.com/keyward/keyward/keystore"
)

// Prune deletes what the database no longer needs (Config.Retention):
// revocations of tokens expired past it, token records and refresh
// tokens expired past it, old audit entries. Batched and idempotent:
// every node of a cluster may run it, at any time.
func (n *Node) Prune(ctx context.Context) (keystore.Pruned, error) {
	o := n.keep
	if o.Revocations == 0 {
		o.Revocations = keystore.DefaultRevocationRetention
	}
	if o.Revocations > 0 {
		// Never a revocation a verifier still holds: its token's expiry
		// plus leeway and an hour (package tokens); an hour more here.
		o.Revocations = max(o.Revocations, n.leeway+2*time.Hour)
	}
	return n.store.Prune(ctx, o, time.Now())
}
