// Package faultshim is a PKCS#11 module for tests that forwards every call
// to SoftHSM2 and, on demand, fails or hangs the way a network HSM does
// when it restarts or its connection drops (csrc/faultshim.c says how). It is
// built once per test binary with the system's cc and the OASIS headers
// keyward already carries, and loaded like any module, so the whole stack
// above it — miekg/pkcs11, hsm's pool and login repair, the server — runs
// for real. Tests only: the shipped binary never links it.
package faultshim

//go:generate sh -c "cd csrc && go run gen.go"

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Modes of the shim (faultshim.c).
const (
	Healthy = ""        // every call forwarded
	Removed = "removed" // CKR_DEVICE_REMOVED
	Absent  = "absent"  // CKR_TOKEN_NOT_PRESENT
	Session = "session" // CKR_SESSION_HANDLE_INVALID
	Error   = "error"   // CKR_DEVICE_ERROR
	Reinit  = "reinit"  // CKR_DEVICE_REMOVED, then CKR_CRYPTOKI_NOT_INITIALIZED until the module is initialized again
	Hang    = "hang"    // every call blocks until the mode changes
)

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build compiles the shim, once per process, and returns the module's path.
func Build() (string, error) {
	built.once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(self), "csrc")
		include := filepath.Join(src, "..", "..", "..", "hsm", "internal", "p11raw", "include")
		if built.dir, built.err = os.MkdirTemp("", "keyward-faultshim-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "libkwfault.so")
		out, err := exec.Command("cc", "-shared", "-fPIC", "-O2", "-Wall", "-I"+include, "-o", built.path,
			filepath.Join(src, "faultshim.c"), "-ldl", "-lpthread").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("build the fault shim with cc: %v\n%s", err, out)
		}
	})
	return built.path, built.err
}

// Cleanup removes what Build made; TestMain calls it.
func Cleanup() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// Shim is one shim module forwarding to Target, switched by the file
// Control.
type Shim struct {
	Module  string // the shim's path: load this as the PKCS#11 module
	Target  string // the module it forwards to
	Control string // the mode file
}

// New builds the shim and returns one forwarding to target, healthy, its
// control file in tb's temporary directory.
func New(tb testing.TB, target string) *Shim {
	tb.Helper()
	module, err := Build()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Shim{Module: module, Target: target, Control: filepath.Join(tb.TempDir(), "fault")}
	s.Set(tb, Healthy)
	return s
}

// Env are the variables a process loading the shim needs.
func (s *Shim) Env() []string {
	return []string{"KW_FAULT_TARGET=" + s.Target, "KW_FAULT_CONTROL=" + s.Control}
}

// Setenv sets Env in this process, for a test that loads the shim itself.
func (s *Shim) Setenv(tb testing.TB) {
	tb.Helper()
	tb.Setenv("KW_FAULT_TARGET", s.Target)
	tb.Setenv("KW_FAULT_CONTROL", s.Control)
}

// Set switches the shim to mode, atomically (every later call sees it).
func (s *Shim) Set(tb testing.TB, mode string) {
	tb.Helper()
	tmp := s.Control + ".new"
	if err := os.WriteFile(tmp, []byte(mode+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, s.Control); err != nil {
		tb.Fatal(err)
	}
}
