package testmain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInBinary: the shipped binary links neither this package nor the
// helpers it cleans up after, nor the testing package they import.
func TestNotInBinary(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "github.com/keyward/keyward/cmd/keyward").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "testing", "github.com/keyward/keyward/internal/testmain",
			"github.com/keyward/keyward/keystore/dbtest", "github.com/keyward/keyward/softhsm/softhsmtest":
			t.Errorf("keyward links %s", dep)
		}
	}
}
