package bootstrap

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/node"
)

// Options tune Run.
type Options struct {
	Home        string        // $KEYWARD_HOME
	DeleteAfter time.Duration // token.json is removed this long after it is written
	Watch       bool          // keep looking (once a second) until ctx is done
	Report      func(string)  // told what happened; nil: nothing is said
	Policy      hsm.Policy    // of the keys imported from files; default local
}

// Run does a node's first-start work: it imports the bootstrap key files
// and answers a pending generate.token.json with an admin token (deleted
// again after DeleteAfter, or at once when ctx ends). With Watch it keeps
// doing so until ctx is done; errors of later passes are reported, not
// returned. It returns once every pending deletion is done.
func Run(ctx context.Context, n *node.Node, o Options) error {
	report := o.Report
	if report == nil {
		report = func(string) {}
	}
	var deletions sync.WaitGroup
	defer deletions.Wait()
	pass := func() error {
		if err := ImportKeys(ctx, n, o.Home, o.Policy, report); err != nil {
			return err
		}
		if !Pending(o.Home) {
			return nil
		}
		if err := n.Reconcile(ctx); err != nil {
			return err
		}
		tf, err := IssueToken(ctx, n.Tokens(), o.Home)
		if err != nil {
			return err
		}
		report(fmt.Sprintf("admin token %s written to %s (expires %s); it is deleted in %s",
			tf.TokenID, TokenPath(o.Home), tf.ExpiresAt.Format(time.RFC3339), o.DeleteAfter))
		deletions.Add(1)
		go func() {
			defer deletions.Done()
			if err := DeleteLater(ctx, o.Home, tf.TokenID, o.DeleteAfter); err != nil {
				report("could not delete token.json: " + err.Error())
				return
			}
			report("deleted " + TokenPath(o.Home))
		}()
		return nil
	}
	if err := pass(); err != nil {
		return err
	}
	if !o.Watch {
		return nil
	}
	report("watching " + keysDir(o.Home))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := pass(); err != nil {
				report("error: " + err.Error())
			}
		}
	}
}
