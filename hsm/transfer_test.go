package hsm_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/miekg/pkcs11"
)

// trustedPair opens two tokens, skipping where the device cannot move
// keys only to trusted devices (NSS softokn wraps under anything).
func trustedPair(t *testing.T) (a *hsm.Token, aSO hsm.PINSource, b *hsm.Token) {
	t.Helper()
	sa, a := softhsmtest.OpenTestToken(t)
	if err := a.Require(hsm.OpTrustedWrap); err != nil {
		t.Skipf("trusted wrapping: %v", err)
	}
	_, b = softhsmtest.OpenTestToken(t)
	return a, soPIN(sa), b
}

// masterSent is a trusted pair that has begun to move keys: A's security
// officer trusts B's transfer key (trusted-b) and made the transport key
// transport-b, and A's transferable master key is wrapped for B.
type masterSent struct {
	a, b    *hsm.Token
	bPub    *rsa.PublicKey // B's transfer key
	master  *hsm.Key       // keyward/master/v1 in A
	kcv     string         // master's
	wrapped []byte         // master, wrapped for B
}

func masterWrappedForB(t *testing.T) masterSent {
	t.Helper()
	a, so, b := trustedPair(t)
	ctx := t.Context()
	pub, err := b.GenerateTransferKey(ctx, "transfer")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AsSecurityOfficer(ctx, so, func(o *hsm.Officer) error {
		if err := o.TrustPublicKey("trusted-b", pub); err != nil {
			return err
		}
		return o.MakeTransportKey("transport-b")
	}); err != nil {
		t.Fatal(err)
	}
	master, err := a.GenerateAES(ctx, "keyward/master/v1", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	kcv, err := master.KCV(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := a.Wrap(ctx, master, "trusted-b")
	if err != nil {
		t.Fatal(err)
	}
	return masterSent{a: a, b: b, bPub: pub, master: master, kcv: kcv, wrapped: wrapped}
}

// keyPairWrappedForB makes a transferable signing key pair in A and wraps
// it under the transport key for B; it returns the public key and the
// wrapped private key.
func keyPairWrappedForB(t *testing.T, a *hsm.Token) (crypto.PublicKey, []byte) {
	t.Helper()
	ctx := t.Context()
	ec, err := a.GenerateKeyPair(ctx, "keyward/signing/v1", hsm.ECP256, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ec.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := a.Wrap(ctx, ec, "transport-b")
	if err != nil {
		t.Fatal(err)
	}
	return signer.Public(), wrapped
}

func soPIN(tok *softhsm.Token) hsm.PINSource {
	return hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return tok.SOPIN(), nil })
}

// The device, not keyward, enforces where a transferable key may go: its
// value cannot be read, it cannot be wrapped under a key the SO did not
// trust, and a local key cannot be wrapped at all.
func TestDeviceEnforcesTrustedWrapping(t *testing.T) {
	a, so, b := trustedPair(t)
	ctx := t.Context()
	pub, err := b.GenerateTransferKey(ctx, "transfer")
	if err != nil {
		t.Fatal(err)
	}
	master, err := a.GenerateAES(ctx, "keyward/master/v1", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := master.Info(ctx); err != nil || info.Policy != hsm.PolicyTransferable || !info.Sensitive {
		t.Fatalf("transferable key: %+v %v", info, err)
	}
	if v, err := master.Attribute(ctx, pkcs11.CKA_VALUE); err == nil || len(v) != 0 {
		t.Fatalf("CKA_VALUE of a transferable key: %d bytes, %v", len(v), err)
	}
	if err := hsm.StoreUntrustedWrappingKey(ctx, a, "untrusted", pub); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wrap(ctx, master, "untrusted"); !errors.Is(err, hsm.ErrNotWrappable) {
		t.Fatalf("wrap under a key the SO did not trust: %v", err)
	}
	wrong := hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return []byte("not-the-so-pin"), nil })
	if err := a.AsSecurityOfficer(ctx, wrong, func(*hsm.Officer) error { return nil }); !errors.Is(err, hsm.ErrSecurityOfficer) {
		t.Fatalf("a wrong SO PIN: %v", err)
	}
	if err := a.AsSecurityOfficer(ctx, so, func(o *hsm.Officer) error { return o.TrustPublicKey("trusted-b", pub) }); err != nil {
		t.Fatal(err)
	}
	// The user's login came back after the SO's: the key still works.
	if _, err := master.Seal(ctx, []byte("after the SO"), nil); err != nil {
		t.Fatalf("seal after an SO session: %v", err)
	}
	local, err := a.GenerateAES(ctx, "keyward/master/v2", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wrap(ctx, local, "trusted-b"); !errors.Is(err, hsm.ErrNotWrappable) {
		t.Fatalf("wrap a local key: %v", err)
	}
	if _, err := a.Wrap(ctx, master, "trusted-b"); err != nil {
		t.Fatalf("wrap a transferable key under a trusted key: %v", err)
	}
}

// A key moves from A to B only wrapped for B's transfer key, and B keeps
// it only once it proved to be the key expected; a copy that does not
// prove leaves nothing in B.
func TestKeysMoveToATrustedDevice(t *testing.T) {
	p := masterWrappedForB(t)
	a, b, pub, master, kcv, wrapped := p.a, p.b, p.bPub, p.master, p.kcv, p.wrapped
	ctx := t.Context()
	encDec := hsm.UsageEncrypt | hsm.UsageDecrypt
	flipped := bytes.Clone(wrapped)
	flipped[len(flipped)/2] ^= 1
	for name, c := range map[string]struct {
		wrapped []byte
		proof   hsm.Proof
	}{
		"bit-flipped": {flipped, hsm.Proof{KCV: kcv}},
		"another KCV": {wrapped, hsm.Proof{KCV: "000000"}},
		"empty":       {nil, hsm.Proof{KCV: kcv}},
	} {
		if _, err := b.ReceiveAES(ctx, "transfer", c.wrapped, "keyward/master/v1", encDec, hsm.PolicyTransferable, c.proof); !errors.Is(err, hsm.ErrBadCopy) {
			t.Fatalf("%s copy: %v", name, err)
		}
		if keys, err := b.List(ctx); err != nil || len(keys) != 1 { // the transfer key alone
			t.Fatalf("after the %s copy, B holds %d keys: %v", name, len(keys), err)
		}
	}
	got, err := b.ReceiveAES(ctx, "transfer", wrapped, "keyward/master/v1", encDec, hsm.PolicyTransferable, hsm.Proof{KCV: kcv})
	if err != nil {
		t.Fatal(err)
	}
	info, err := got.Info(ctx)
	if err != nil || info.KCV != kcv || !info.Received || info.Policy != hsm.PolicyTransferable {
		t.Fatalf("received copy: %+v %v", info, err)
	}
	sealed, err := master.Seal(ctx, []byte("shared data"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := got.Open(ctx, sealed, []byte("aad")); err != nil || string(pt) != "shared data" {
		t.Fatalf("B opens what A sealed: %q %v", pt, err)
	}

	// A join key, which may not encrypt, proves itself by a derived HMAC.
	join, err := a.GenerateAES(ctx, "keyward/join/v1", 256, hsm.UsageDerive, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	challenge := make([]byte, 32)
	_, _ = rand.Read(challenge)
	proof, err := join.TransferProof(ctx, challenge)
	if err != nil {
		t.Fatal(err)
	}
	jw, err := a.Wrap(ctx, join, "trusted-b")
	if err != nil {
		t.Fatal(err)
	}
	jkcv := "ABCDEF" // recorded, not checked: the proof is
	if _, err := b.ReceiveAES(ctx, "transfer", jw, "keyward/join/v1", hsm.UsageDerive, hsm.PolicyTransferable,
		hsm.Proof{KCV: jkcv, Challenge: challenge, MAC: bytes.Repeat([]byte{1}, 32)}); !errors.Is(err, hsm.ErrBadCopy) {
		t.Fatalf("join copy with another proof: %v", err)
	}
	bj, err := b.ReceiveAES(ctx, "transfer", jw, "keyward/join/v1", hsm.UsageDerive, hsm.PolicyTransferable,
		hsm.Proof{KCV: jkcv, Challenge: challenge, MAC: proof})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("kw-jwt-HS256\x00\x00\x00\x01"), 4)
	ka, err := a.DeriveHMACKey(ctx, join, data, "a")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.DeriveHMACKey(ctx, bj, data, "b")
	if err != nil {
		t.Fatal(err)
	}
	macA, err := ka.HMAC(ctx, crypto.SHA256, []byte("token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := kb.VerifyHMAC(ctx, crypto.SHA256, []byte("token"), macA); err != nil {
		t.Fatalf("B verifies A's HMAC: %v", err)
	}

	// A key pair goes under the transport key, which goes once by OAEP.
	tw, err := a.WrapLabelled(ctx, "transport-b", "trusted-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ReceiveTransportKey(ctx, "transfer", tw, "transport-from-a"); err != nil {
		t.Fatal(err)
	}
	ecPub, ew := keyPairWrappedForB(t, a)
	bec, err := b.ReceiveKeyPair(ctx, "transport-from-a", ew, "keyward/signing/v1", ecPub, hsm.PolicyTransferable)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := bec.Signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("token"))
	sig, err := bs.SignContext(ctx, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(ecPub.(*ecdsa.PublicKey), digest[:], sig) {
		t.Fatal("B's copy of the key pair signs under another key")
	}
	// A received copy is still transferable, and still only under trust.
	if err := hsm.StoreUntrustedWrappingKey(ctx, b, "untrusted", pub); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Wrap(ctx, got, "untrusted"); !errors.Is(err, hsm.ErrNotWrappable) {
		t.Fatalf("B wraps its copy under an untrusted key: %v", err)
	}
}
