package server_test

import (
	"context"
	"os"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

var bg = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	dbtest.Stop()
	softhsmtest.CleanupTestTokens()
	os.Exit(code)
}
