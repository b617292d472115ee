package keystore_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// The ciphertext readers' fuzz targets. Every process of a fuzzing run (the
// coordinator and each worker) makes its own SoftHSM2 token and SQLite
// database, once, before f.Fuzz, and imports the same master key, fuzzKey:
// so a seed sealed by one process's node (f.Add, or testdata/fuzz, sealed
// once by a node under this key) opens in every other, and the reference
// reader below, which follows docs/FORMAT.md with crypto/cipher and the
// key's bytes alone, judges any input without knowing who sealed it.
//
// What every target checks:
//   - no panic, and an error is one of the sentinels a caller can match;
//   - the node accepts exactly what the reference reader accepts, with the
//     same plaintext: since the reference is AES-GCM under fuzzKey, an
//     accepted input is byte for byte a ciphertext a node sealed (one of
//     the seeds); every other input, truncated, flipped, spliced or made
//     up, is refused. A seed this process sealed must give back exactly
//     the plaintext it sealed;
//   - a failure returns no plaintext (records) or has written to the
//     writer nothing but whole chunks that authenticated before the failing
//     one (streams: DecryptStream's contract, the caller discards them);
//   - allocation is bounded by the input's size: no length in the formats
//     is read from the input, and nothing may start to.

var fuzzKey = hexKey(0x5a) // AES-256; its KCV is checked against the device's

const (
	fuzzName   = "fuzz/record" // the record FuzzGet reads
	streamHead = keystore.HeaderSize + keystore.StreamIDSize
	sealOver   = hsm.NonceSize + hsm.TagSize
)

// fuzzNode is a node with fuzzKey as master v1, over SQLite.
func fuzzNode(f *testing.F) (*keystore.Vault, string) {
	f.Helper()
	dsn := dbtest.SQLite(f)
	n, _ := node(f, dsn)
	e, err := n.Import(f.Context(), keyring.Master, bytes.Clone(fuzzKey), hsm.PolicyLocal, "")
	if err != nil {
		f.Fatal(err)
	}
	if want := strings.ToUpper(hex.EncodeToString(refKCV)); e.Version != 1 || e.KCV != want {
		f.Fatalf("imported master v%d KCV %s; the reference reader expects v1 KCV %s", e.Version, e.KCV, want)
	}
	return n, dsn
}

// recordBlob reads the stored ciphertext of record name from db.
func recordBlob(f *testing.F, db *sql.DB, name string) []byte {
	f.Helper()
	var blob []byte
	if err := db.QueryRow(`SELECT ciphertext FROM records WHERE name = ?`, name).Scan(&blob); err != nil {
		f.Fatal(err)
	}
	return blob
}

// rawSQLite opens the node's database directly, to play the attacker.
func rawSQLite(f *testing.F, dsn string) *sql.DB {
	f.Helper()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	return db
}

// refAEAD reads the formats with Go's standard library and fuzzKey.
var refAEAD = func() cipher.AEAD {
	block, err := aes.NewCipher(fuzzKey)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return gcm
}()

// refKCV is fuzzKey's KCV: the first 3 bytes of AES-ECB(key, 0¹²⁸).
var refKCV = func() []byte {
	b := make([]byte, aes.BlockSize)
	block, err := aes.NewCipher(fuzzKey)
	if err != nil {
		panic(err)
	}
	block.Encrypt(b, b)
	return b[:3]
}()

// refHeader says whether b starts with a header of kind naming fuzzKey
// (master v1 and its KCV).
func refHeader(b []byte, kind byte) bool {
	return len(b) >= keystore.HeaderSize && string(b[:4]) == "KWE1" && b[4] == kind && b[5] == 1 &&
		binary.BigEndian.Uint32(b[6:10]) == 1 && bytes.Equal(b[10:13], refKCV)
}

