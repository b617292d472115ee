package hsm

import (
	"context"
	"crypto/rsa"
	"fmt"
	"math/big"
	"sync/atomic"

	"github.com/keyward/keyward/hsm/internal/p11raw"
	"github.com/miekg/pkcs11"
)

// Hooks for the external tests: reach behind the pool's back, and the raw
// miekg/pkcs11 objects the benchmarks compare against.

// CloseAllSessions closes every session of the token, as a device restart
// or another library in the process would.
func CloseAllSessions(t *Token) error {
	return t.st.mod.ctx.CloseAllSessions(t.st.slot)
}

// LogoutBehindBack logs the token out through one of its sessions and puts
// the session back.
func LogoutBehindBack(t *Token) error {
	s, err := t.st.pool.get(context.Background())
	if err != nil {
		return err
	}
	defer t.st.pool.put(s)
	return t.st.mod.ctx.Logout(s)
}

// Raw is a bare miekg/pkcs11 context, a session of its own and a handle.
type Raw struct {
	Ctx     *pkcs11.Ctx
	Session pkcs11.SessionHandle
	Handle  pkcs11.ObjectHandle
	fl      *p11raw.FunctionList
}

// Encrypt is C_Encrypt as Seal makes it: one call into out, sized by the
// caller (plaintext + tag for GCM), through p11raw where this build may
// (miekg's Encrypt asks the size first, which NSS softokn answers without
// the tag), else miekg's Encrypt.
func (r *Raw) Encrypt(in, out []byte) ([]byte, error) {
	if r.fl == nil {
		return r.Ctx.Encrypt(r.Session, in)
	}
	return r.fl.Encrypt(r.Session, in, out)
}

// RawFor opens a session of its own on k's token and finds k's handle.
func RawFor(k *Key) (*Raw, func(), error) {
	st := k.tok.st
	s, err := st.mod.ctx.OpenSession(st.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return nil, nil, err
	}
	h, err := k.handle(s)
	if err != nil {
		st.mod.ctx.CloseSession(s)
		return nil, nil, err
	}
	return &Raw{Ctx: st.mod.ctx, Session: s, Handle: h, fl: st.mod.functions}, func() { st.mod.ctx.CloseSession(s) }, nil
}

// HoldSession takes one session out of the pool until release is called.
func HoldSession(t *Token) (release func()) {
	s, err := t.st.pool.get(context.Background())
	if err != nil {
		panic(err)
	}
	return func() { t.st.pool.put(s) }
}

// counter numbers the raw benchmark's GCM nonces.
var Counter nonceCounter

type nonceCounter struct{ n atomic.Uint64 }

func (c *nonceCounter) Next() uint64 { return c.n.Add(1) }

// VerifyBySign makes the token check HMACs by signing and comparing, as
// after a device's C_Verify reported a wrong MAC as a device fault.
func VerifyBySign(t *Token) { t.st.verifyBySign.Store(true) }

// ProveValue runs ImportAES's proof that the device holds value on key k,
// as if k had just been imported from it.
func ProveValue(k *Key, value []byte, usage Usage) error {
	return k.tok.do(context.Background(), "prove", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		return k.tok.st.proveValue(s, h, value, usage)
	})
}

// Quirks are the quirks a token was opened with (quirks.go).
type Quirks = quirks

// QuirksOf is t's entry in the quirks table.
func QuirksOf(t *Token) Quirks { return t.st.quirks }

// MechanismsListed says whether the device lists every mechanism op
// needs; known is false when its mechanism list could not be read.
func MechanismsListed(t *Token, op Op) (listed, known bool) {
	return t.st.caps.have[op], t.st.caps.known
}

// DeriveIgnoringCKADerive derives from k as DeriveHMACKey does but without
// keyward's own check of CKA_DERIVE, and destroys the result: what the
// device alone allows.
func DeriveIgnoringCKADerive(k *Key, data []byte) error {
	return k.tok.do(context.Background(), "derive", k, func(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) error {
		dh, err := k.tok.st.derive(s, h, data)
		if err == nil {
			k.tok.st.mod.ctx.DestroyObject(s, dh)
		}
		return err
	})
}

// SizedEncrypt is nil when Seal on t makes its C_Encrypt into a buffer
// keyward sizes, through the function list p11raw read; else why not.
func SizedEncrypt(t *Token) error {
	if t.st.mod.functions == nil {
		return fmt.Errorf("no function list: %w", t.st.mod.noFunctions)
	}
	return nil
}

// StoreUntrustedWrappingKey stores pub as a public key that may wrap but
// that no SO trusted: what a device must refuse to wrap a transferable key
// under.
func StoreUntrustedWrappingKey(ctx context.Context, t *Token, label string, pub *rsa.PublicKey) error {
	return t.do(ctx, "test_wrapping_key", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		_, err := t.st.mod.ctx.CreateObject(s, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
		})
		return call("C_CreateObject", err)
	})
}

// UnwrapAgain unwraps a copy once more as a received AES key labelled
// label (with kcv recorded, if not empty), without looking whether the
// label is taken: the second object two processes receiving one copy at
// once made, each having found the label free.
func UnwrapAgain(ctx context.Context, t *Token, with string, wrapped []byte, label string, usage Usage, kcv []byte) error {
	template := secretTemplate(label, newID(idRecord{origin: originReceived, kcv: kcv}), TypeAES, usage, PolicyLocal)
	return t.do(ctx, "test_unwrap_again", nil, func(s pkcs11.SessionHandle, _ pkcs11.ObjectHandle) error {
		_, err := t.st.unwrapAs(s, with, wrapped, template)
		return err
	})
}
