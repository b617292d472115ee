package hsm_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

// Two objects of one received key under one label (two processes took
// one copy at once) become one: the lowest CKA_ID stays, in every process
// that drops them at once, and lookups by label work again. Two objects
// under a label that are not both received copies of one key stay.
func TestDuplicateCopiesDropped(t *testing.T) {
	p := masterWrappedForB(t)
	a, b, master, kcv, mw := p.a, p.b, p.master, p.kcv, p.wrapped
	ctx := t.Context()
	encDec := hsm.UsageEncrypt | hsm.UsageDecrypt
	kcvBytes, _ := hex.DecodeString(kcv)
	tw, err := a.WrapLabelled(ctx, "transport-b", "trusted-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReceiveAES(ctx, "transfer", mw, "keyward/master/v1", encDec, hsm.PolicyTransferable, hsm.Proof{KCV: kcv}); err != nil {
		t.Fatal(err)
	}
	if err := b.ReceiveTransportKey(ctx, "transfer", tw, "transport-from-a"); err != nil {
		t.Fatal(err)
	}
	// What two processes left: a second copy of each received key; a
	// copy under the label of a key generated here; two objects whose
	// records say they are different keys.
	for _, u := range []struct {
		label   string
		wrapped []byte
		usage   hsm.Usage
		kcv     []byte
	}{
		{"keyward/master/v1", mw, encDec, kcvBytes},
		{"transport-from-a", tw, hsm.UsageUnwrap, nil},
		{"generated", mw, encDec, kcvBytes},
		{"differ", mw, encDec, kcvBytes},
		{"differ", mw, encDec, []byte{1, 2, 3}},
	} {
		if u.label == "generated" {
			if _, err := b.GenerateAES(ctx, u.label, 256, encDec, hsm.PolicyLocal); err != nil {
				t.Fatal(err)
			}
		}
		if err := hsm.UnwrapAgain(ctx, b, "transfer", u.wrapped, u.label, u.usage, u.kcv); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.HasObject(ctx, "keyward/master/v1", hsm.ClassSecret); !errors.Is(err, hsm.ErrKeyExists) {
		t.Fatalf("find a label held twice: %v", err)
	}
	lowest := map[string][]byte{}
	infos, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if l, ok := lowest[info.Label]; !ok || bytes.Compare(info.ID, l) < 0 {
			lowest[info.Label] = info.ID
		}
	}

	dropped, err := b.DropDuplicateCopies(ctx)
	slices.Sort(dropped)
	if err != nil || !slices.Equal(dropped, []string{"keyward/master/v1", "transport-from-a"}) {
		t.Fatalf("dropped %q: %v", dropped, err)
	}
	for _, label := range []string{"keyward/master/v1", "transport-from-a"} {
		k, err := b.Find(ctx, label)
		if err != nil || !bytes.Equal(k.ID, lowest[label]) {
			t.Fatalf("%s after the drop: %v (kept ID %x, lowest %x)", label, err, k.ID, lowest[label])
		}
	}
	for _, label := range []string{"generated", "differ"} {
		if _, err := b.HasObject(ctx, label, hsm.ClassSecret); !errors.Is(err, hsm.ErrKeyExists) {
			t.Fatalf("%s: not two received copies of one key, yet: %v", label, err)
		}
	}
	// The copy kept works: B opens what A seals, and takes a key pair
	// wrapped under the transport key.
	got, err := b.Find(ctx, "keyward/master/v1")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := master.Seal(ctx, []byte("shared"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := got.Open(ctx, sealed, nil); err != nil || string(pt) != "shared" {
		t.Fatalf("open with the copy kept: %q %v", pt, err)
	}
	ecPub, ew := keyPairWrappedForB(t, a)
	if _, err := b.ReceiveKeyPair(ctx, "transport-from-a", ew, "keyward/signing/v1", ecPub, hsm.PolicyTransferable); err != nil {
		t.Fatalf("receive a key pair under the transport key kept: %v", err)
	}
	if dropped, err := b.DropDuplicateCopies(ctx); err != nil || len(dropped) != 0 {
		t.Fatalf("second drop: %q %v", dropped, err)
	}
}

// Two handles on one token (as two processes have) dropping the same
// copies at once leave exactly one.
func TestDuplicateCopiesDroppedAtOnce(t *testing.T) {
	sb, b := softhsmtest.OpenTestToken(t)
	if err := b.Require(hsm.OpTrustedWrap); err != nil {
		t.Skipf("trusted wrapping: %v", err)
	}
	ctx := t.Context()
	b2, err := sb.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	// The copy is of a key B itself sends: what it is does not matter
	// here, only that it opens under B's transfer key.
	pub, err := b.GenerateTransferKey(ctx, "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AsSecurityOfficer(ctx, soPIN(sb), func(o *hsm.Officer) error {
		if err := o.TrustPublicKey("trusted-self", pub); err != nil {
			return err
		}
		return o.MakeTransportKey("transport")
	}); err != nil {
		t.Fatal(err)
	}
	tw, err := b.WrapLabelled(ctx, "transport", "trusted-self")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		for range 3 {
			if err := hsm.UnwrapAgain(ctx, b, "transfer", tw, "copy", hsm.UsageUnwrap, nil); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		n := make([]int, 2)
		errs := make([]error, 2)
		for i, tok := range []*hsm.Token{b, b2} {
			wg.Go(func() {
				var d []string
				d, errs[i] = tok.DropDuplicateCopies(ctx)
				n[i] = len(d)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if left, err := b.DestroyLabelled(ctx, "copy"); err != nil || left != 1 || n[0]+n[1] != 2 {
			t.Fatalf("round %d: %d objects left, %d and %d dropped: %v", round, left, n[0], n[1], err)
		}
	}
}
