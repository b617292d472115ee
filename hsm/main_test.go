package hsm_test

import (
	"os"
	"testing"

	"github.com/keyward/keyward/softhsm/softhsmtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsmtest.CleanupTestTokens()
	os.Exit(code)
}
