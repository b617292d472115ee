package node_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

// keyward node accept syncs at once while keyward serve, on the same
// node (one device, one home directory), runs its own sync: each copy is
// taken once, and the device holds one object under each label.
func TestAcceptBesideServeTakesEachCopyOnce(t *testing.T) {
	ctx := t.Context()
	dsn := dbtest.SQLite(t)
	ta, tb := softhsmtest.NewTestToken(t), softhsmtest.NewTestToken(t)
	open := func(cfg node.Config) *node.Node {
		t.Helper()
		n, err := node.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := open(node.Config{Device: ta.Config(), DB: dsn, Home: t.TempDir()})
	if _, err := a.InitNode(ctx); errors.Is(err, hsm.ErrNotSupported) {
		t.Skipf("trusted wrapping: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, role := range []keyring.Role{keyring.Master, keyring.Join, keyring.Signing} {
		if _, err := a.GenerateKey(ctx, role, node.KeySpec{Policy: hsm.PolicyTransferable}); err != nil {
			t.Fatal(err)
		}
	}
	self, err := a.InitNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	serve := open(node.Config{Device: tb.Config(), DB: dsn, Home: home, Joining: true})
	cli := open(node.Config{Device: tb.Config(), DB: dsn, Home: home, Joining: true})
	b, err := serve.InitNode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	so := hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return ta.SOPIN(), nil })
	if _, err := a.AdmitNode(ctx, b.ID, b.Fingerprint, so); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AcceptNode(ctx, self.ID, self.Fingerprint); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	delivered := 0
	var mu sync.Mutex
	for i, n := range []*node.Node{serve, cli} {
		wg.Go(func() {
			rep, err := n.SyncNodes(ctx)
			mu.Lock()
			errs[i], delivered = err, delivered+len(rep.Delivered)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil || delivered != 3 {
		t.Fatalf("%d keys delivered: %v", delivered, err)
	}
	dev, err := tb.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	infos, err := dev.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, info := range infos {
		if seen[info.Label]++; seen[info.Label] > 1 {
			t.Fatalf("%d objects labelled %q on B", seen[info.Label], info.Label)
		}
	}
	if seen["keyward/transport-from/"+self.ID] != 1 {
		t.Fatalf("B's keys: %v", seen)
	}
}