// refOpenRecord opens a record (name: the record's name, or "transit" ‖
// 0x00 ‖ context).
func refOpenRecord(blob []byte, name string) ([]byte, bool) {
	if len(blob) < keystore.HeaderSize+sealOver || !refHeader(blob, keystore.KindRecord) {
		return nil, false
	}
	aad := binary.BigEndian.AppendUint32(bytes.Clone(blob[:keystore.HeaderSize]), uint32(len(name)))
	aad = append(aad, name...)
	pt, err := refAEAD.Open(nil, blob[keystore.HeaderSize:keystore.HeaderSize+hsm.NonceSize], blob[keystore.HeaderSize+hsm.NonceSize:], aad)
	return pt, err == nil
}

// refOpenStream returns the plaintext of the chunks that authenticate, in
// order up to the first that does not, and whether the stream is whole.
func refOpenStream(data []byte, context string) ([]byte, bool) {
	if len(data) < streamHead || !refHeader(data, keystore.KindStream) {
		return nil, false
	}
	var out []byte
	rest := data[streamHead:]
	for i := uint64(0); ; i++ {
		size := min(len(rest), keystore.ChunkSize+sealOver)
		final := size == len(rest)
		if size < sealOver {
			return out, false // nothing, or a scrap, where a chunk must be
		}
		aad := binary.BigEndian.AppendUint64(bytes.Clone(data[:streamHead]), i)
		aad = append(aad, map[bool]byte{false: 0, true: 1}[final])
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(context)))
		aad = append(aad, context...)
		pt, err := refAEAD.Open(nil, rest[:hsm.NonceSize], rest[hsm.NonceSize:size], aad)
		if err != nil {
			return out, false
		}
		out = append(out, pt...)
		if final {
			return out, true
		}
		rest = rest[size:]
	}
}

// allocBytes is the process's heap allocation so far. A fuzz worker runs
// one input at a time, so the difference across a call is (nearly all)
// that call's. Small objects are counted a span at a time, large ones
// (what a length read from the input would make) at once.
func allocBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// checkAlloc fails when a call allocated more than a generous multiple of
// its input: a fixed 1 MiB (a stream's two 64 KiB buffers, a database
// read) plus 16 bytes per input byte.
func checkAlloc(t *testing.T, since uint64, input int) {
	t.Helper()
	if got, limit := allocBytes()-since, uint64(1<<20+16*input); got > limit {
		t.Fatalf("reading %d bytes allocated %d bytes (limit %d)", input, got, limit)
	}
}

// checkReadErr: a refusal is a sentinel a caller can match.
func checkReadErr(t *testing.T, err error) {
	t.Helper()
	for _, want := range []error{keystore.ErrFormat, hsm.ErrAuthentication, keystore.ErrKeyMissing, keystore.ErrKeyMismatch} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("error matches no sentinel: %v", err)
}

// damaged returns broken copies of a ciphertext: truncated, a bit flipped
// in each part, another version or KCV in the header, the other kind.
func damaged(ct []byte) [][]byte {
	var out [][]byte
	for _, n := range []int{0, 4, keystore.HeaderSize - 1, keystore.HeaderSize, streamHead, streamHead + sealOver - 1, len(ct) - 1} {
		if n >= 0 && n < len(ct) {
			out = append(out, bytes.Clone(ct[:n]))
		}
	}
	for _, i := range []int{0, 4, 5, 9, 12, keystore.HeaderSize, streamHead, len(ct) / 2, len(ct) - 1} {
		if i < len(ct) {
			c := bytes.Clone(ct)
			c[i] ^= 1
			out = append(out, c)
		}
	}
	return append(out, append(bytes.Clone(ct), 0), append(bytes.Clone(ct), ct[keystore.HeaderSize:]...))
}

