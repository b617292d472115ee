package hsm

import (
	"context"
	"crypto/aes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// KCV returns the key check value: the first 3 bytes of AES-ECB(key, 0^128)
// as 6 upper-case hex digits. keyward owns it rather than trusting a value
// the device supplies unchecked, in this order:
//
//  1. a key that may encrypt: AES-ECB of a zero block, computed in the
//     device now;
//  2. a key keyward imported: the KCV recorded in its CKA_ID at import,
//     after keyward proved the device holds that very value;
//  3. the device's CKA_CHECK_VALUE (SoftHSM2 has it; NSS softokn has not);
//  4. otherwise ErrKCVUnavailable.
func (k *Key) KCV(ctx context.Context) (string, error) {
	if k.Type != TypeAES {
		return "", fmt.Errorf("%w: %s has no KCV (AES keys only)", ErrNotSupported, k)
	}
	info, err := k.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.KCV == "" {
		return "", k.tok.st.kcvUnavailable(k.Label)
	}
	return info.KCV, nil
}

// kcvUnavailable says why a key has no KCV on this device.
func (st *tokenState) kcvUnavailable(label string) error {
	return fmt.Errorf("%w: %q may not encrypt and was generated in the device: %w",
		ErrKCVUnavailable, label, &NotSupportedError{Op: OpCheckValue, Mechanisms: []string{"CKA_CHECK_VALUE"}, Device: st.device()})
}

// kcv is the KCV of AES key h as KCV describes it; "" when unavailable.
func (st *tokenState) kcv(s pkcs11.SessionHandle, h pkcs11.ObjectHandle, mayEncrypt bool, recorded []byte) string {
	if mayEncrypt && st.require(OpAESECB) == nil {
		if block, err := st.encryptZeroBlock(s, h); err == nil {
			return strings.ToUpper(hex.EncodeToString(block[:3]))
		}
	}
	if recorded != nil {
		return strings.ToUpper(hex.EncodeToString(recorded))
	}
	if v := st.readCheckValue(s, h); v != nil {
		return strings.ToUpper(hex.EncodeToString(v))
	}
	return ""
}

// encryptZeroBlock is AES-ECB(key h, 0^128) computed in the device.
func (st *tokenState) encryptZeroBlock(s pkcs11.SessionHandle, h pkcs11.ObjectHandle) ([]byte, error) {
	c := st.mod.ctx
	if err := c.EncryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_ECB, nil)}, h); err != nil {
		return nil, call("C_EncryptInit", err)
	}
	out, err := c.Encrypt(s, make([]byte, aes.BlockSize))
	if err != nil {
		return nil, call("C_Encrypt", err)
	}
	if len(out) != aes.BlockSize {
		return nil, fmt.Errorf("%w: AES-ECB of one block gave %d bytes", ErrDevice, len(out))
	}
	return out, nil
}

// idRecord is what keyward writes into the CKA_ID of every key it makes:
// 8 random bytes, "kw", the origin — 'g' generated here, 'i' imported
// from a value, 'r' received wrapped from another device — and for an
// imported or received AES key its 3-byte KCV, recorded once keyward
// proved the device holds that key. CKA_MODIFIABLE is false, so the
// record stays as written. Keys keyward did not make have other IDs.
type idRecord struct {
	origin byte
	kcv    []byte // imported or received AES keys only
}

const (
	originGenerated = 'g'
	originImported  = 'i'
	originReceived  = 'r'
)

func newID(rec idRecord) []byte {
	id := make([]byte, 8, 14)
	_, _ = rand.Read(id)
	return append(append(id, 'k', 'w', rec.origin), rec.kcv...)
}

func parseID(id []byte) (idRecord, bool) {
	if (len(id) != 11 && len(id) != 14) || id[8] != 'k' || id[9] != 'w' {
		return idRecord{}, false
	}
	rec := idRecord{origin: id[10]}
	switch {
	case rec.origin != originGenerated && rec.origin != originImported && rec.origin != originReceived:
		return idRecord{}, false
	case len(id) == 14 && rec.origin == originGenerated:
		return idRecord{}, false
	case len(id) == 14:
		rec.kcv = id[11:14]
	}
	return rec, true
}

// ComputeKCV is the KCV of a raw AES key computed in Go: what a custodian
// compares with `openssl enc -aes-256-ecb -nopad -K <hex>` over a zero block.
func ComputeKCV(key []byte) (string, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return "", fmt.Errorf("%w: AES key must be 16, 24 or 32 bytes, got %d", ErrInvalidKey, len(key))
	}
	block := make([]byte, aes.BlockSize)
	b.Encrypt(block, block)
	return strings.ToUpper(hex.EncodeToString(block[:3])), nil
}
