package dbtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // SQLite, as the library opens it
)

// InsertRecord writes record name straight into the records table of
// dsn (a SQLite path or a postgres:// URL), sealed in software under key,
// the value of master key version, in the format of docs/FORMAT.md. It
// skips the library, and so its name rule: a record as an older keyward
// may have left it. The shipped binary never links this package.
func InsertRecord(tb testing.TB, dsn string, key []byte, version int, name string, value []byte) {
	tb.Helper()
	blob, err := sealLegacy(key, version, name, value)
	if err != nil {
		tb.Fatal(err)
	}
	driver, query := "sqlite3", `INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`
	if strings.HasPrefix(dsn, "postgres") {
		driver, query = "pgx", `INSERT INTO records (name, key_version, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	if _, err := db.ExecContext(tb.Context(), query, name, version, blob, now, now); err != nil {
		tb.Fatalf("insert record %q: %v", name, err)
	}
}

// sealLegacy is a record: header ‖ nonce ‖ ciphertext ‖ tag, with
// AAD = header ‖ uint32 BE len(name) ‖ name.
func sealLegacy(key []byte, version int, name string, value []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	kcv := make([]byte, aes.BlockSize)
	block.Encrypt(kcv, kcv)
	header := append([]byte("KWE1\x01\x01"), binary.BigEndian.AppendUint32(nil, uint32(version))...)
	header = append(header, kcv[:3]...)
	aad := binary.BigEndian.AppendUint32(append([]byte(nil), header...), uint32(len(name)))
	aad = append(aad, name...)
	nonce := make([]byte, gcm.NonceSize())
	rand.Read(nonce)
	return gcm.Seal(append(header, nonce...), nonce, value, aad), nil
}
