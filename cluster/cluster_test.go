package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) { testmain.Run(m) }

// member is one node: its token, vault and cluster part, on a shared
// database.
type member struct {
	tok   *softhsm.Token
	ring  *keyring.Ring
	vault *keystore.Vault
	c     *cluster.Cluster
	self  keystore.NodeRecord
	home  string
}

func newMember(tb testing.TB, dsn string) *member {
	tb.Helper()
	st, tok := softhsmtest.OpenTestToken(tb)
	if err := tok.Require(hsm.OpTrustedWrap); err != nil {
		tb.Skipf("trusted wrapping: %v", err)
	}
	store, ring, vault := openVault(tb, tok, dsn)
	home := tb.TempDir()
	m := &member{tok: st, ring: ring, vault: vault, c: cluster.New(ring, store, vault, home), home: home}
	var err error
	if m.self, err = m.c.Init(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return m
}

// openVault opens the database at dsn (closed when the test ends) and a
// joining vault on tok: what each keyward process of a node opens.
func openVault(tb testing.TB, tok *hsm.Token, dsn string) (*keystore.Store, *keyring.Ring, *keystore.Vault) {
	tb.Helper()
	store, err := keystore.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	ring := keyring.New(tok)
	vault, err := keystore.NewVault(tb.Context(), store, ring, keystore.VaultOptions{Joining: true})
	if err != nil {
		tb.Fatal(err)
	}
	return store, ring, vault
}

func (m *member) so() hsm.PINSource {
	return hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return m.tok.SOPIN(), nil })
}

// join has a admit b and b accept a.
func join(tb testing.TB, a, b *member) cluster.Admission {
	tb.Helper()
	adm, err := a.c.Admit(tb.Context(), b.self.ID, b.self.Fingerprint, a.so())
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.c.Accept(tb.Context(), a.self.ID, a.self.Fingerprint); err != nil {
		tb.Fatal(err)
	}
	return adm
}

func kcvOf(tb testing.TB, m *member, role keyring.Role) string {
	tb.Helper()
	_, e, err := m.ring.Get(tb.Context(), role, 0)
	if err != nil {
		tb.Fatal(err)
	}
	return e.KCV
}

