package hsm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// Sentinel errors. Match them with errors.Is; the PKCS#11 return value, when
// there is one, is kept and can be read with errors.As into a pkcs11.Error.
var (
	ErrConfig         = errors.New("invalid configuration")
	ErrModule         = errors.New("PKCS#11 module cannot be loaded")
	ErrTokenNotFound  = errors.New("token not found")
	ErrPINIncorrect   = errors.New("PIN incorrect")
	ErrPINLocked      = errors.New("PIN locked")
	ErrPINSource      = errors.New("PIN cannot be read")
	ErrKeyNotFound    = errors.New("key not found")
	ErrKeyExists      = errors.New("a key with this label already exists")
	ErrInvalidKey     = errors.New("invalid key")
	ErrKCVMismatch    = errors.New("key check value mismatch")
	ErrAuthentication = errors.New("message authentication failed")
	ErrNotSupported   = errors.New("not supported by this key or device") // a *NotSupportedError says what the device lacks
	ErrClosed         = errors.New("token closed")
	// ErrNotWrappable: the device refused to wrap a key under another —
	// the key is not transferable, or the wrapping key not trusted.
	ErrNotWrappable = errors.New("the device refuses to wrap this key under that key")
	ErrDevice       = errors.New("device error")
)

// ErrKCVUnavailable: neither keyward nor the device can tell the key's
// check value (a derive-only key generated in a device without
// CKA_CHECK_VALUE). It also matches ErrNotSupported.
var ErrKCVUnavailable = errors.New("KCV unavailable")

// OpError is a failed PKCS#11 call: the operation, the return value and the
// sentinel it maps to.
type OpError struct {
	Op       string       // the PKCS#11 function, e.g. "C_Login"
	Code     pkcs11.Error // the CKR_* return value
	Sentinel error        // one of the Err* values above
}

func (e *OpError) Error() string {
	return fmt.Sprintf("%s: %s (%s)", e.Op, e.Sentinel, ckrName(e.Code))
}

// Unwrap exposes both the sentinel and the raw pkcs11.Error.
func (e *OpError) Unwrap() []error { return []error{e.Sentinel, e.Code} }

// ckrName is "CKR_PIN_INCORRECT" for a known code, the hex value otherwise.
func ckrName(code pkcs11.Error) string {
	s := code.Error() // "pkcs11: 0xA0: CKR_PIN_INCORRECT"
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s[i+2:], "CKR_") {
		return s[i+2:]
	}
	return fmt.Sprintf("CKR 0x%X", uint(code))
}

// sentinelFor maps a PKCS#11 return value to the sentinel a caller acts on.
var sentinelFor = map[pkcs11.Error]error{
	pkcs11.CKR_PIN_INCORRECT:              ErrPINIncorrect,
	pkcs11.CKR_PIN_INVALID:                ErrPINIncorrect,
	pkcs11.CKR_PIN_LEN_RANGE:              ErrPINIncorrect,
	pkcs11.CKR_PIN_LOCKED:                 ErrPINLocked,
	pkcs11.CKR_PIN_EXPIRED:                ErrPINLocked,
	pkcs11.CKR_SLOT_ID_INVALID:            ErrTokenNotFound,
	pkcs11.CKR_TOKEN_NOT_PRESENT:          ErrTokenNotFound,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED:       ErrTokenNotFound,
	pkcs11.CKR_KEY_TYPE_INCONSISTENT:      ErrNotSupported,
	pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED: ErrNotSupported,
	pkcs11.CKR_MECHANISM_INVALID:          ErrNotSupported,
	pkcs11.CKR_MECHANISM_PARAM_INVALID:    ErrNotSupported,
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED:     ErrNotSupported,
	pkcs11.CKR_ATTRIBUTE_SENSITIVE:        ErrNotSupported,
	pkcs11.CKR_KEY_UNEXTRACTABLE:          ErrNotSupported,
	pkcs11.CKR_ATTRIBUTE_VALUE_INVALID:    ErrInvalidKey,
	pkcs11.CKR_KEY_SIZE_RANGE:             ErrInvalidKey,
	pkcs11.CKR_TEMPLATE_INCONSISTENT:      ErrInvalidKey,
	pkcs11.CKR_KEY_HANDLE_INVALID:         ErrKeyNotFound,
	pkcs11.CKR_OBJECT_HANDLE_INVALID:      ErrKeyNotFound,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:   ErrModule,
	pkcs11.CKR_SIGNATURE_INVALID:          ErrAuthentication,
	pkcs11.CKR_SIGNATURE_LEN_RANGE:        ErrAuthentication,
}

// call wraps the error of the PKCS#11 function op. Every call into the
// module goes through it (or callAs) so errors name the operation and keep
// the code.
func call(op string, err error) error { return callAs(op, err, nil) }

// callAs is call for a caller that knows what some codes mean for this
// call on this device: sentinel(code), where not nil, is the sentinel;
// sentinelFor decides the rest. The sentinel is decided here, once: an
// OpError is never changed after it is made.
func callAs(op string, err error, sentinel func(pkcs11.Error) error) error {
	if err == nil {
		return nil
	}
	var code pkcs11.Error
	if !errors.As(err, &code) {
		return fmt.Errorf("%s: %w", op, err)
	}
	var s error
	if sentinel != nil {
		s = sentinel(code)
	}
	if s == nil {
		s = sentinelFor[code]
	}
	if s == nil {
		s = ErrDevice
	}
	return &OpError{Op: op, Code: code, Sentinel: s}
}

// codeOf returns the CKR_* value inside err, or 0 (CKR_OK) when there is none.
func codeOf(err error) pkcs11.Error {
	var code pkcs11.Error
	if errors.As(err, &code) {
		return code
	}
	return 0
}

// sessionBroken says the session cannot be used again and must be dropped.
func sessionBroken(err error) bool {
	switch codeOf(err) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_OPERATION_ACTIVE:
		return true
	}
	return false
}

// needsRelogin says the login or the cached object handle was lost behind
// our back (logout, all sessions closed): log in again, find the key again.
func needsRelogin(err error) bool {
	switch codeOf(err) {
	case pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}
