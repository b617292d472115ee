// Package softhsm makes throwaway SoftHSM2 tokens for tests, CI, the quick
// start and `keyward softhsm init`.
//
// SoftHSM2 reads its configuration file (SOFTHSM2_CONF) once, when the
// library is initialized, so a process can use one configuration only:
// the first Configure (or NewToken) of a process sets SOFTHSM2_CONF, and a
// later one with another directory is refused.
package softhsm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/keyward/keyward/hsm"
)

// ErrNotInstalled means no libsofthsm2.so was found.
var ErrNotInstalled = errors.New("SoftHSM2 is not installed")

// modulePaths are where distributions put the library.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                      // Debian, Ubuntu, Alpine
	"/usr/lib/" + debianArch() + "/softhsm/libsofthsm2.so", // Debian multiarch
	"/usr/lib64/pkcs11/libsofthsm2.so",                     // Fedora, RHEL
	"/usr/lib64/softhsm/libsofthsm2.so",                    // openSUSE
	"/usr/lib/pkcs11/libsofthsm2.so",                       // Arch
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",             // Homebrew, Apple silicon
	"/usr/local/lib/softhsm/libsofthsm2.so",                // Homebrew, Intel; source builds
}

func debianArch() string {
	switch runtime.GOARCH {
	case "arm64":
		return "aarch64-linux-gnu"
	case "386":
		return "i386-linux-gnu"
	}
	return "x86_64-linux-gnu"
}

// ModulePath returns the path of libsofthsm2.so.
func ModulePath() (string, error) {
	for _, p := range modulePaths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no libsofthsm2.so in %v; install it (Debian: sudo apt-get install softhsm2)", ErrNotInstalled, modulePaths)
}

var conf struct {
	mu   sync.Mutex
	path string // the SOFTHSM2_CONF this process uses, once chosen
}

// Configure makes dir a SoftHSM2 home (dir/softhsm2.conf and dir/tokens/)
// and points this process's SOFTHSM2_CONF at it. It must come before the
// library is first loaded in the process; it returns the config file path.
func Configure(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "softhsm2.conf")
	conf.mu.Lock()
	defer conf.mu.Unlock()
	if conf.path == path {
		return path, nil
	}
	if conf.path != "" {
		return "", fmt.Errorf("softhsm: this process already uses %s; SoftHSM2 reads SOFTHSM2_CONF once per process", conf.path)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return "", fmt.Errorf("softhsm: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		text := "# SoftHSM2 configuration written by keyward\n" +
			"directories.tokendir = " + tokens + "\n" +
			"objectstore.backend = file\n" +
			"log.level = ERROR\n" +
			"slots.removable = false\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return "", fmt.Errorf("softhsm: %w", err)
		}
	}
	if err := os.Setenv("SOFTHSM2_CONF", path); err != nil {
		return "", err
	}
	conf.path = path
	return path, nil
}

// Token is an initialized SoftHSM2 token (or, in tests, an external device).
type Token struct {
	Module   string // path of the PKCS#11 library
	Label    string
	Serial   string
	Slot     uint
	ConfPath string // the SOFTHSM2_CONF it lives under; empty for an external device
	pin      []byte
	soPIN    []byte
}

// String names the token; it never shows a PIN.
func (t *Token) String() string {
	return fmt.Sprintf("token %q (serial %s) in %s", t.Label, t.Serial, t.Module)
}

// PIN returns a copy of the user PIN.
func (t *Token) PIN() []byte { return append([]byte(nil), t.pin...) }

// SOPIN returns a copy of the security officer PIN (nil for an external device).
func (t *Token) SOPIN() []byte { return append([]byte(nil), t.soPIN...) }

// PINSource yields the user PIN from memory.
func (t *Token) PINSource() hsm.PINSource {
	return hsm.PINFromPrompt(func(context.Context, string) ([]byte, error) { return t.PIN(), nil })
}

// Config is the hsm.Config that opens this token.
func (t *Token) Config() hsm.Config {
	return hsm.Config{ModulePath: t.Module, TokenLabel: t.Label, PIN: t.PINSource()}
}

// External names a token of another device (a real HSM dedicated to
// tests, or NSS softokn) that keyward's tests use in place of SoftHSM2.
func External(module, label string, pin []byte) *Token {
	return &Token{Module: module, Label: label, pin: append([]byte(nil), pin...)}
}

// Open opens the token through hsm.
func (t *Token) Open(ctx context.Context) (*hsm.Token, error) { return hsm.Open(ctx, t.Config()) }

// Env is the environment a keyward process needs to use this token,
// PIN included (KEYWARD_PIN): pass it to child processes, never print it.
func (t *Token) Env() []string {
	env := []string{
		"KEYWARD_PKCS11_MODULE=" + t.Module,
		"KEYWARD_TOKEN=" + t.Label,
		"KEYWARD_PIN=" + string(t.pin),
	}
	if t.ConfPath != "" {
		env = append(env, "SOFTHSM2_CONF="+t.ConfPath)
	}
	return env
}

// NewToken initializes a token labelled label in the SoftHSM2 home dir
// (see Configure) with random user and SO PINs.
func NewToken(dir, label string) (*Token, error) {
	return NewTokenWithPINs(dir, label, RandomPIN(), RandomPIN())
}

// NewTokenWithPINs is NewToken with the caller's PINs.
func NewTokenWithPINs(dir, label string, userPIN, soPIN []byte) (*Token, error) {
	confPath, err := Configure(dir)
	if err != nil {
		return nil, err
	}
	module, err := ModulePath()
	if err != nil {
		return nil, err
	}
	mod, err := hsm.LoadModule(module)
	if err != nil {
		return nil, err
	}
	defer mod.Close()
	slot, serial, err := mod.InitToken(label, soPIN, userPIN)
	if err != nil {
		return nil, fmt.Errorf("softhsm: initialize token %q: %w", label, err)
	}
	return &Token{Module: module, Label: label, Serial: serial, Slot: slot, ConfPath: confPath,
		pin: append([]byte(nil), userPIN...), soPIN: append([]byte(nil), soPIN...)}, nil
}

// RandomPIN returns 16 random hex digits.
func RandomPIN() []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return []byte(hex.EncodeToString(b))
}
