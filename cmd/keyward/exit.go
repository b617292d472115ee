package main

import (
	"context"
	"errors"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/tokens"
)

// Exit codes. Never renumber them: scripts depend on them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitCheckFailed = 3
)

// exitCodes maps node's error kinds to exit codes; a kind not here is
// exitError.
var exitCodes = map[node.Kind]int{
	node.KindUsage:         exitUsage,
	node.KindKeyMismatch:   exitCheckFailed,
	node.KindBadCiphertext: exitCheckFailed,
	node.KindInvalidToken:  exitCheckFailed,
	node.KindAlreadyUsed:   exitCheckFailed,
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	if code, ok := exitCodes[node.KindOf(err)]; ok {
		return code
	}
	return exitError
}

// hints say, for errors of the library (whose messages name no flag or
// command), what to run or set about them on the command line.
var hints = []struct {
	sentinel error
	hint     string
}{
	{node.ErrNoModule, "set --module or KEYWARD_PKCS11_MODULE"},
	{node.ErrUnknownDatabase, "check --db (KEYWARD_DB); to start this database with the device's keys, run keyward --adopt-device-keys … (or set KEYWARD_ADOPT_DEVICE_KEYS=1) once"},
	{hsm.ErrModule, "check --module or KEYWARD_PKCS11_MODULE"},
	{keystore.ErrNoActiveKey, "generate one with keyward key generate --role ROLE, or import one"},
	{keyring.ErrNoKey, "generate one with keyward key generate --role ROLE, or import one"},
	{keystore.ErrTooLarge, "raise --max-record (KEYWARD_MAX_RECORD)"},
	{tokens.ErrLifetimeOverMax, "raise --max-token-lifetime (KEYWARD_MAX_TOKEN_LIFETIME) to allow more"},
	{hsm.ErrDevice, "the device cannot be used now: check it and the connection to it, then try again"},
	{context.DeadlineExceeded, "no answer within --timeout (KEYWARD_TIMEOUT): the device or the database does not answer"},
}

// message is err as the CLI says it: a request field named by its flag
// ("expires_in: …" is "--expires-in …"), and the first hint that applies.
func message(err error) string {
	msg := err.Error()
	var fe *tokens.FieldError
	if errors.As(err, &fe) {
		msg = strings.Replace(msg, fe.Error(), "--"+strings.ReplaceAll(fe.Field, "_", "-")+" "+fe.Err.Error(), 1)
	}
	for _, h := range hints {
		if errors.Is(err, h.sentinel) {
			return msg + "; " + h.hint
		}
	}
	return msg
}
