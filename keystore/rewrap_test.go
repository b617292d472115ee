package keystore_test

import (
	"errors"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// A SQLite rewrap reads a batch, re-encrypts it and writes it back in a
// transaction of its own: a record put or deleted in between must keep
// what was put or stay deleted, and be counted once.
func TestRewrapLeavesRecordsChangedMeanwhile(t *testing.T) {
	n, _ := node(t, dbtest.SQLite(t))
	if _, err := n.Import(t.Context(), keyring.Master, hexKey(1), hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"put-meanwhile", "deleted-meanwhile", "untouched"} {
		if err := n.Put(t.Context(), name, []byte("old "+name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Import(t.Context(), keyring.Master, hexKey(2), hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	wrote, err := keystore.RewrapRace(t.Context(), n, func() {
		if err := n.Put(t.Context(), "put-meanwhile", []byte("new value")); err != nil {
			t.Fatal(err)
		}
		if err := n.Delete(t.Context(), "deleted-meanwhile"); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil || wrote != 1 {
		t.Fatalf("wrote %d records (%v), want 1: only the untouched one", wrote, err)
	}
	if v, err := n.Get(t.Context(), "put-meanwhile"); err != nil || string(v) != "new value" {
		t.Fatalf("the record put during the rewrap reads %q (%v): the rewrap overwrote it", v, err)
	}
	if _, err := n.Get(t.Context(), "deleted-meanwhile"); !errors.Is(err, keystore.ErrNotFound) {
		t.Fatalf("the record deleted during the rewrap: %v, want not found", err)
	}
	if v, err := n.Get(t.Context(), "untouched"); err != nil || string(v) != "old untouched" {
		t.Fatalf("untouched: %q %v", v, err)
	}
	st, err := n.KeyStatuses(t.Context())
	if err != nil || len(st) != 2 || st[1].Encryptions != 2 {
		t.Fatalf("v2 encryptions: %+v %v, want 2 (one put, one rewrap)", st, err)
	}
	if left, err := n.Rewrap(t.Context(), 10, nil); err != nil || left != 0 {
		t.Fatalf("a rewrap after: %d records (%v), want none left", left, err)
	}
}
