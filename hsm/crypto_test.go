package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"io"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

const knownKey = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"

func TestGCMMatchesGo(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	k, err := tok.ImportAES(t.Context(), "gcm", mustHex(t, knownKey), hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal, "")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(mustHex(t, knownKey))
	gcm, _ := cipher.NewGCM(block)

	for _, size := range []int{0, 1, 16, 1000, 65536} {
		pt := bytes.Repeat([]byte{byte(size)}, size)
		aad := []byte("record:db-password")
		sealed, err := k.Seal(t.Context(), pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != hsm.NonceSize+size+hsm.TagSize {
			t.Fatalf("sealed %d bytes into %d", size, len(sealed))
		}
		nonce := sealed[:hsm.NonceSize]
		if want := gcm.Seal(nonce[:hsm.NonceSize:hsm.NonceSize], nonce, pt, aad); !bytes.Equal(sealed, want) {
			t.Fatalf("%d bytes: device GCM differs from Go's crypto/cipher GCM", size)
		}
		// And the other way: the device opens what Go sealed.
		goSealed := gcm.Seal(append([]byte(nil), nonce...), nonce, pt, aad)
		got, err := k.Open(t.Context(), goSealed, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("device could not open Go's ciphertext: %v", err)
		}
	}

	// Two seals of one message never share a nonce.
	a, _ := k.Seal(t.Context(), []byte("x"), nil)
	b, _ := k.Seal(t.Context(), []byte("x"), nil)
	if bytes.Equal(a[:hsm.NonceSize], b[:hsm.NonceSize]) {
		t.Fatal("nonce repeated")
	}
}

// TestSealSizesItsOwnBuffer: Seal makes its one C_Encrypt into a buffer
// keyward sizes, through the function list p11raw reads out of
// miekg/pkcs11 (this build links the version it reads). On SoftHSM2, whose
// size query is right, nothing else would notice that path gone, and
// NSS softokn would fail every Seal; this test fails instead.
func TestSealSizesItsOwnBuffer(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	if err := hsm.SizedEncrypt(tok); err != nil {
		t.Fatalf("Seal cannot size its own buffer: %v", err)
	}
	k, err := tok.ImportAES(t.Context(), "gcm", mustHex(t, knownKey), hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal, "")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(mustHex(t, knownKey))
	gcm, _ := cipher.NewGCM(block)
	for _, size := range []int{0, 65536} {
		pt := bytes.Repeat([]byte{1}, size)
		sealed, err := k.Seal(t.Context(), pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		nonce := sealed[:hsm.NonceSize]
		if !bytes.Equal(sealed[hsm.NonceSize:], gcm.Seal(nil, nonce, pt, nil)) {
			t.Fatalf("%d bytes: sealed differs from Go's GCM", size)
		}
	}
}

func TestGCMRejectsTampering(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	k, err := tok.GenerateAES(t.Context(), "gcm", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	other, err := tok.GenerateAES(t.Context(), "other", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("context")
	sealed, err := k.Seal(t.Context(), []byte("the database password"), aad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name   string
		key    *hsm.Key
		sealed []byte
		aad    []byte
	}{
		{"nonce", k, flip(0), aad},
		{"ciphertext", k, flip(hsm.NonceSize + 3), aad},
		{"tag", k, flip(len(sealed) - 1), aad},
		{"aad", k, sealed, []byte("contexu")},
		{"no aad", k, sealed, nil},
		{"truncated", k, sealed[:len(sealed)-1], aad},
		{"too short", k, sealed[:hsm.NonceSize+hsm.TagSize-1], aad},
		{"wrong key", other, sealed, aad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.key.Open(t.Context(), tc.sealed, tc.aad)
			if !errors.Is(err, hsm.ErrAuthentication) {
				t.Fatalf("got %v, want ErrAuthentication", err)
			}
			if pt != nil {
				t.Fatalf("returned %d bytes of plaintext with the error", len(pt))
			}
		})
	}
	// The session that saw the failures still works.
	if _, err := k.Open(t.Context(), sealed, aad); err != nil {
		t.Fatalf("after failures: %v", err)
	}
}

// hmacData is the join-key derivation input of the token design: four
// blocks "kw-jwt-HS256" ‖ i (big-endian uint32).
func hmacData() []byte {
	var d []byte
	for i := byte(1); i <= 4; i++ {
		d = append(d, []byte("kw-jwt-HS256")...)
		d = append(d, 0, 0, 0, i)
	}
	return d
}

func TestDerivedHMACMatchesGo(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	base, err := tok.ImportAES(t.Context(), "keyward/join/v1", mustHex(t, knownKey), hsm.UsageDerive, hsm.PolicyLocal, "")
	if err != nil {
		t.Fatal(err)
	}
	data := hmacData()
	k, err := tok.DeriveHMACKey(t.Context(), base, data, "jwt-HS256")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := k.Attribute(t.Context(), 0x11 /* CKA_VALUE */); err == nil || len(v) != 0 {
		t.Fatal("the derived HMAC key is readable")
	}
	// Independently: K = AES-ECB(base, data), then Go's HMAC.
	block, _ := aes.NewCipher(mustHex(t, knownKey))
	K := make([]byte, len(data))
	for i := 0; i < len(data); i += 16 {
		block.Encrypt(K[i:i+16], data[i:i+16])
	}
	msg := bytes.Repeat([]byte("header.payload."), 20)[:300]
	for _, tc := range []struct {
		hash crypto.Hash
		new  func() hash.Hash
	}{{crypto.SHA256, sha256.New}, {crypto.SHA384, sha512.New384}, {crypto.SHA512, sha512.New}} {
		mac := hmac.New(tc.new, K)
		mac.Write(msg)
		want := mac.Sum(nil)
		got, err := k.HMAC(t.Context(), tc.hash, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%v: device HMAC differs from Go's HMAC over AES-ECB(base, data)", tc.hash)
		}
		if err := k.VerifyHMAC(t.Context(), tc.hash, msg, want); err != nil {
			t.Fatalf("%v verify: %v", tc.hash, err)
		}
		bad := bytes.Clone(want)
		bad[len(bad)-1] ^= 0x80
		for _, m := range [][]byte{bad, want[:len(want)-1], nil} {
			if err := k.VerifyHMAC(t.Context(), tc.hash, msg, m); !errors.Is(err, hsm.ErrAuthentication) {
				t.Fatalf("%v verify of a wrong MAC: %v, want ErrAuthentication", tc.hash, err)
			}
		}
	}
	// The same answers where the device's C_Verify cannot be trusted and
	// keyward signs and compares instead (NSS softokn).
	hsm.VerifyBySign(tok)
	mac := hmac.New(sha256.New, K)
	mac.Write(msg)
	want := mac.Sum(nil)
	if err := k.VerifyHMAC(t.Context(), crypto.SHA256, msg, want); err != nil {
		t.Fatalf("verify by signing: %v", err)
	}
	want[0] ^= 1
	if err := k.VerifyHMAC(t.Context(), crypto.SHA256, msg, want); !errors.Is(err, hsm.ErrAuthentication) {
		t.Fatalf("verify by signing, wrong MAC: %v, want ErrAuthentication", err)
	}
}

func TestDeriveRefusesBadBase(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	noDerive, err := tok.GenerateAES(t.Context(), "master", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal)
	if err != nil {
		t.Fatal(err)
	}
	// keyward checks CKA_DERIVE itself: NSS softokn would derive anyway.
	if _, err := tok.DeriveHMACKey(t.Context(), noDerive, hmacData(), "x"); !errors.Is(err, hsm.ErrNotSupported) ||
		!strings.Contains(err.Error(), "CKR_KEY_FUNCTION_NOT_PERMITTED") {
		t.Fatalf("derived from a key without CKA_DERIVE: %v", err)
	}
	join, _ := tok.GenerateAES(t.Context(), "join", 256, hsm.UsageDerive, hsm.PolicyLocal)
	if _, err := tok.DeriveHMACKey(t.Context(), join, make([]byte, 20), "x"); !errors.Is(err, hsm.ErrConfig) {
		t.Fatalf("20-byte derivation data: %v, want ErrConfig", err)
	}
}

func TestSigners(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	msg := []byte("a token to sign")
	digest := sha256.Sum256(msg)
	for _, kind := range []hsm.KeyPairType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		t.Run(string(kind), func(t *testing.T) {
			if err := tok.Require(kind.Op()); err != nil {
				t.Skip(err)
			}
			k, err := tok.GenerateKeyPair(t.Context(), "sign-"+string(kind), kind, hsm.PolicyLocal)
			if err != nil {
				t.Fatal(err)
			}
			s, err := k.Signer(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var signer crypto.Signer = s
			switch pub := signer.Public().(type) {
			case *ecdsa.PublicKey:
				sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					t.Fatal("ECDSA signature does not verify with crypto/ecdsa")
				}
			case *rsa.PublicKey:
				sig, err := signer.Sign(nil, digest[:], crypto.SHA256)
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
					t.Fatalf("PKCS #1 v1.5: %v", err)
				}
				sig, err = signer.Sign(nil, digest[:], &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash})
				if err != nil {
					t.Fatal(err)
				}
				if err := rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
					t.Fatalf("PSS: %v", err)
				}
			case ed25519.PublicKey:
				sig, err := signer.Sign(nil, msg, crypto.Hash(0))
				if err != nil {
					t.Fatal(err)
				}
				if !ed25519.Verify(pub, msg, sig) {
					t.Fatal("Ed25519 signature does not verify with crypto/ed25519")
				}
			default:
				t.Fatalf("public key of type %T", pub)
			}
		})
	}
}

func TestRandom(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	a, b := make([]byte, 32), make([]byte, 32)
	if _, err := io.ReadFull(tok.Random(), a); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(tok.Random(), b)
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 32)) {
		t.Fatal("device random bytes repeat or are zero")
	}
}
