package keystore_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// A SQLite file removed or replaced under a running node: writes and the
// readiness ping fail as the database being unavailable, and nothing is
// acknowledged into a file no one will open again.
func TestDatabaseFileRemovedOrReplaced(t *testing.T) {
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			path := dbtest.SQLite(t)
			n, _ := node(t, path)
			ctx := t.Context()
			if _, err := n.Generate(ctx, keyring.Master, 256, hsm.PolicyLocal); err != nil {
				t.Fatal(err)
			}
			if err := n.Put(ctx, "before", []byte("v")); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{path, path + "-wal", path + "-shm"} {
				os.Remove(f)
			}
			if how == "replaced" {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := n.Put(ctx, "after", []byte("v"))
			if !errors.Is(err, keystore.ErrDatabase) || !strings.Contains(err.Error(), how) {
				t.Fatalf("a write after the file was %s: %v, want ErrDatabase saying %q", how, err, how)
			}
			if err := n.Store().Ping(ctx); !errors.Is(err, keystore.ErrDatabase) {
				t.Fatalf("ping after the file was %s: %v", how, err)
			}
		})
	}
}
