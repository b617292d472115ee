package node

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// ErrUnknownDatabase is a database whose key registry is empty while the
// device holds keyward's master or join keys: most likely not the
// database those keys were used with (a mistyped path, a database lost).
// Opening it anyway would start a second history beside the first.
var ErrUnknownDatabase = fmt.Errorf("%w: the database does not know the device's keys", keystore.ErrKeyMismatch)

// checkRegistry refuses an empty registry beside a device that holds
// master or join keys, unless adopt: then it registers them (the newest
// version of each role active), so tokens they signed verify again.
func (n *Node) checkRegistry(ctx context.Context, adopt bool) error {
	regs, err := n.store.Keys(ctx)
	if err != nil || len(regs) > 0 {
		return err
	}
	entries, err := n.ring.List(ctx)
	if err != nil {
		return err
	}
	var held []keyring.Entry
	for _, e := range entries {
		if e.Role == keyring.Master || e.Role == keyring.Join {
			held = append(held, e)
		}
	}
	if len(held) == 0 {
		return nil // a new node: nothing to lose
	}
	if !adopt {
		labels := make([]string, len(held))
		for i, e := range held {
			labels[i] = e.Label + " (KCV " + e.KCV + ")"
		}
		return fmt.Errorf("%w: the key registry in %s is empty, but token %q holds %s; open the database those keys were used with (or restore it), or adopt the device's keys into this one",
			ErrUnknownDatabase, n.store.Where(), n.device.Label(), strings.Join(labels, ", "))
	}
	return n.vault.Adopt(ctx, held)
}
