package main

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
	"github.com/urfave/cli/v2"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "module", EnvVars: []string{"KEYWARD_PKCS11_MODULE"}, Usage: "absolute path of the PKCS#11 library (default: SoftHSM2 if installed)"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"KEYWARD_TOKEN"}, Usage: "token label, or an RFC 7512 pkcs11: URI"},
		&cli.StringFlag{Name: "pin-source", EnvVars: []string{"KEYWARD_PIN_SOURCE"}, Usage: "where the PIN comes from: env:VAR, file:PATH or prompt (KEYWARD_PIN holds the PIN itself, for CI)"},
		&cli.StringFlag{Name: "home", EnvVars: []string{"KEYWARD_HOME"}, Usage: "keyward's directory (default ~/.keyward)"},
		&cli.StringFlag{Name: "db", EnvVars: []string{"KEYWARD_DB"}, Usage: "the shared database: a SQLite path or sqlite: URL (default $KEYWARD_HOME/keyward.db), or a postgres:// URL"},
		&cli.BoolFlag{Name: "json", Usage: "print stable JSON instead of tables"},
	}
}

// home is --home, or ~/.keyward.
func home(c *cli.Context) string {
	if h := c.String("home"); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return h + "/.keyward"
	}
	return ".keyward"
}

// deviceConfig builds the hsm.Config from the global flags.
func deviceConfig(c *cli.Context) (hsm.Config, error) {
	cfg := hsm.Config{ModulePath: c.String("module")}
	token := c.String("token")
	switch {
	case strings.HasPrefix(token, "pkcs11:"):
		u, err := hsm.ParseURI(token)
		if err != nil {
			return cfg, usageError{err}
		}
		if err := u.ApplyTo(&cfg, promptSecret); err != nil {
			return cfg, usageError{err}
		}
	case token != "":
		cfg.TokenLabel = token
	default:
		return cfg, usagef("no token: set --token or KEYWARD_TOKEN to a token label or a pkcs11: URI")
	}
	if cfg.ModulePath == "" {
		p, err := softhsm.ModulePath()
		if err != nil {
			return cfg, usagef("no PKCS#11 module: set --module or KEYWARD_PKCS11_MODULE to the library's absolute path (%v)", err)
		}
		cfg.ModulePath = p
	}
	if cfg.PIN == nil {
		src, err := pinSource(c)
		if err != nil {
			return cfg, err
		}
		cfg.PIN = src
	}
	return cfg, nil
}

// pinSource is --pin-source; else KEYWARD_PIN; else a prompt on a terminal.
func pinSource(c *cli.Context) (hsm.PINSource, error) {
	if spec := c.String("pin-source"); spec != "" {
		src, err := hsm.ParsePINSource(spec, ttyPrompt())
		if err != nil {
			return nil, usageError{err}
		}
		return src, nil
	}
	if os.Getenv("KEYWARD_PIN") != "" {
		return hsm.PINFromEnv("KEYWARD_PIN"), nil
	}
	if p := ttyPrompt(); p != nil {
		return hsm.PINFromPrompt(p), nil
	}
	return nil, usagef("no PIN: set KEYWARD_PIN_SOURCE to env:VAR or file:PATH (or KEYWARD_PIN in CI)")
}

// openToken opens the device named by the global flags.
func openToken(c *cli.Context) (*hsm.Token, error) {
	cfg, err := deviceConfig(c)
	if err != nil {
		return nil, err
	}
	tok, err := hsm.Open(c.Context, cfg)
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
	case errors.Is(err, hsm.ErrConfig):
		return usageError{err}
	}
	return err
}

// openRing opens the device and its keyward keys; close the token after.
func openRing(c *cli.Context) (*keyring.Ring, func(), error) {
	tok, err := openToken(c)
	if err != nil {
		return nil, nil, err
	}
	return keyring.New(tok), func() { tok.Close() }, nil
}

// isCheckFailure says err is a check that said no (exit 3).
func isCheckFailure(err error) bool {
	return errors.Is(err, hsm.ErrKCVMismatch) || errors.Is(err, hsm.ErrAuthentication) ||
		errors.Is(err, keystore.ErrKeyMismatch) || errors.Is(err, keystore.ErrKeyMissing)
}

// dbDSN is --db, or the embedded SQLite file in the home directory.
func dbDSN(c *cli.Context) string {
	if d := c.String("db"); d != "" {
		return d
	}
	return filepath.Join(home(c), "keyward.db")
}

// openNode opens the device and the database and reconciles them: a node
// whose keys differ from the registry, or lack one, stops here (exit 3).
func openNode(c *cli.Context) (*keystore.Node, func(), error) {
	return openNodeWith(c, keystore.NewNode)
}

// openJoiningNode is openNode for commands that load keys into a node: a
// registered key may be missing (it is about to be imported), a different
// one is still refused.
func openJoiningNode(c *cli.Context) (*keystore.Node, func(), error) {
	return openNodeWith(c, keystore.NewJoiningNode)
}

func openNodeWith(c *cli.Context, newNode func(context.Context, *keystore.Store, *keyring.Ring) (*keystore.Node, error)) (*keystore.Node, func(), error) {
	tok, err := openToken(c)
	if err != nil {
		return nil, nil, err
	}
	store, err := keystore.Open(c.Context, dbDSN(c))
	if err != nil {
		tok.Close()
		return nil, nil, err
	}
	node, err := newNode(c.Context, store, keyring.New(tok))
	if err != nil {
		store.Close()
		tok.Close()
		return nil, nil, err
	}
	return node, func() { store.Close(); tok.Close() }, nil
}
