package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/tokens"
)

// Config says which device, which database and which home directory make
// the node, and tunes its parts. It holds no secret (the PIN is read from
// Device.PIN at Open). Zero values take the library's defaults.
type Config struct {
	Device hsm.Config // ModulePath empty: SoftHSM2, when installed
	DB     string     // a SQLite path, sqlite: URL or postgres:// URL; empty: Home/keyward.db
	Home   string     // keyward's directory; empty: ~/.keyward
	// Joining opens a node that is being loaded: registered keys may still
	// be missing from its device (MissingKeys lists them). A different key
	// under a registered label is refused all the same.
	Joining bool
	// MaxRecord is the largest record or transit plaintext the node
	// seals, in bytes; default keystore.DefaultMaxRecord.
	MaxRecord int64
	Tokens    tokens.Options
	// AdoptDeviceKeys registers the device's master and join keys in a
	// database whose registry is empty; without it such a database is
	// refused (ErrUnknownDatabase).
	AdoptDeviceKeys bool
	// Retention says how long Prune keeps revocations, token records and
	// audit entries (keystore's defaults: a day, 30 days, 90 days).
	Retention keystore.PruneOptions
}

// Node is an opened node. Its parts are its own: callers use its methods.
type Node struct {
	device  *hsm.Token
	ring    *keyring.Ring
	store   *keystore.Store
	vault   *keystore.Vault // the registry-reconciled keys: records, files, rotation
	tokens  *tokens.Service
	cluster *cluster.Cluster
	home    string
	keep    keystore.PruneOptions
	leeway  time.Duration // the token service's
}

// DefaultHome is ~/.keyward (or .keyward when there is no home directory).
func DefaultHome() string {
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".keyward")
	}
	return ".keyward"
}

// ErrNoModule is a node without a PKCS#11 module to load: none was named
// and SoftHSM2 is not installed.
var ErrNoModule = fmt.Errorf("%w: no PKCS#11 module", hsm.ErrConfig)

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
			return fmt.Errorf("%w: name the library's absolute path (%v)", ErrNoModule, err)
		}
		cfg.Device.ModulePath = p
	}
	return nil
}

// openDevice opens the device of cfg (after Resolve); its errors say what
// to do.
func openDevice(ctx context.Context, cfg hsm.Config) (*hsm.Token, error) {
	tok, err := hsm.Open(ctx, cfg)
	if err != nil {
		return nil, explainOpen(cfg, err)
	}
	return tok, nil
}

// explainOpen adds what to do to an error from hsm.Open.
func explainOpen(cfg hsm.Config, err error) error {
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
	tok, err := openDevice(ctx, cfg.Device)
	if err != nil {
		return nil, err
	}
	n := &Node{device: tok, ring: keyring.New(tok), home: cfg.Home, keep: cfg.Retention, leeway: cfg.Tokens.Leeway}
	if n.leeway == 0 {
		n.leeway = tokens.DefaultLeeway
	}
	if n.store, err = keystore.Open(ctx, cfg.DB); err != nil {
		n.Close()
		return nil, err
	}
	if n.vault, err = keystore.NewVault(ctx, n.store, n.ring, keystore.VaultOptions{Joining: cfg.Joining, MaxRecord: cfg.MaxRecord}); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.checkRegistry(ctx, cfg.AdoptDeviceKeys); err != nil {
		n.Close()
		return nil, err
	}
	if n.tokens, err = tokens.New(ctx, n.vault, cfg.Tokens); err != nil {
		n.Close()
		return nil, err
	}
	n.cluster = cluster.New(n.ring, n.store, n.vault, cfg.Home)
	return n, nil
}

// Warnings are what opening the node found worth saying that did not stop
// it: a PIN file or database file others can read.
func (n *Node) Warnings() []string {
	return append(append([]string(nil), n.device.Warnings()...), n.store.Warnings()...)
}

// Home is the node's keyward directory.
func (n *Node) Home() string { return n.home }

// Tokens is the node's token service: issuing, verifying, refreshing and
// revoking tokens signed in its device.
func (n *Node) Tokens() *tokens.Service { return n.tokens }

// Close stops the token service's reader of the revocation log, flushes
// and stops the token writer, then closes the database and the device.
func (n *Node) Close() error {
	var err error
	if n.tokens != nil {
		n.tokens.Close()
	}
	if n.store != nil {
		err = n.store.Close()
	}
	if n.device != nil {
		err = errors.Join(err, n.device.Close())
	}
	return err
}
