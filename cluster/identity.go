package cluster

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
)

// Labels of the objects this package keeps in a device.
const (
	// TransferKeyLabel is the node's RSA transfer key: copies wrapped for
	// this device unwrap under it, and nowhere else.
	TransferKeyLabel = "keyward/node/transfer"
	// SigningKeyLabel is the node's EC signing key: it signs the copies
	// this node sends, so receivers can tell them from forgeries.
	SigningKeyLabel = "keyward/node/signing"
)

// trustedLabel is node id's transfer key, trusted by this device's SO.
func trustedLabel(id string) string { return "keyward/trusted/" + id }

// transportLabel is this device's transport key for node id (key pairs
// go to id wrapped under it).
func transportLabel(id string) string { return "keyward/transport/" + id }

// transportFromLabel is node id's transport key, received by this device.
func transportFromLabel(id string) string { return "keyward/transport-from/" + id }

// senderLabel is node id's signing key, accepted by this device's
// operator: copies id signs are taken here.
func senderLabel(id string) string { return "keyward/sender/" + id }

// Identity is a node: the public halves of its transfer and signing keys,
// and what people compare to be sure of them.
type Identity struct {
	ID          string // the first 12 hex digits of the fingerprint
	Fingerprint string // SHA-256 of both keys, 16 groups of 4 hex digits
	Transfer    *rsa.PublicKey
	Signing     *ecdsa.PublicKey
	transferDER []byte
	signingDER  []byte
}

// identityOf computes a node's identity from its two public keys.
func identityOf(transfer *rsa.PublicKey, signing *ecdsa.PublicKey) (Identity, error) {
	tder, err := x509.MarshalPKIXPublicKey(transfer)
	if err != nil {
		return Identity{}, err
	}
	sder, err := x509.MarshalPKIXPublicKey(signing)
	if err != nil {
		return Identity{}, err
	}
	sum := sha256.Sum256(append(append([]byte("keyward node\x00"), tder...), sder...))
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	groups := make([]string, 0, len(h)/4)
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return Identity{ID: strings.ToLower(h[:12]), Fingerprint: strings.Join(groups, " "), Transfer: transfer, Signing: signing,
		transferDER: tder, signingDER: sder}, nil
}

// identityOfRecord reads a node's identity from its database record and
// checks the record's id and fingerprint against its keys.
func identityOfRecord(n keystore.NodeRecord) (Identity, error) {
	tp, err := x509.ParsePKIXPublicKey(n.PublicKey)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: node %s: its transfer key does not parse: %v", ErrIdentity, n.ID, err)
	}
	sp, err := x509.ParsePKIXPublicKey(n.SigningKey)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: node %s: its signing key does not parse: %v", ErrIdentity, n.ID, err)
	}
	transfer, ok1 := tp.(*rsa.PublicKey)
	signing, ok2 := sp.(*ecdsa.PublicKey)
	if !ok1 || !ok2 {
		return Identity{}, fmt.Errorf("%w: node %s: keys of the wrong types", ErrIdentity, n.ID)
	}
	id, err := identityOf(transfer, signing)
	if err != nil {
		return Identity{}, err
	}
	if id.ID != n.ID || id.Fingerprint != n.Fingerprint {
		return Identity{}, fmt.Errorf("%w: node %s: its keys give id %s and fingerprint %s, not what the database says", ErrIdentity, n.ID, id.ID, id.Fingerprint)
	}
	return id, nil
}

// NormalizeFingerprint reads a fingerprint as people write it (any case,
// spaces or colons between groups) in the form keyward prints.
func NormalizeFingerprint(s string) (string, error) {
	h := strings.ToUpper(strings.Map(func(r rune) rune {
		if r == ' ' || r == ':' || r == '-' || r == '\t' {
			return -1
		}
		return r
	}, s))
	if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("%w: a fingerprint is 64 hex digits (16 groups of 4), as keyward node list prints it", ErrIdentity)
	}
	groups := make([]string, 0, 16)
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return strings.Join(groups, " "), nil
}

// readIdentity reads this device's node keys; ok is false when it has
// none yet (the node was never initialized).
func readIdentity(ctx context.Context, tok *hsm.Token) (Identity, bool, error) {
	transfer, err := tok.TransferKey(ctx, TransferKeyLabel)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	pub, err := tok.PublicKey(ctx, SigningKeyLabel)
	if errors.Is(err, hsm.ErrKeyNotFound) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	signing, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return Identity{}, false, fmt.Errorf("%w: %s on this device is not an EC key", ErrIdentity, SigningKeyLabel)
	}
	id, err := identityOf(transfer, signing)
	return id, err == nil, err
}

// makeIdentity makes this device's node keys: the transfer key pair
// (private half unwrap-only, never leaves) and the node signing key (sign
// only, never leaves). A half-made identity (one key of the two) is
// completed.
func makeIdentity(ctx context.Context, tok *hsm.Token) (Identity, error) {
	if _, err := tok.TransferKey(ctx, TransferKeyLabel); errors.Is(err, hsm.ErrKeyNotFound) {
		if _, err := tok.GenerateTransferKey(ctx, TransferKeyLabel); err != nil {
			return Identity{}, err
		}
	} else if err != nil {
		return Identity{}, err
	}
	if _, err := tok.PublicKey(ctx, SigningKeyLabel); errors.Is(err, hsm.ErrKeyNotFound) {
		if _, err := tok.GenerateKeyPair(ctx, SigningKeyLabel, hsm.ECP256, hsm.PolicyLocal); err != nil {
			return Identity{}, err
		}
	} else if err != nil {
		return Identity{}, err
	}
	id, ok, err := readIdentity(ctx, tok)
	if err == nil && !ok {
		err = fmt.Errorf("%w: the node keys just made cannot be found", ErrIdentity)
	}
	return id, err
}

// publicDER is a public key's PKIX DER, for a transfer's key pair.
func publicDER(pub crypto.PublicKey) ([]byte, error) { return x509.MarshalPKIXPublicKey(pub) }
