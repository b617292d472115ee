package hsm

import (
	"errors"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestQuirksFor: a device is matched on its manufacturer ID and model as
// CK_TOKEN_INFO pads them; anything else is an unknown device, with the
// standard's behaviour assumed.
func TestQuirksFor(t *testing.T) {
	for _, c := range []struct{ manufacturer, model, want string }{
		{"SoftHSM project                 ", "SoftHSM v2      ", "SoftHSM2"},
		{"Mozilla Foundation              ", "NSS 3           ", "NSS softokn"},
		{"", "", ""},
		{"Thales", "Luna K7", ""},
		{"SoftHSM", "SoftHSM v2", ""},
		{"Mozilla Foundation", "Firefox", ""},
	} {
		q := quirksFor(c.manufacturer, c.model)
		if q.Name != c.want {
			t.Errorf("%q %q: matched %q, want %q", c.manufacturer, c.model, q.Name, c.want)
		}
		if c.want == "" && q != unknownDevice {
			t.Errorf("%q %q: unknown, yet quirks %+v", c.manufacturer, c.model, q)
		}
		if (q.hmacGate() != nil) != (c.want == "SoftHSM2") {
			t.Errorf("%q %q: HMAC gate %v, want one for SoftHSM2 alone", c.manufacturer, c.model, q.hmacGate() != nil)
		}
	}
	for _, d := range knownDevices {
		if d.quirks.Name == "" || d.manufacturer == "" {
			t.Errorf("known device %+v without a name or a manufacturer", d)
		}
	}
}

// TestGCMDecryptErrorPerDevice: a failed C_Decrypt of AES-GCM is tampering
// when the device says so in the standard's words on any device, and as
// CKR_GENERAL_ERROR only on a device known to answer a wrong tag that way
// (SoftHSM2). Elsewhere CKR_GENERAL_ERROR is a device fault (ErrDevice,
// 503), never ErrAuthentication.
func TestGCMDecryptErrorPerDevice(t *testing.T) {
	softHSM := quirksFor("SoftHSM project", "SoftHSM v2")
	nss := quirksFor("Mozilla Foundation", "NSS 3")
	unknown := quirksFor("Thales", "Luna K7")
	for _, c := range []struct {
		device string
		q      quirks
		code   uint
		want   error
	}{
		{"SoftHSM2", softHSM, pkcs11.CKR_GENERAL_ERROR, ErrAuthentication},
		{"NSS softokn", nss, pkcs11.CKR_GENERAL_ERROR, ErrDevice},
		{"unknown", unknown, pkcs11.CKR_GENERAL_ERROR, ErrDevice},
		{"SoftHSM2", softHSM, pkcs11.CKR_ENCRYPTED_DATA_INVALID, ErrAuthentication},
		{"NSS softokn", nss, pkcs11.CKR_ENCRYPTED_DATA_INVALID, ErrAuthentication},
		{"unknown", unknown, pkcs11.CKR_ENCRYPTED_DATA_INVALID, ErrAuthentication},
		{"SoftHSM2", softHSM, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, ErrAuthentication},
		{"unknown", unknown, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE, ErrAuthentication},
		{"SoftHSM2", softHSM, pkcs11.CKR_DEVICE_ERROR, ErrDevice},
		{"unknown", unknown, pkcs11.CKR_DEVICE_ERROR, ErrDevice},
		{"unknown", unknown, pkcs11.CKR_KEY_HANDLE_INVALID, ErrKeyNotFound},
	} {
		err := callAs("C_Decrypt", pkcs11.Error(c.code), c.q.gcmDecryptSentinel)
		var code pkcs11.Error
		if !errors.Is(err, c.want) || !errors.As(err, &code) || uint(code) != c.code {
			t.Errorf("%s, %s: got %v, want %v keeping the code", c.device, ckrName(pkcs11.Error(c.code)), err, c.want)
		}
		if c.want != ErrAuthentication && errors.Is(err, ErrAuthentication) {
			t.Errorf("%s, %s: a device fault reported as tampering: %v", c.device, ckrName(pkcs11.Error(c.code)), err)
		}
	}
}
