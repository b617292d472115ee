package safefile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLinkViaProc checks the route unprivileged processes take to name an
// unnamed file (root takes AT_EMPTY_PATH first).
func TestLinkViaProc(t *testing.T) {
	dir := t.TempDir()
	f, err := openUnnamed(dir, 0o600)
	if err != nil {
		t.Skipf("this filesystem has no O_TMPFILE: %v", err)
	}
	defer f.Close()
	if _, err := f.WriteString("content"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "named")
	if err := linkViaProc(f, path); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "content" {
		t.Fatalf("linked file holds %q: %v", got, err)
	}
}
