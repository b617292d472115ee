// Package testmain is the TestMain of keyward's test packages: it runs a
// package's tests and then removes what the test helpers keep for the
// whole test binary, the throwaway PostgreSQL cluster of
// keystore/dbtest and the SoftHSM2 home of softhsm/softhsmtest.
//
// Each test package has one line:
//
//	func TestMain(m *testing.M) { testmain.Run(m) }
//
// or, with work of its own around the tests, Main. Only _test.go files
// import it (it imports testing); the shipped binary never links it, and
// TestNotInBinary checks that.
package testmain

import (
	"fmt"
	"os"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/faultshim"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

// Run runs the tests, cleans up after the helpers, and exits with the
// tests' code.
func Run(m *testing.M) { Main(m, nil) }

// Main is Run with a package's own work around the tests. setup, if not
// nil, runs before them: an error from it is printed and the binary exits
// 1 without running any test. The teardown it returns, if not nil, runs
// after them, while the helpers' databases and tokens still exist, with
// the tests' exit code; it returns the code to exit with (non-zero to fail
// the binary for what it found).
func Main(m *testing.M, setup func() (teardown func(code int) int, err error)) {
	os.Exit(run(m, setup))
}

func run(m *testing.M, setup func() (func(int) int, error)) int {
	defer cleanup()
	var teardown func(int) int
	if setup != nil {
		var err error
		if teardown, err = setup(); err != nil {
			fmt.Fprintln(os.Stderr, "TestMain setup:", err)
			return 1
		}
	}
	code := m.Run()
	if teardown != nil {
		code = teardown(code)
	}
	return code
}

// cleanup stops the PostgreSQL cluster and removes the SoftHSM2 home, if
// the tests made them.
func cleanup() {
	dbtest.Stop()
	softhsmtest.CleanupTestTokens()
	faultshim.Cleanup()
}
