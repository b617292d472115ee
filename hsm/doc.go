// Package hsm is keyward's only door to a PKCS#11 device (a network HSM, a
// YubiHSM, a cloud HSM, or SoftHSM2). It (with its internal p11raw, for the
// one call miekg/pkcs11 cannot make as keyward needs) is the only package
// that imports github.com/miekg/pkcs11; everything above it sees keys as
// *Key values whose secret never leaves the device.
//
// # Modules, tokens and logins
//
// A process loads each PKCS#11 library once: Open and LoadModule share one
// reference-counted module per path, call C_Initialize once (tolerating
// CKR_CRYPTOKI_ALREADY_INITIALIZED from another library in the process) and
// C_Finalize when the last reference goes. Login is per token, not per
// session, so two Opens of one token share one *tokenState: one login, one
// session pool, one key cache. The PIN is read from a PINSource once, at
// Open, and kept in memory only to log in again after the device loses the
// login; a PIN the device refuses is never tried again (a retry loop could
// lock the token), every later call returns the same ErrPINIncorrect.
//
// # Sessions and concurrency
//
// A *Token is safe for concurrent use. A PKCS#11 session is not: two
// goroutines on one session crash SoftHSM2. The pool gives each call a
// session of its own, opening new ones up to Config.MaxSessions (default
// 2×GOMAXPROCS, at least 4) and making callers wait, honouring their
// context, beyond that. Sessions stay open while they are healthy: closing
// the last one would log the token out. A session that fails with
// CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_ERROR,
// CKR_DEVICE_REMOVED or CKR_OPERATION_ACTIVE is closed and dropped, and the
// call is tried on another session.
//
// One exception to "side by side": on a device whose HMAC calls contend
// inside the library (the quirk HMACContends: SoftHSM2), HMAC
// verifications pass a gate one at a time, the waiting callers asleep
// (gate.go).
//
// # Keys and handles
//
// Finding an object by label costs about 30 µs per object in a SoftHSM2
// token, so a *Key finds its handle once and caches it, tagged with the
// login generation. When the device loses the login (all sessions closed,
// a logout) or a handle goes stale (CKR_USER_NOT_LOGGED_IN,
// CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID), the layer logs in
// again, finds the key again by label (a derived session key is derived
// again) and retries the call once. Finding never happens per operation.
//
// Every secret or private key keyward makes is a token object, private,
// sensitive and non-extractable, with every usage flag set explicitly
// (SoftHSM2 defaults the omitted ones to true). Derived HMAC keys are
// session objects with the same protection: the derivation template is
// fixed here, so the base key can never be used as an AES-ECB oracle.
//
// # Devices, quirks and capabilities
//
// Devices differ (docs/DEVICES.md). What keyward knows of how each device
// departs from the standard is in one table, quirks.go: at Open the token
// is matched on its manufacturer ID and model, and code consults the
// resulting quirks (never a manufacturer string); a device not in the
// table is assumed to do what the standard says. Each quirk is named after
// its row in docs/DEVICES.md. The ones that change what keyward does:
// CKR_GENERAL_ERROR from an AES-GCM decryption is tampering
// (ErrAuthentication) only on a device known to answer a wrong tag so,
// SoftHSM2, and a device fault (ErrDevice) elsewhere
// (BadTagIsGeneralError); contending HMAC calls pass a gate
// (HMACContends); an unlisted derive mechanism is tried (DeriveUnlisted);
// software tokens are named as such (SoftwareToken).
//
// Where keyward can cope the same way on every device it does, rather than
// branch per device: the KCV of a key that may encrypt is computed in the
// device by AES-ECB of a zero block; an import is proved (AES-ECB, or an
// HMAC under a key derived from it) before the new object stays; the KCV
// and origin of every key keyward makes are recorded in its CKA_ID (some
// devices have no CKA_CHECK_VALUE or report CKA_LOCAL false for generated
// keys); CKA_DERIVE is checked before deriving; a C_Verify that fails as
// anything but "signature invalid" is checked again by signing and
// comparing, and the token verifies so from then on; and AES-GCM
// encryption makes one C_Encrypt into a buffer keyward sizes (some
// devices' size query leaves out the tag), through internal/p11raw, which
// reads miekg/pkcs11's function list only in a build that links the
// version go.mod pins.
//
// At Open the token's mechanism list is read once; an operation the device
// lacks (Token.Require, Capabilities) fails before any call with
// ErrNotSupported naming the mechanisms and the device.
//
// # Errors
//
// Every PKCS#11 call goes through one helper that names the function and
// keeps the CKR_* value: errors match a sentinel of errors.go with
// errors.Is, and the raw pkcs11.Error with errors.As. No function returns
// a nil value with a nil error.
package hsm
