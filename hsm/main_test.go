package hsm_test

import (
	"os"
	"testing"

	"github.com/keyward/keyward/softhsm"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsm.CleanupTestTokens()
	os.Exit(code)
}
