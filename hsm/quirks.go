package hsm

import "strings"

// quirks are the ways one device departs from the PKCS#11 text: the one
// place keyward keeps which device does what. Open looks the token up in
// knownDevices once; code consults tokenState.quirks, never a
// manufacturer string. Each field is named after its row in
// docs/DEVICES.md ("Departures and what keyward does"), whose number is in
// the field's comment.
//
// Where keyward copes the same way on every device (it computes KCVs,
// records a key's origin, checks CKA_DERIVE, learns to verify by signing)
// the field only records what the device does: no code branches on it,
// and TestQuirksMatchDevice checks it against the device.
type quirks struct {
	// Name is the device as keyward names it ("SoftHSM2"); "" for a
	// device not in knownDevices.
	Name string

	// 1. C_Encrypt's size query for AES-GCM leaves out the tag. keyward
	// sizes the buffer itself on every device where this build can
	// (p11raw); where it cannot, Seal on such a device fails at once
	// with ErrNotSupported instead of CKR_BUFFER_TOO_SMALL.
	GCMSizeQueryOmitsTag bool
	// 2. AES keys have no CKA_CHECK_VALUE. Every device: keyward owns
	// the KCV (kcv.go) and learns at use whether the attribute is there.
	NoCheckValue bool
	// 3. CKA_LOCAL is false on keys the device generated. Every device:
	// keyward records the origin in the key's CKA_ID.
	LocalFalseWhenGenerated bool
	// 4. No Ed25519. Every device: read from the mechanism list (caps.go).
	NoEdDSA bool
	// 5. C_Verify answers a wrong HMAC as a fault, not
	// CKR_SIGNATURE_INVALID. Every device: after such a fault keyward
	// checks by signing and comparing, from then on (hmac.go).
	HMACVerifyFaults bool
	// 6. Derives from a key whose CKA_DERIVE is false. Every device:
	// keyward reads CKA_DERIVE itself before deriving (hmac.go).
	DerivesWithoutCKADerive bool
	// 7. CKM_AES_ECB_ENCRYPT_DATA works but is not in the mechanism
	// list: keyward tries it anyway (caps.go). Set for unknown devices
	// too: a refusal then is ErrNotSupported all the same.
	DeriveUnlisted bool
	// 8. Sets no PIN retry flags after a wrong PIN. Every device:
	// keyward says the flags a token sets (token.go).
	NoPINRetryFlags bool
	// 9. HMAC calls from several threads contend inside the library:
	// HMAC verifications pass a gate one at a time (gate.go).
	HMACContends bool
	// 10. One user token per module. Tests that need two tokens skip.
	OneTokenPerModule bool
	// 11. A software token, whose keys are files on this machine's disk:
	// Token.Software names it, and serve and /readyz warn.
	SoftwareToken bool
	// 12. A wrong GCM tag (or aad, or key) on C_Decrypt answers
	// CKR_GENERAL_ERROR. Only on such a device is that code
	// ErrAuthentication; elsewhere it is a device fault (gcm.go).
	BadTagIsGeneralError bool
	// 13. Wraps a CKA_WRAP_WITH_TRUSTED key under a key not marked
	// trusted. Every device: keyward tries it once (policy.go); where
	// the device wraps, it makes no transferable key and moves none.
	NoTrustedWrap bool
}

// knownDevices are the devices keyward has met, matched on the token's
// manufacturer ID (exactly) and model (by prefix), both without their
// blank padding. A new device is a new entry; the first match wins.
var knownDevices = []struct {
	manufacturer, modelPrefix string
	quirks                    quirks
}{
	{"SoftHSM project", "SoftHSM", quirks{
		Name:                 "SoftHSM2",
		HMACContends:         true,
		SoftwareToken:        true,
		BadTagIsGeneralError: true,
	}},
	{"Mozilla Foundation", "NSS", quirks{
		Name:                    "NSS softokn",
		GCMSizeQueryOmitsTag:    true,
		NoCheckValue:            true,
		LocalFalseWhenGenerated: true,
		NoEdDSA:                 true,
		HMACVerifyFaults:        true,
		DerivesWithoutCKADerive: true,
		DeriveUnlisted:          true,
		NoPINRetryFlags:         true,
		OneTokenPerModule:       true,
		SoftwareToken:           true,
		NoTrustedWrap:           true,
	}},
}

// unknownDevice are the quirks assumed of a device not in knownDevices:
// it does what the standard says, and an unlisted derive mechanism is
// still tried.
var unknownDevice = quirks{DeriveUnlisted: true}

// quirksFor looks a token up in knownDevices by its CK_TOKEN_INFO
// manufacturerID and model.
func quirksFor(manufacturer, model string) quirks {
	manufacturer, model = strings.TrimSpace(manufacturer), strings.TrimSpace(model)
	for _, d := range knownDevices {
		if manufacturer == d.manufacturer && strings.HasPrefix(model, d.modelPrefix) {
			return d.quirks
		}
	}
	return unknownDevice
}

// triesUnlisted says op is tried even though the device does not list
// its mechanism (DeriveUnlisted).
func (q *quirks) triesUnlisted(op Op) bool { return op == OpDerive && q.DeriveUnlisted }
