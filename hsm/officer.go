package hsm

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// Officer is the token's security officer, logged in: what only the SO may
// do. It exists only inside AsSecurityOfficer's callback.
type Officer struct {
	t *Token
	s pkcs11.SessionHandle
}

// ErrSecurityOfficer is a refused security officer login.
var ErrSecurityOfficer = errors.New("security officer login refused")

// AsSecurityOfficer logs the token's security officer in with the PIN
// from pin, runs fn, and logs the SO out. PKCS#11 logs in per token, not
// per session: for that time this process's user login is gone, so other
// device calls wait (they find the login lost and wait to log in again),
// and the user is logged in again before it returns. The SO PIN is read
// once, used once and cleared; a refused one is ErrSecurityOfficer (with
// ErrPINIncorrect or ErrPINLocked) and never tried again here.
func (t *Token) AsSecurityOfficer(ctx context.Context, pin PINSource, fn func(*Officer) error) error {
	if pin == nil {
		return fmt.Errorf("%w: no security officer PIN source", ErrConfig)
	}
	soPIN, err := pin.ReadPIN(ctx)
	if err != nil {
		return fmt.Errorf("security officer of token %q: %w", t.Label(), err)
	}
	defer clear(soPIN)
	st := t.st
	s, err := st.pool.get(ctx) // before loginMu: a new session logs in under it
	if err != nil {
		return err
	}
	st.loginMu.Lock()
	defer st.loginMu.Unlock()
	c := st.mod.ctx
	// Whatever happens, the user is logged in again and every cached
	// handle found again before anyone else uses the device.
	defer func() {
		_ = c.Logout(s)
		if lerr := c.Login(s, pkcs11.CKU_USER, string(st.pin)); lerr != nil && codeOf(lerr) != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			st.pool.drop(s)
		} else {
			st.pool.put(s)
		}
		st.gen.Add(1)
	}()
	if err := c.Logout(s); err != nil && codeOf(err) != pkcs11.CKR_USER_NOT_LOGGED_IN {
		return call("C_Logout", err)
	}
	if err := c.Login(s, pkcs11.CKU_SO, string(soPIN)); err != nil {
		return fmt.Errorf("token %q: %w: %w", st.label, ErrSecurityOfficer, call("C_Login(SO)", err))
	}
	return fn(&Officer{t: t, s: s})
}

// existing returns the object of class labelled label, or 0.
func (o *Officer) existing(label string, class KeyClass) (pkcs11.ObjectHandle, error) {
	h, err := o.t.st.findOne(o.s, label, class)
	if isNotFound(err) {
		return 0, nil
	}
	return h, err
}

// TrustPublicKey makes pub (an RSA key: a node's transfer key) a trusted
// wrapping key of this device, labelled label: a public token object with
// CKA_TRUSTED, which may only wrap. Keys marked CKA_WRAP_WITH_TRUSTED may
// then leave the device wrapped under it, and under nothing untrusted.
// It is idempotent for the same key; another key under label is
// ErrKeyExists.
func (o *Officer) TrustPublicKey(label string, pub *rsa.PublicKey) error {
	st := o.t.st
	h, err := o.existing(label, ClassPublic)
	if err != nil {
		return err
	}
	if h != 0 {
		a, err := st.attrs(o.s, h, pkcs11.CKA_MODULUS)
		if err != nil {
			return err
		}
		if new(big.Int).SetBytes(a[pkcs11.CKA_MODULUS]).Cmp(pub.N) != 0 {
			return fmt.Errorf("%w: %q on token %q trusts another key", ErrKeyExists, label, st.label)
		}
		return nil
	}
	_, err = st.mod.ctx.CreateObject(o.s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
		pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N.Bytes()),
		pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()),
	})
	return call("C_CreateObject", err)
}

// MakeTransportKey makes a trusted AES-256 key labelled label, for moving
// key pairs (too large for RSA-OAEP) to one node: they leave wrapped
// under it, and it leaves once, wrapped under that node's trusted
// transfer key. Only the SO may mark a key trusted, so only the SO makes
// it; it is a public token object (an SO makes no private one), sensitive,
// may only wrap, and is itself extractable only under a trusted key.
// Idempotent: an existing one is kept.
func (o *Officer) MakeTransportKey(label string) error {
	st := o.t.st
	h, err := o.existing(label, ClassSecret)
	if err != nil || h != 0 {
		return err
	}
	template := append([]*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_TRUSTED, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODIFIABLE, false),
	}, UsageWrap.attrs()...)
	template = append(template, PolicyTransferable.attrs()...)
	_, err = st.mod.ctx.GenerateKey(o.s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, template)
	return call("C_GenerateKey", err)
}