// FuzzParseHeader: the header parser accepts exactly the two kinds under
// the master role, and reads version and KCV from their bytes.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte("KWE1\x01\x01\x00\x00\x00\x01\x1a\x2b\x3c"))
	f.Add([]byte("KWE1\x02\x01\xff\xff\xff\xff\x00\x00\x00rest"))
	f.Add([]byte("KWE1\x03\x01\x00\x00\x00\x01\x1a\x2b\x3c"))
	f.Add([]byte("KWE1\x01\x02\x00\x00\x00\x01\x1a\x2b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := keystore.ParseHeader(b)
		valid := len(b) >= keystore.HeaderSize && string(b[:4]) == "KWE1" && b[5] == 1 && (b[4] == keystore.KindRecord || b[4] == keystore.KindStream)
		if (err == nil) != valid {
			t.Fatalf("ParseHeader(% x): %v", b, err)
		}
		if err != nil {
			if !errors.Is(err, keystore.ErrFormat) || h != (keystore.Header{}) {
				t.Fatalf("ParseHeader(% x) = %+v, %v", b, h, err)
			}
			return
		}
		if h.Kind != b[4] || h.KeyVersion < 0 || uint32(h.KeyVersion) != binary.BigEndian.Uint32(b[6:10]) ||
			h.KCV != strings.ToUpper(hex.EncodeToString(b[10:13])) {
			t.Fatalf("ParseHeader(% x) = %+v", b, h)
		}
	})
}

// FuzzGet stores each input as the ciphertext of a record, as someone
// with write access to the database could, and reads it with Node.Get.
func FuzzGet(f *testing.F) {
	n, dsn := fuzzNode(f)
	db := rawSQLite(f, dsn)
	sealed := map[string][]byte{} // ciphertext → plaintext, sealed by this process
	for _, pt := range [][]byte{[]byte("hunter2"), {}, bytes.Repeat([]byte("0123456789abcdef"), 64)} {
		if err := n.Put(f.Context(), fuzzName, pt); err != nil {
			f.Fatal(err)
		}
		blob := recordBlob(f, db, fuzzName)
		sealed[string(blob)] = pt
		f.Add(blob)
		for _, v := range damaged(blob) {
			f.Add(v)
		}
	}
	// A transit ciphertext and a stream under the record's name are not it.
	transit, err := n.Seal(f.Context(), []byte("hunter2"), fuzzName)
	if err != nil {
		f.Fatal(err)
	}
	var stream bytes.Buffer
	if err := n.EncryptStream(f.Context(), strings.NewReader("hunter2"), &stream, fuzzName); err != nil {
		f.Fatal(err)
	}
	f.Add(transit)
	f.Add(stream.Bytes())

	f.Fuzz(func(t *testing.T, blob []byte) {
		if res, err := db.Exec(`UPDATE records SET ciphertext = ? WHERE name = ?`, blob, fuzzName); err != nil {
			t.Fatal(err)
		} else if c, err := res.RowsAffected(); err != nil || c != 1 {
			t.Fatalf("updated %d records: %v", c, err)
		}
		since := allocBytes()
		pt, err := n.Get(t.Context(), fuzzName)
		checkAlloc(t, since, len(blob))
		want, ok := refOpenRecord(blob, fuzzName)
		checkRecord(t, blob, pt, err, want, ok, sealed)
	})
}

// checkRecord compares what the node read from blob with the reference
// reader's verdict.
func checkRecord(t *testing.T, blob, pt []byte, err error, want []byte, ok bool, sealed map[string][]byte) {
	t.Helper()
	if err != nil {
		checkReadErr(t, err)
		if pt != nil {
			t.Fatalf("plaintext returned with an error: %v", err)
		}
		if ok {
			t.Fatalf("refused a well-formed ciphertext (%x): %v", blob, err)
		}
		return
	}
	if !ok {
		t.Fatalf("accepted %x, which is no ciphertext under the key, as %q", blob, pt)
	}
	if !bytes.Equal(pt, want) {
		t.Fatalf("%x: got plaintext %q, the format gives %q", blob, pt, want)
	}
	if p, mine := sealed[string(blob)]; mine && !bytes.Equal(pt, p) {
		t.Fatalf("%x: got plaintext %q, sealed %q", blob, pt, p)
	}
}