func TestKeysReachAdmittedNodesOnly(t *testing.T) {
	dsn := dbtest.SQLite(t)
	a, b, d := newMember(t, dsn), newMember(t, dsn), newMember(t, dsn)
	ctx := t.Context()
	m1, err := a.vault.Generate(ctx, keyring.Master, 256, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.vault.Generate(ctx, keyring.Join, 256, hsm.PolicyTransferable); err != nil {
		t.Fatal(err)
	}
	if _, err := a.vault.Generate(ctx, keyring.Master, 256, hsm.PolicyLocal); err != nil { // master v2, local
		t.Fatal(err)
	}
	if _, err := a.ring.GenerateSigning(ctx, hsm.ECP256, hsm.PolicyTransferable); err != nil {
		t.Fatal(err)
	}
	// A wrong fingerprint admits nothing.
	if _, err := a.c.Admit(ctx, b.self.ID, d.self.Fingerprint, a.so()); !errors.Is(err, cluster.ErrFingerprint) {
		t.Fatalf("admit with another node's fingerprint: %v", err)
	}
	if nodes, err := a.c.Nodes(ctx); err != nil || nodes[0].Trusted || nodes[1].Trusted || nodes[2].Trusted {
		t.Fatalf("after a refused admission: %+v %v", nodes, err)
	}
	adm := join(t, a, b)
	if adm.Sent != 4 { // transport key, master v1, join v1, signing v1: not the local master v2
		t.Fatalf("%d copies sent at admission", adm.Sent)
	}
	rep, err := b.c.Sync(ctx)
	if err != nil || len(rep.Delivered) != 3 || len(rep.Refused) != 0 {
		t.Fatalf("B's sync: %+v %v", rep, err)
	}
	if _, e, err := b.ring.Get(ctx, keyring.Master, 1); err != nil || e.KCV != m1.KCV || e.Origin != keyring.Received || e.Policy != hsm.PolicyTransferable {
		t.Fatalf("B's master v1: %+v %v (A's KCV %s)", e, err, m1.KCV)
	}
	if _, _, err := b.ring.Get(ctx, keyring.Master, 2); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("the local master v2 reached B: %v", err)
	}
	if got, want := kcvOf(t, b, keyring.Join), kcvOf(t, a, keyring.Join); got != want {
		t.Fatalf("join KCV on B %s, on A %s", got, want)
	}
	// D, never admitted, gets nothing, even when it accepts A.
	if _, err := d.c.Accept(ctx, a.self.ID, a.self.Fingerprint); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.c.Sync(ctx); err != nil || rep.Sent != 0 {
		t.Fatalf("A's sync sent %d: %v", rep.Sent, err)
	}
	if rep, err := d.c.Sync(ctx); err != nil || len(rep.Delivered) != 0 {
		t.Fatalf("D's sync: %+v %v", rep, err)
	}
	// A key rotated on A reaches B on their next rounds: a rotation keeps
	// the active version's policy.
	e2, err := a.vault.Rotate(ctx, keyring.Join, 256, "")
	if err != nil || e2.Policy != hsm.PolicyTransferable {
		t.Fatalf("rotate a transferable join key: %+v %v", e2, err)
	}
	if rep, err := a.c.Sync(ctx); err != nil || rep.Sent != 1 {
		t.Fatalf("A's sync after the rotation: %+v %v", rep, err)
	}
	if rep, err := b.c.Sync(ctx); err != nil || strings.Join(rep.Delivered, " ") != "join/v2" {
		t.Fatalf("B's sync after the rotation: %+v %v", rep, err)
	}
	if got := kcvOf(t, b, keyring.Join); got != e2.KCV {
		t.Fatalf("join v2 on B: KCV %s, want %s", got, e2.KCV)
	}
	// Revoked: nothing more.
	if _, err := a.c.Revoke(ctx, b.self.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.vault.Rotate(ctx, keyring.Master, 256, hsm.PolicyTransferable); err != nil {
		t.Fatal(err)
	}
	if rep, err := a.c.Sync(ctx); err != nil || rep.Sent != 0 {
		t.Fatalf("A sent %d copies after revoking B: %v", rep.Sent, err)
	}
}

// benchCluster is A holding transferable master and join keys and B
// initialized, on one SQLite database.
func benchCluster(b *testing.B) (*member, *member) {
	b.Helper()
	dsn := dbtest.SQLite(b)
	a, n := newMember(b, dsn), newMember(b, dsn)
	for _, role := range []keyring.Role{keyring.Master, keyring.Join} {
		if _, err := a.vault.Generate(b.Context(), role, 256, hsm.PolicyTransferable); err != nil {
			b.Fatal(err)
		}
	}
	return a, n
}

// BenchmarkAdmitToUsable: from node admit (SO session, trust, transport
// key, copies wrapped) through accept to the new node holding every key,
// as keyward node admit, node accept and one sync do it.
func BenchmarkAdmitToUsable(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		a, n := benchCluster(b)
		b.StartTimer()
		start := time.Now()
		join(b, a, n)
		rep, err := n.c.Sync(b.Context())
		if err != nil || len(rep.Delivered) != 2 {
			b.Fatalf("%+v %v", rep, err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/admission")
}

// BenchmarkRotationReach: a join key rotated on A until B holds it, as a
// sync on each does it (keyward serve runs one every second on each node).
func BenchmarkRotationReach(b *testing.B) {
	a, n := benchCluster(b)
	join(b, a, n)
	if _, err := n.c.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := a.vault.Rotate(b.Context(), keyring.Join, 256, hsm.PolicyTransferable); err != nil {
			b.Fatal(err)
		}
		if rep, err := a.c.Sync(b.Context()); err != nil || rep.Sent != 1 {
			b.Fatalf("%+v %v", rep, err)
		}
		if rep, err := n.c.Sync(b.Context()); err != nil || len(rep.Delivered) != 1 {
			b.Fatalf("%+v %v", rep, err)
		}
	}
}
