package node

import (
	"context"
	"errors"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/tokens"
)

// Kind is what an error means to whoever asked: the one classification of
// keyward's errors. The CLI turns a Kind into an exit code
// (cmd/keyward/exit.go), the server into an HTTP status and code
// (server/errors.go); neither looks at a sentinel itself.
type Kind int

const (
	KindInternal            Kind = iota // anything not below: a bug, or a failure nobody foresaw
	KindUsage                           // the request is wrong: a flag, a field, a setting
	KindInvalid                         // an input's content is wrong: a key file, a share, a key value
	KindTooLarge                        // a value over the limit
	KindNotFound                        // no such record or token
	KindNotSupported                    // the device cannot do it
	KindKeyState                        // the keys are not as the operation needs: none active, in use, not in the device
	KindKeyMismatch                     // a key is not the one expected: KCV, registry or ciphertext disagree
	KindBadCiphertext                   // it does not authenticate: tampered, another context, not keyward's
	KindInvalidToken                    // a token that does not verify: signature, expiry, audience, revocation
	KindAlreadyUsed                     // a single-use token used again
	KindDeviceUnavailable               // the device cannot be used now
	KindDatabaseUnavailable             // the database cannot be reached now
	KindTimeout                         // the request ran out of time
)

var kindNames = map[Kind]string{
	KindInternal: "internal", KindUsage: "usage", KindInvalid: "invalid", KindTooLarge: "too large",
	KindNotFound: "not found", KindNotSupported: "not supported", KindKeyState: "key state",
	KindKeyMismatch: "key mismatch", KindBadCiphertext: "bad ciphertext", KindInvalidToken: "invalid token",
	KindAlreadyUsed: "already used", KindDeviceUnavailable: "device unavailable",
	KindDatabaseUnavailable: "database unavailable", KindTimeout: "timeout",
}

func (k Kind) String() string { return kindNames[k] }

// kinds is the classification, first match wins: an error may wrap
// several sentinels (a reused refresh token is revoked and used; a token
// naming an unknown algorithm is invalid and an algorithm error), and the
// one that says most comes first.
var kinds = []struct {
	kind      Kind
	sentinels []error
}{
	{KindAlreadyUsed, []error{keystore.ErrTokenUsed}},
	{KindInvalidToken, []error{tokens.ErrInvalid, tokens.ErrRevoked, tokens.ErrExpired}},
	{KindUsage, []error{tokens.ErrRequest, tokens.ErrAlgorithm, tokens.ErrScopeWidened, keystore.ErrRecordName, keystore.ErrTokenFilter,
		keystore.ErrDSN, hsm.ErrConfig, keyring.ErrRole}},
	{KindTooLarge, []error{keystore.ErrTooLarge}},
	{KindNotFound, []error{keystore.ErrNotFound, keystore.ErrTokenUnknown, keystore.ErrNodeUnknown}},
	{KindBadCiphertext, []error{hsm.ErrAuthentication, keystore.ErrFormat, hsm.ErrBadCopy}},
	{KindKeyMismatch, []error{keystore.ErrKeyMismatch, keystore.ErrKeyMissing, keystore.ErrKeyRetired, hsm.ErrKCVMismatch,
		cluster.ErrFingerprint, cluster.ErrIdentity}},
	{KindKeyState, []error{keystore.ErrNoActiveKey, keystore.ErrKeyState, keystore.ErrKeyInUse, keyring.ErrNoKey,
		hsm.ErrKeyExists, hsm.ErrKeyNotFound, hsm.ErrNotWrappable, cluster.ErrNotMember, cluster.ErrNodeState}},
	{KindNotSupported, []error{hsm.ErrNotSupported}},
	{KindInvalid, []error{hsm.ErrInvalidKey, keyring.ErrWeakKey, ceremony.ErrMalformed, ceremony.ErrKeyLength,
		ceremony.ErrNotFound, ceremony.ErrShares}},
	{KindDatabaseUnavailable, []error{keystore.ErrDatabase, keystore.ErrSchemaNewer}},
	{KindDeviceUnavailable, []error{hsm.ErrDevice, hsm.ErrClosed, hsm.ErrModule, hsm.ErrTokenNotFound,
		hsm.ErrPINIncorrect, hsm.ErrPINLocked, hsm.ErrPINSource}},
	{KindTimeout, []error{context.DeadlineExceeded, context.Canceled}},
}

// KindOf classifies err; nil is KindInternal (callers ask only of errors).
func KindOf(err error) Kind {
	for _, k := range kinds {
		for _, s := range k.sentinels {
			if errors.Is(err, s) {
				return k.kind
			}
		}
	}
	return KindInternal
}
