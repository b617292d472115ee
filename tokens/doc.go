// Package tokens issues and verifies keyward's JWTs — access, refresh,
// pairing, master and bootstrap tokens — signed inside the device: HMAC
// with keys derived from the join key (HS256/384/512), or a device key pair
// (ES256, RS256, PS256, EdDSA). Token state lives in the keystore.
//
// A *Service is safe for concurrent use. Verification fixes the accepted
// algorithms in advance, resolves kid to a known key version, checks exp,
// nbf (with leeway), iss, aud and revocation; a bounded cache makes
// verifying the same token again nearly free, honouring expiry and
// revocation. Revocations reach every node through the database's
// revocation log, which each Service follows (RevocationRefresh).
package tokens
