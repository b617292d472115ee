// Package node opens one keyward node — its PKCS#11 device, the shared
// database, the reconciliation of the two, the key ring and the token
// service — for the CLI and the server alike, so that both open a node the
// same way and explain a failure the same way.
//
// A *Node is safe for concurrent use (each part is). Close it once, after
// every caller is done: it stops the token group-commit writer (flushing
// what is queued), closes the database, then the device's sessions.
package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/tokens"
)

// Config says which device, which database and which home directory make
// the node. It holds no secret (the PIN is read from Device.PIN at Open).
type Config struct {
	Device hsm.Config // ModulePath empty: SoftHSM2, when installed
	DB     string     // a SQLite path, sqlite: URL or postgres:// URL; empty: Home/keyward.db
	Home   string     // keyward's directory; empty: ~/.keyward
	// Joining opens a node that is being loaded: registered keys may still
	// be missing from its device (Keys.Missing lists them). A different key
	// under a registered label is refused all the same.
	Joining bool
	Tokens  tokens.Options
}

// Node is an opened node.
type Node struct {
	Device *hsm.Token
	Ring   *keyring.Ring
	Store  *keystore.Store
	Keys   *keystore.Node // the registry-reconciled keys: records, files, rotation
	Tokens *tokens.Service
	home   string
}

// DefaultHome is ~/.keyward (or .keyward when there is no home directory).
func DefaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".keyward")
	}
	return ".keyward"
}

// Resolve fills in the defaults of cfg: home, database and module.
func (cfg *Config) Resolve() error {
	if cfg.Home == "" {
		cfg.Home = DefaultHome()
	}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(cfg.Home, "keyward.db")
	}
	if cfg.Device.ModulePath == "" {
		p, err := softhsm.ModulePath()
		if err != nil {
			return fmt.Errorf("%w: no PKCS#11 module: set --module or KEYWARD_PKCS11_MODULE to the library's absolute path (%v)", hsm.ErrConfig, err)
		}
		cfg.Device.ModulePath = p
	}
	return nil
}

// OpenDevice opens the device of cfg (after Resolve) alone, for the verbs
// that need no database; its errors say what to do.
func OpenDevice(ctx context.Context, cfg hsm.Config) (*hsm.Token, error) {
	tok, err := hsm.Open(ctx, cfg)
	if err != nil {
		return nil, ExplainOpen(cfg, err)
	}
	return tok, nil
}

// ExplainOpen adds what to do to an error from hsm.Open.
func ExplainOpen(cfg hsm.Config, err error) error {
	switch {
	case errors.Is(err, hsm.ErrPINIncorrect):
		return fmt.Errorf("%w; check the PIN source (%s)", err, cfg.PIN)
	case errors.Is(err, hsm.ErrPINLocked):
		return fmt.Errorf("%w; the security officer must unlock it", err)
	case errors.Is(err, hsm.ErrTokenNotFound) && strings.Contains(cfg.ModulePath, "softhsm") && os.Getenv("SOFTHSM2_CONF") == "":
		return fmt.Errorf("%w (SOFTHSM2_CONF is not set: SoftHSM2 looks in its system-wide token directory)", err)
	}
	return err
}

// Open opens the device and the database, reconciles them (a node whose
// keys differ from the registry, or lack one unless cfg.Joining, stops
// here) and makes the token service.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	tok, err := OpenDevice(ctx, cfg.Device)
	if err != nil {
		return nil, err
	}
	n := &Node{Device: tok, Ring: keyring.New(tok), home: cfg.Home}
	if n.Store, err = keystore.Open(ctx, cfg.DB); err != nil {
		n.Close()
		return nil, err
	}
	reconcile := keystore.NewNode
	if cfg.Joining {
		reconcile = keystore.NewJoiningNode
	}
	if n.Keys, err = reconcile(ctx, n.Store, n.Ring); err != nil {
		n.Close()
		return nil, err
	}
	if n.Tokens, err = tokens.New(ctx, n.Keys, cfg.Tokens); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Warnings are what opening the node found worth saying that did not stop
// it: a PIN file or database file others can read.
func (n *Node) Warnings() []string {
	return append(append([]string(nil), n.Device.Warnings()...), n.Store.Warnings()...)
}

// Home is the node's keyward directory.
func (n *Node) Home() string { return n.home }

// SoftwareToken says the device is a software token (SoftHSM2, NSS
// softokn), whose keys are files on this machine's disk, not an HSM.
func (n *Node) SoftwareToken() bool { return n.Device.Software() != "" }

// Close flushes and stops the token writer, then closes the database and
// the device.
func (n *Node) Close() error {
	var err error
	if n.Store != nil {
		err = n.Store.Close()
	}
	if n.Device != nil {
		err = errors.Join(err, n.Device.Close())
	}
	return err
}
