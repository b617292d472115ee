// Package keystore is keyward's shared database — the key registry, the
// encrypted records, token state, the revocation log and the audit log —
// on SQLite (embedded, the default) or PostgreSQL (several nodes, each
// with its own device, on one database).
//
// # Store and Vault
//
// A *Store is the database alone: it holds only ciphertext, token records
// and hashes, never a key or a value. A *Vault is a Store bound to one
// device's keys (a keyring.Ring): making one reconciles the two — every
// registered, unretired key must be in the device with the registry's KCV
// (ErrKeyMismatch otherwise, ErrKeyMissing unless the node is joining) —
// and it does everything that needs both: put and get records, transit
// encryption and file streams (AES-GCM in the device, docs/FORMAT.md),
// rotation and resumable rewrap, and the guarded life of a key version
// (generate, import, retire, destroy: lifecycle.go holds every rule).
//
// # Concurrency
//
// Store and Vault are safe for concurrent use. The database pool gives
// each query a connection of its own; a Vault's reconciled master keys
// sit behind one mutex and are read again by Reconcile. Issued tokens are
// recorded by a group commit (issue_writer.go): concurrent RecordIssue
// calls share one transaction, and Close commits what is queued.
// Single use is one atomic UPDATE (grants.go), so a refresh or pairing
// token is consumed once across goroutines, processes and nodes.
// Revocations append to a log (revoke.go) that every node's verifier
// follows.
//
// # Durability
//
// A write that fails leaves the old value readable: a record, its
// encryption count and its audit entry commit in one transaction, and a
// rewrap commits batch by batch, so a crash loses nothing and a second run
// resumes.
//
// # Errors
//
// Sentinels in errors.go, matched with errors.Is. A database failure is
// ErrDatabase, its message scrubbed of any password. Messages say what
// failed and why; what to run about it is the caller's to add (the CLI
// names commands and flags, the server its fields).
package keystore
