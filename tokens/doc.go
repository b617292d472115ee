// Package tokens issues and verifies keyward's JWTs — access, refresh,
// pairing, master and bootstrap tokens — signed inside the device. HS256,
// HS384 and HS512 tokens are signed with an HMAC key derived in the device
// from the join key (per join version and algorithm, docs/FORMAT.md), so
// every node holding the join key verifies them, and so can anyone with
// the join key's hex and a stock JWT library. ES256, RS256, PS256 and
// EdDSA tokens are signed with a device key pair, whose public keys JWKS
// publishes. Token records, refresh grants and the revocation log live in
// the keystore; refresh tokens are stored only as hashes.
//
// # Concurrency
//
// A *Service is safe for concurrent use, and verification is built to run
// on every core at once without a lock all cores share: the derived HMAC
// keys and the known headers are copy-on-write maps, the key registry's
// join versions and the device's signing key pairs are views read again at
// most every Options.RevocationRefresh, and the revocation set is 16
// shards of plain maps, a lookup taking its shard's read lock (a sync.Map
// took more than twice the memory per revocation). Its background reader
// (revlog.go) runs while verifications come and
// stops after a minute without; Close stops it for good.
// The device is the bottleneck (one C_Verify per first-time HMAC
// verification); hsm gives each call a session of its own. Single use
// (pairing tokens, refresh tokens) is one atomic database update, so it
// holds across goroutines, processes and nodes.
//
// # Verification
//
// Verify fixes the accepted algorithms in advance (never "none", never a
// method the token names for itself), resolves kid to a registered,
// unretired join version or a signing key pair in the device, checks the
// signature (HMAC in the device: the key cannot leave it), exp and nbf
// with Options.Leeway, iss, aud, the kind of token and revocation.
// Revocations reach every node through the database's revocation log,
// which each Service follows: the first verification after start reads
// the revocations of tokens not yet expired (the log's expires_at index),
// then a background reader reads what is new every RevocationRefresh
// (250 ms by default), so a revocation on another node is seen within
// the interval, this node's own at once. A verification waits on the
// database only for that first read, or when the set is more than two
// intervals old (the reader failing or late): then it reads the log
// itself or, the reader failing, returns its error at once: a dead
// database fails verification as an error, never passes it. An id is
// held until its token's expiry plus Leeway and an hour, filed by that
// minute, so dropping it costs nothing per verification and the set's
// size follows the live revocations only. A bounded, sharded cache keyed
// by the token's exact text makes verifying the same token again nearly
// free; on a hit the key, time, audience, kind and revocation are checked
// again.
//
// # The two parsers
//
// Every token keyward issues has one of a few headers, known by their
// exact encoded bytes, and a payload of a known shape. The direct parser
// (parseDirect, codec.go) reads exactly those, without reflection, and
// declines anything else; a first-time verification through it takes
// about a third of the time it takes through golang-jwt's path on
// SoftHSM2 (BenchmarkVerifyParsers). golang-jwt v5 is the one parser for
// the rest: after checkStrict (no repeated members, no crit, valid UTF-8:
// RFC 7515, 7519 and 8725), jwt.Parser.ParseUnverified decodes the token,
// keyward checks the algorithm, the kid and the signature itself, and
// jwt.Validator checks exp, nbf and iss. The direct parser accepts a
// subset of what the stock path accepts, with the same claims
// (FuzzDifferential). golang-jwt's process-wide signing-method registry is
// left as golang-jwt ships it: other importers in the process keep the
// stock methods.
//
// # Errors
//
// Sentinels are in errors.go, matched with errors.Is. Every verification
// failure wraps ErrInvalid and one reason (ErrExpired, ErrSignature,
// ErrAlgorithm, ErrUnknownKey, ...); a database or device failure during
// verification wraps neither, so it is never reported as a bad token. A
// refused request is a *FieldError naming the field by its JSON name in
// the HTTP API, and wraps ErrRequest (and ErrLifetimeOverMax or
// ErrAlgorithm where that is why). Messages say what failed and why; they
// name no CLI flag or command.
package tokens
