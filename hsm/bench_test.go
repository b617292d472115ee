package hsm_test

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/miekg/pkcs11"
)

// Each benchmark is a pair: keyward's API, and the bare miekg/pkcs11 loop
// on a session of its own with a pre-found handle ("raw"). Both run with
// RunParallel, so -cpu 1,2 measures one and two goroutines. ops/s is the
// figure to compare; keyward should reach 95% of raw.

type benchKeys struct {
	tok    *hsm.Token
	gcm    *hsm.Key
	mac    *hsm.Key
	ecdsa  *hsm.Key
	signer *hsm.Signer
}

func setupBench(b *testing.B) *benchKeys {
	b.Helper()
	_, tok := softhsmtest.OpenTestToken(b)
	k := &benchKeys{tok: tok}
	var err error
	if k.gcm, err = tok.GenerateAES(b.Context(), "keyward/master/v1", 256, hsm.UsageEncrypt|hsm.UsageDecrypt, hsm.PolicyLocal); err != nil {
		b.Fatal(err)
	}
	join, err := tok.GenerateAES(b.Context(), "keyward/join/v1", 256, hsm.UsageDerive, hsm.PolicyLocal)
	if err != nil {
		b.Fatal(err)
	}
	if k.mac, err = tok.DeriveHMACKey(b.Context(), join, hmacData(), "jwt-HS256"); err != nil {
		b.Fatal(err)
	}
	if k.ecdsa, err = tok.GenerateKeyPair(b.Context(), "keyward/signing/v1", hsm.ECP256, hsm.PolicyLocal); err != nil {
		b.Fatal(err)
	}
	if k.signer, err = k.ecdsa.Signer(b.Context()); err != nil {
		b.Fatal(err)
	}
	return k
}

func opsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// pair runs keyward's op and the raw op as sub-benchmarks.
func pair(b *testing.B, key *hsm.Key, keyward func() error, raw func(r *hsm.Raw) error) {
	b.Run("keyward", func(b *testing.B) {
		if err := keyward(); err != nil { // warm
			b.Fatal(err)
		}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := keyward(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		opsPerSecond(b)
	})
	b.Run("raw", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			r, done, err := hsm.RawFor(key)
			if err != nil {
				b.Error(err)
				return
			}
			defer done()
			for pb.Next() {
				if err := raw(r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		opsPerSecond(b)
	})
}

var msg300 = bytes.Repeat([]byte("x"), 300)

func BenchmarkHMACSign(b *testing.B) {
	k := setupBench(b)
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
	pair(b, k.mac,
		func() error { _, err := k.mac.HMAC(b.Context(), crypto.SHA256, msg300); return err },
		func(r *hsm.Raw) error {
			if err := r.Ctx.SignInit(r.Session, mech, r.Handle); err != nil {
				return err
			}
			_, err := r.Ctx.Sign(r.Session, msg300)
			return err
		})
}

func BenchmarkHMACVerify(b *testing.B) {
	k := setupBench(b)
	mac, err := k.mac.HMAC(b.Context(), crypto.SHA256, msg300)
	if err != nil {
		b.Fatal(err)
	}
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}
	pair(b, k.mac,
		func() error { return k.mac.VerifyHMAC(b.Context(), crypto.SHA256, msg300, mac) },
		func(r *hsm.Raw) error {
			if err := r.Ctx.VerifyInit(r.Session, mech, r.Handle); err != nil {
				return err
			}
			return r.Ctx.Verify(r.Session, msg300, mac)
		})
}

func benchGCMSeal(b *testing.B, size int) {
	k := setupBench(b)
	pt := make([]byte, size)
	rand.Read(pt)
	aad := []byte("record-name")
	b.SetBytes(int64(size))
	pair(b, k.gcm,
		func() error { _, err := k.gcm.Seal(b.Context(), pt, aad); return err },
		func(r *hsm.Raw) error {
			// The raw loop counts its nonces instead of drawing them.
			var nonce [12]byte
			binary.BigEndian.PutUint64(nonce[4:], uint64(r.Handle)^uint64(r.Session)<<32^hsm.Counter.Next())
			params := pkcs11.NewGCMParams(nonce[:], aad, 128)
			defer params.Free()
			if err := r.Ctx.EncryptInit(r.Session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, r.Handle); err != nil {
				return err
			}
			_, err := r.Encrypt(pt, make([]byte, len(pt)+hsm.TagSize))
			return err
		})
}

func BenchmarkGCMSeal1K(b *testing.B)  { benchGCMSeal(b, 1024) }
func BenchmarkGCMSeal64K(b *testing.B) { benchGCMSeal(b, 64*1024) }

func BenchmarkECDSASign(b *testing.B) {
	k := setupBench(b)
	digest := sha256.Sum256([]byte("token"))
	mech := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
	pair(b, k.ecdsa,
		func() error { _, err := k.signer.Sign(nil, digest[:], crypto.SHA256); return err },
		func(r *hsm.Raw) error {
			if err := r.Ctx.SignInit(r.Session, mech, r.Handle); err != nil {
				return err
			}
			_, err := r.Ctx.Sign(r.Session, digest[:])
			return err
		})
}

// BenchmarkGCMPair1K is a decrypt plus an encrypt of 1 KiB, the unit of
// work of a rewrap: the raw rate is the ceiling keystore's rewrap is
// measured against.
func BenchmarkGCMPair1K(b *testing.B) {
	k := setupBench(b)
	pt := make([]byte, 1024)
	rand.Read(pt)
	aad := []byte("record-name")
	sealed, err := k.gcm.Seal(b.Context(), pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	pair(b, k.gcm,
		func() error {
			p, err := k.gcm.Open(b.Context(), sealed, aad)
			if err != nil {
				return err
			}
			_, err = k.gcm.Seal(b.Context(), p, aad)
			return err
		},
		func(r *hsm.Raw) error {
			params := pkcs11.NewGCMParams(sealed[:12], aad, 128)
			if err := r.Ctx.DecryptInit(r.Session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, r.Handle); err != nil {
				params.Free()
				return err
			}
			p, err := r.Ctx.Decrypt(r.Session, sealed[12:])
			params.Free()
			if err != nil {
				return err
			}
			var nonce [12]byte
			binary.BigEndian.PutUint64(nonce[4:], hsm.Counter.Next())
			params = pkcs11.NewGCMParams(nonce[:], aad, 128)
			defer params.Free()
			if err := r.Ctx.EncryptInit(r.Session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, r.Handle); err != nil {
				return err
			}
			_, err = r.Encrypt(p, make([]byte, len(p)+hsm.TagSize))
			return err
		})
}
