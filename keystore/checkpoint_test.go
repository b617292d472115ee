package keystore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
)

// Commits checkpoint the SQLite WAL only past 10,000 pages; the store's
// checkpointer does it beside the writer, so after a pause the WAL starts
// over instead of growing: a second burst of commits writes where the
// first did.
func TestWALCheckpointedBesideTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	s, err := keystore.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if pages, err := keystore.WALAutocheckpoint(t.Context(), s); err != nil || pages != 10000 {
		t.Fatalf("wal_autocheckpoint is %d (%v), want 10000", pages, err)
	}
	now := time.Now()
	burst := func(from int) int64 {
		for i := from; i < from+1000; i++ {
			id := fmt.Sprintf("tok-%05d", i)
			if err := s.RecordIssue(t.Context(), keystore.TokenRecord{ID: id, Kind: "access", Subject: "s", Issued: now, Expires: now.Add(time.Hour), Family: id}, nil); err != nil {
				t.Fatal(err)
			}
		}
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	first := burst(0)
	time.Sleep(1500 * time.Millisecond) // the checkpointer's tick comes within a second
	second := burst(1000)
	// Without a checkpoint between them the second burst appends: the
	// WAL doubles (1000 commits are 2,000–3,000 pages).
	if second > first+first/4 {
		t.Fatalf("the WAL grew from %d to %d bytes over a pause and a second burst: nothing checkpointed it meanwhile", first, second)
	}
	t.Logf("WAL after each burst: %.1f MiB, %.1f MiB", float64(first)/(1<<20), float64(second)/(1<<20))
}
