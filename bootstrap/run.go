package bootstrap

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/node"
)

// Options tune Run and a Runner.
type Options struct {
	Home        string        // $KEYWARD_HOME
	DeleteAfter time.Duration // token.json is removed this long after it is written
	Watch       bool          // keep looking (once a second) until ctx is done
	Report      func(string)  // told what happened; nil: nothing is said
	Policy      hsm.Policy    // of the keys imported from files; default local
}

// Runner does a node's bootstrap work, pass after pass: keyward bootstrap
// once (or watching), keyward serve at start and then every second. It
// remembers the last pass's failure for /readyz, and the token.json
// deletions it owes, even those a previous process owed.
type Runner struct {
	n         *node.Node
	o         Options
	deletions sync.WaitGroup

	mu   sync.Mutex
	last error // the last pass's failure, or nil
}

// NewRunner returns the bootstrap work of node n. A token.json left by an
// earlier process (killed before it could delete it) is deleted when its
// time comes: DeleteAfter after it was written, at once if that has
// passed.
func NewRunner(ctx context.Context, n *node.Node, o Options) *Runner {
	if o.Report == nil {
		o.Report = func(string) {}
	}
	r := &Runner{n: n, o: o}
	if st, err := os.Stat(TokenPath(o.Home)); err == nil {
		var tf TokenFile
		if raw, err := os.ReadFile(TokenPath(o.Home)); err == nil && json.Unmarshal(raw, &tf) == nil {
			r.deleteAt(ctx, tf.TokenID, time.Until(st.ModTime().Add(o.DeleteAfter)))
		}
	}
	return r
}

// Err is the last pass's failure: it names the file, never its content.
func (r *Runner) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Wait waits for every deletion owed (they end early when ctx ends).
func (r *Runner) Wait() { r.deletions.Wait() }

// Pass imports the key files and answers a pending token request, once.
func (r *Runner) Pass(ctx context.Context) error {
	err := r.pass(ctx)
	r.mu.Lock()
	r.last = err
	r.mu.Unlock()
	return err
}

func (r *Runner) pass(ctx context.Context) error {
	if err := ImportKeys(ctx, r.n, r.o.Home, r.o.Policy, r.o.Report); err != nil {
		return err
	}
	if !Pending(r.o.Home) {
		return nil
	}
	if err := r.n.Reconcile(ctx); err != nil {
		return fmt.Errorf("%s waits: %w", requestPath(r.o.Home), err)
	}
	tf, err := IssueToken(ctx, r.n.Tokens(), r.o.Home)
	if err != nil {
		return err
	}
	r.o.Report(fmt.Sprintf("admin token %s written to %s (expires %s); it is deleted in %s",
		tf.TokenID, TokenPath(r.o.Home), tf.ExpiresAt.Format(time.RFC3339), r.o.DeleteAfter))
	r.deleteAt(ctx, tf.TokenID, r.o.DeleteAfter)
	return nil
}

// deleteAt removes token.json after delay (a token id: only while it
// holds that token), or at once when ctx ends.
func (r *Runner) deleteAt(ctx context.Context, tokenID string, delay time.Duration) {
	r.deletions.Add(1)
	go func() {
		defer r.deletions.Done()
		if err := DeleteLater(ctx, r.o.Home, tokenID, max(delay, 0)); err != nil {
			r.o.Report("could not delete token.json: " + err.Error())
			return
		}
		r.o.Report("deleted " + TokenPath(r.o.Home))
	}()
}

// Watch runs a pass every second until ctx ends; failures are reported
// (once each, not every second) and kept for Err.
func (r *Runner) Watch(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var said string
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			err := r.Pass(ctx)
			switch {
			case err != nil && err.Error() != said && ctx.Err() == nil:
				said = err.Error()
				r.o.Report("error: " + said)
			case err == nil:
				said = ""
			}
		}
	}
}

// Run does a node's bootstrap work: it imports the bootstrap key files
// and answers a pending generate.token.json with an admin token (deleted
// again after DeleteAfter, or at once when ctx ends). With Watch it keeps
// doing so until ctx is done; errors of later passes are reported, not
// returned. It returns once every pending deletion is done.
func Run(ctx context.Context, n *node.Node, o Options) error {
	r := NewRunner(ctx, n, o)
	defer r.Wait()
	if err := r.Pass(ctx); err != nil {
		return err
	}
	if !o.Watch {
		return nil
	}
	r.o.Report("watching " + keysDir(o.Home))
	r.Watch(ctx)
	return nil
}
