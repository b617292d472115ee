package keystore_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

func streamNode(t *testing.T) *keystore.Vault {
	t.Helper()
	n, _ := node(t, dbtest.SQLite(t))
	if _, err := n.Import(t.Context(), keyring.Master, hexKey(1), hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	return n
}

func encrypt(t *testing.T, n *keystore.Vault, pt []byte, context string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := n.EncryptStream(t.Context(), bytes.NewReader(pt), &out, context); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestStreamRoundTrip(t *testing.T) {
	n := streamNode(t)
	for _, size := range []int{0, 1, keystore.ChunkSize - 1, keystore.ChunkSize, keystore.ChunkSize + 1, 3*keystore.ChunkSize + 7} {
		pt := make([]byte, size)
		rand.Read(pt)
		ct := encrypt(t, n, pt, "backup.tar")
		chunks := max(1, (size+keystore.ChunkSize-1)/keystore.ChunkSize)
		if want := keystore.HeaderSize + keystore.StreamIDSize + size + chunks*(hsm.NonceSize+hsm.TagSize); len(ct) != want {
			t.Fatalf("%d bytes: ciphertext %d, want %d", size, len(ct), want)
		}
		var out bytes.Buffer
		if err := n.DecryptStream(t.Context(), bytes.NewReader(ct), &out, "backup.tar"); err != nil || !bytes.Equal(out.Bytes(), pt) {
			t.Fatalf("%d bytes: %v", size, err)
		}
	}
}

func TestStreamRejectsTampering(t *testing.T) {
	n := streamNode(t)
	pt := make([]byte, 3*keystore.ChunkSize+100)
	rand.Read(pt)
	ct := encrypt(t, n, pt, "ctx")
	other := encrypt(t, n, pt, "ctx")
	chunk := keystore.ChunkSize + hsm.NonceSize + hsm.TagSize
	c0 := keystore.HeaderSize + keystore.StreamIDSize
	swap := bytes.Clone(ct)
	copy(swap[c0:], ct[c0+chunk:c0+2*chunk])
	copy(swap[c0+chunk:], ct[c0:c0+chunk])
	splice := bytes.Clone(ct)
	copy(splice[c0+chunk:], other[c0+chunk:c0+2*chunk])
	flip := bytes.Clone(ct)
	flip[len(flip)-30] ^= 1

	for _, tc := range []struct {
		name    string
		ct      []byte
		context string
	}{
		{"truncated at a chunk boundary", ct[:c0+2*chunk], "ctx"},
		{"truncated mid-chunk", ct[:c0+2*chunk+50], "ctx"},
		{"header only", ct[:c0], "ctx"},
		{"reordered chunks", swap, "ctx"},
		{"chunk spliced from another file", splice, "ctx"},
		{"flipped bit", flip, "ctx"},
		{"wrong context", ct, "other"},
		{"extra chunk appended", append(bytes.Clone(ct), ct[c0:c0+chunk]...), "ctx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := n.DecryptStream(t.Context(), bytes.NewReader(tc.ct), &out, tc.context)
			if !errors.Is(err, hsm.ErrAuthentication) {
				t.Fatalf("got %v, want ErrAuthentication", err)
			}
		})
	}
}

// TestIndependentDecrypt follows docs/FORMAT.md with Go's standard library
// alone and the key's hex, as a program outside keyward would.
func TestIndependentDecrypt(t *testing.T) {
	n := streamNode(t)
	key := hexKey(1)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}

	// A record: header ‖ nonce ‖ ciphertext ‖ tag, AAD = header ‖ len(name) ‖ name.
	if err := n.Put(t.Context(), "db/password", []byte("hunter2")); err != nil {
		t.Fatal(err)
	}
	var blob []byte
	if err := rawDB(t, n.Store().Where()).QueryRow(`SELECT ciphertext FROM records WHERE name = 'db/password'`).Scan(&blob); err != nil {
		t.Fatal(err)
	}
	header := blob[:13]
	if string(header[:4]) != "KWE1" || header[4] != 1 || header[5] != 1 || binary.BigEndian.Uint32(header[6:10]) != 1 {
		t.Fatalf("header % x", header)
	}
	aad := append(append(bytes.Clone(header), 0, 0, 0, byte(len("db/password"))), "db/password"...)
	pt, err := gcm.Open(nil, blob[13:25], blob[25:], aad)
	if err != nil || string(pt) != "hunter2" {
		t.Fatalf("record: %q %v", pt, err)
	}

	// A stream: header, 16-byte stream id, then chunks of nonce ‖
	// ciphertext ‖ tag, AAD = header ‖ stream id ‖ index (8 bytes) ‖ final
	// (1 byte) ‖ len(context) ‖ context.
	msg := make([]byte, 2*65536+10)
	rand.Read(msg)
	ct := encrypt(t, n, msg, "f")
	header, rest := ct[:13+16], ct[13+16:]
	var got []byte
	for i := uint64(0); len(rest) > 0; i++ {
		size := min(len(rest), 65536+28)
		final := size == len(rest)
		aad := binary.BigEndian.AppendUint64(bytes.Clone(header), i)
		aad = append(aad, map[bool]byte{true: 1, false: 0}[final], 0, 0, 0, 1, 'f')
		p, err := gcm.Open(nil, rest[:12], rest[12:size], aad)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		got = append(got, p...)
		rest = rest[size:]
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("stream decrypted independently differs")
	}
}
