// Package cluster moves keys from device to device, so that every node of
// a cluster holds the same master and join keys (and signing key pairs)
// without any key's hex existing outside a device.
//
// # Who trusts whom
//
// Each node has an identity in its own device: a transfer key pair (RSA
// 3072, whose private half may only unwrap and never leaves) and a node
// signing key (EC P-256, sign only, never leaves). Its fingerprint —
// SHA-256 over both public keys, 16 groups of 4 hex digits — is what two
// operators read to each other. Two decisions, each made by people at one
// device:
//
//   - Admit: a holder's security officer (SO PIN) marks the new node's
//     transfer key trusted in the holder's device. Keys created
//     transferable (CKA_WRAP_WITH_TRUSTED) can then leave the holder
//     wrapped for that node, and the device itself refuses any other
//     wrap.
//   - Accept: the new node's operator stores the holder's signing key in
//     the new node's device. The new node then takes the copies that key
//     signs, and no others: the database alone cannot hand it a key.
//
// # Copies
//
// A copy is a key wrapped for one node's transfer key (RSA-OAEP; a key
// pair goes under an AES transport key the holder's SO made for that node
// at admission, which itself travels once by RSA-OAEP), stored in the
// database with the registry's KCV (a join key, which may not encrypt,
// carries an HMAC proof from a key derived from it instead) and signed by
// the sender. The receiver checks the signature and the address, unwraps
// the copy as a session object, proves it is the key the registry names,
// and only then unwraps it into the device under its label; a copy that
// fails any check is refused and deleted, and leaves nothing behind.
//
// Sync does a node's round: take what waits for it, record what its device
// holds, and send what the nodes its device trusts lack. keyward serve runs
// it every second, so a key generated, imported or rotated on an admitted
// node reaches every node within seconds.
//
// # Concurrency
//
// A *Cluster is safe for concurrent use; Sync, Admit and Revoke run one
// at a time. The processes of one node (keyward serve, and keyward node
// accept or sync beside it) share its device: they take turns at Sync,
// Init and Accept through a file lock in the node's home directory
// (lock.go), so that a copy is never unwrapped twice into two objects
// under one label. Several nodes sync at once safely: a copy is stored
// once per sender, node and key version, and a key taken twice is taken
// once.
package cluster