// FuzzUnseal: transit ciphertexts (the server's /encrypt and /decrypt)
// under any context.
func FuzzUnseal(f *testing.F) {
	n, dsn := fuzzNode(f)
	sealed := map[string][]byte{}
	for _, tc := range []struct{ pt, context string }{
		{"hunter2", "db/password"},
		{"", ""},
		{strings.Repeat("secret value ", 100), "app/prod/api-key"},
	} {
		blob, err := n.Seal(f.Context(), []byte(tc.pt), tc.context)
		if err != nil {
			f.Fatal(err)
		}
		sealed[string(blob)] = []byte(tc.pt)
		f.Add(blob, tc.context)
		f.Add(blob, tc.context+"x")
		for _, v := range damaged(blob) {
			f.Add(v, tc.context)
		}
	}
	// A stored record is not a transit ciphertext of the same name.
	if err := n.Put(f.Context(), "db/password", []byte("hunter2")); err != nil {
		f.Fatal(err)
	}
	f.Add(recordBlob(f, rawSQLite(f, dsn), "db/password"), "db/password")
	f.Add([]byte(nil), "db/password")
	f.Add([]byte("KWE1"), "")

	f.Fuzz(func(t *testing.T, blob []byte, context string) {
		since := allocBytes()
		pt, err := n.Unseal(t.Context(), blob, context)
		checkAlloc(t, since, len(blob)+len(context))
		want, ok := refOpenRecord(blob, "transit\x00"+context)
		checkRecord(t, blob, pt, err, want, ok, sealed)
	})
}

// FuzzDecryptStream: files (keyward encrypt / decrypt). The seeds hold
// streams of one chunk and one of two, so that a failure after a chunk
// that authenticated is reached.
func FuzzDecryptStream(f *testing.F) {
	n, _ := fuzzNode(f)
	sealed := map[string][]byte{}
	for _, tc := range []struct {
		size    int
		context string
	}{{0, ""}, {7, "backup.tar"}, {1000, ""}, {keystore.ChunkSize + 10, "big"}} {
		pt := bytes.Repeat([]byte("stream plaintext "), tc.size/17+1)[:tc.size]
		var ct bytes.Buffer
		if err := n.EncryptStream(f.Context(), bytes.NewReader(pt), &ct, tc.context); err != nil {
			f.Fatal(err)
		}
		sealed[ct.String()] = pt
		f.Add(ct.Bytes(), tc.context)
		f.Add(ct.Bytes(), tc.context+"x")
		if tc.size < keystore.ChunkSize {
			for _, v := range damaged(ct.Bytes()) {
				f.Add(v, tc.context)
			}
			continue
		}
		c := ct.Bytes()
		first := streamHead + keystore.ChunkSize + sealOver
		flip := bytes.Clone(c)
		flip[len(flip)-1] ^= 1
		f.Add(flip, tc.context)                   // the second chunk fails
		f.Add(bytes.Clone(c[:first]), tc.context) // cut at a chunk boundary
		f.Add(bytes.Clone(c[:first+5]), tc.context)
	}

	f.Fuzz(func(t *testing.T, data []byte, context string) {
		var out bytes.Buffer
		since := allocBytes()
		err := n.DecryptStream(t.Context(), bytes.NewReader(data), &out, context)
		checkAlloc(t, since, len(data)+len(context))
		want, ok := refOpenStream(data, context)
		if err != nil {
			checkReadErr(t, err)
			if ok {
				t.Fatalf("refused a well-formed stream of %d bytes: %v", len(data), err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("failed (%v) after writing %d bytes; only the %d bytes of the chunks that authenticated before the failure may be written",
					err, out.Len(), len(want))
			}
			return
		}
		if !ok {
			t.Fatalf("accepted %d bytes that are no stream under the key", len(data))
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("wrote %d bytes, the format gives %d", out.Len(), len(want))
		}
		if p, mine := sealed[string(data)]; mine && !bytes.Equal(out.Bytes(), p) {
			t.Fatal("the plaintext differs from what was encrypted")
		}
	})
}
