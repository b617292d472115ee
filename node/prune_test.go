package node_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

// Prune never deletes a revocation a verifier may still hold, however
// short the retention asked for: the leeway plus two hours at least.
func TestPruneKeepsRevocationsVerifiersHold(t *testing.T) {
	tok := softhsmtest.NewTestToken(t)
	home := t.TempDir()
	n, err := node.Open(t.Context(), node.Config{Device: tok.Config(), Home: home,
		Retention: keystore.PruneOptions{Revocations: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	db, err := sql.Open("sqlite3", filepath.Join(home, "keyward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	for i, expired := range []time.Duration{90 * time.Minute, 3 * time.Hour} {
		if _, err := db.Exec(`INSERT INTO revocations (token_id, expires_at, at) VALUES (?, ?, ?)`,
			"t"+string(rune('a'+i)), now.Add(-expired).UnixMilli(), now.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	p, err := n.Prune(t.Context())
	if err != nil || p.Revocations != 1 {
		t.Fatalf("prune: %+v %v, want the revocation expired 3 hours ago alone", p, err)
	}
}
