// Package node is the one door into a keyward node, for the CLI and the
// server alike: it opens the node — its PKCS#11 device, the shared
// database, the reconciliation of the two, and the token service — and
// every operation on a node is a method of *Node. Callers keep only flags,
// prompts, HTTP and printing; the rules live below the door, each in the
// library package that owns the data (a destroy guard in keystore, a
// device quirk in hsm, a token rule in tokens).
//
// # Opening
//
// Open makes a *Node from a Config; Config.Resolve fills in the defaults
// (home, database, the SoftHSM2 module). Open stops at a node whose keys
// differ from the key registry, and at one that lacks a registered key
// unless Config.Joining (a node being loaded, whose missing keys
// MissingKeys lists). OpenDevice opens the device alone, for proving keys
// (KCV, CheckKCV) on a node that may disagree with the registry, and
// Diagnose goes as far as it can and reports each step, for `keyward
// doctor`. Their errors already say what to do about a device (a wrong
// PIN, a missing SOFTHSM2_CONF).
//
// # Errors
//
// KindOf is keyward's one error classifier: every sentinel of the library
// packages belongs to one Kind, which the CLI maps to an exit code and the
// server to an HTTP status. Library messages say what failed and why; the
// CLI adds its flag hints, the server its field names.
//
// # Concurrency
//
// A *Node is safe for concurrent use (each part is). Close it once, after
// every caller is done: it stops the token group-commit writer (flushing
// what is queued), closes the database, then the device's sessions.
package node
