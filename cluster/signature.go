package cluster

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
)

// digestOf is what a sender signs of a copy: every field but the
// signature, each length-prefixed, under a fixed context string. A copy
// moved to another node, another version or another key fails its
// signature.
func digestOf(t keystore.Transfer) []byte {
	b := []byte("keyward transfer v1\x00")
	for _, f := range [][]byte{[]byte(t.To), []byte(t.ToFingerprint), []byte(t.From), []byte(t.Kind), []byte(t.Role),
		[]byte(strconv.Itoa(t.Version)), []byte(t.KCV), []byte(t.Policy), t.PublicKey, t.Challenge, t.Proof, t.Wrapped} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// sign signs t with this node's signing key, in the device.
func sign(ctx context.Context, signer *hsm.Signer, t *keystore.Transfer) error {
	sig, err := signer.SignContext(ctx, digestOf(*t), crypto.SHA256)
	t.Signature = sig
	return err
}

// verified says t was signed by the key pub.
func verified(pub *ecdsa.PublicKey, t keystore.Transfer) bool {
	return ecdsa.VerifyASN1(pub, digestOf(t), t.Signature)
}
