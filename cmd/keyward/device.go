package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/tokens"
	"github.com/urfave/cli/v2"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "module", EnvVars: []string{"KEYWARD_PKCS11_MODULE"}, Usage: "absolute path of the PKCS#11 library (default: SoftHSM2 if installed)"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"KEYWARD_TOKEN"}, Usage: "token label, or an RFC 7512 pkcs11: URI"},
		&cli.StringFlag{Name: "pin-source", EnvVars: []string{"KEYWARD_PIN_SOURCE"}, Usage: "where the PIN comes from: env:VAR, file:PATH or prompt (KEYWARD_PIN holds the PIN itself, for CI)"},
		&cli.StringFlag{Name: "home", EnvVars: []string{"KEYWARD_HOME"}, Usage: "keyward's directory (default ~/.keyward)"},
		&cli.StringFlag{Name: "db", EnvVars: []string{"KEYWARD_DB"}, Usage: "the shared database: a SQLite path or sqlite: URL (default $KEYWARD_HOME/keyward.db), a postgres:// URL, or a libpq key=value string; anything else is refused"},
		&cli.DurationFlag{Name: "max-token-lifetime", EnvVars: []string{"KEYWARD_MAX_TOKEN_LIFETIME"}, Value: tokens.DefaultMaxLifetime, Usage: "the longest lifetime of a token or refresh grant this node issues"},
		&cli.IntFlag{Name: "max-sessions", EnvVars: []string{"KEYWARD_MAX_SESSIONS"}, Usage: "most PKCS#11 sessions open at once (default 2 per CPU, at least 4); lower it for an HSM that allows few"},
		&cli.DurationFlag{Name: "timeout", EnvVars: []string{"KEYWARD_TIMEOUT"}, Value: 2 * time.Minute, Usage: "longest a command (not serve) may wait for the device and the database; 0: no bound"},
		&cli.BoolFlag{Name: "adopt-device-keys", EnvVars: []string{"KEYWARD_ADOPT_DEVICE_KEYS"}, Usage: "register the device's master and join keys in a database whose key registry is empty (else such a database is refused: it is likely not the one those keys were used with)"},
		&cli.BoolFlag{Name: "json", Usage: "print stable JSON instead of tables"},
	}
}

// lifetime reads duration flag name, which must be at least a second: a
// token without a lifetime is refused, not given a default.
func lifetime(c *cli.Context, name string) (time.Duration, error) {
	d := c.Duration(name)
	if d < time.Second {
		return 0, usagef("--%s must be at least 1s, got %v", name, d)
	}
	return d, nil
}

// home is --home, or ~/.keyward.
func home(c *cli.Context) string {
	if h := c.String("home"); h != "" {
		return h
	}
	return node.DefaultHome()
}

// nodeConfig builds the node.Config from the global flags, defaults
// resolved.
func nodeConfig(c *cli.Context) (node.Config, error) {
	nc := node.Config{Device: hsm.Config{ModulePath: c.String("module"), MaxSessions: c.Int("max-sessions")}, DB: c.String("db"), Home: home(c), AdoptDeviceKeys: c.Bool("adopt-device-keys")}
	if c.Int("max-sessions") < 0 {
		return nc, usagef("--max-sessions must be 1 or more")
	}
	max, err := lifetime(c, "max-token-lifetime")
	if err != nil {
		return nc, err
	}
	nc.Tokens.MaxLifetime = max
	cfg := &nc.Device
	token := c.String("token")
	switch {
	case strings.HasPrefix(token, "pkcs11:"):
		u, err := hsm.ParseURI(token)
		if err != nil {
			return nc, usageError{err, nil}
		}
		if err := u.ApplyTo(cfg, promptSecret); err != nil {
			return nc, usageError{err, nil}
		}
	case token != "":
		cfg.TokenLabel = token
	default:
		return nc, usagef("no token: set --token or KEYWARD_TOKEN to a token label or a pkcs11: URI")
	}
	if err := nc.Resolve(); err != nil {
		return nc, err
	}
	if cfg.PIN == nil {
		src, err := pinSource(c)
		if err != nil {
			return nc, err
		}
		cfg.PIN = src
	}
	return nc, nil
}

// pinSource is --pin-source; else KEYWARD_PIN; else a prompt on a terminal.
func pinSource(c *cli.Context) (hsm.PINSource, error) {
	if spec := c.String("pin-source"); spec != "" {
		src, err := hsm.ParsePINSource(spec, ttyPrompt())
		if err != nil {
			return nil, usageError{err, nil}
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

// openNode opens the node the global flags name (node.Open): device,
// database, reconciliation, token service. A node whose keys differ from
// the registry, or lack one unless joining, stops here (exit 3). A joining
// node is one being loaded: a registered key may be missing (it is about
// to be imported), a different one is still refused.
func openNode(c *cli.Context, joining bool) (*node.Node, error) {
	cfg, err := nodeConfig(c)
	if err != nil {
		return nil, err
	}
	cfg.Joining = joining
	return openConfigured(c, cfg)
}

// withNode opens the node (openNode), hands it to use and closes it when
// use returns: the open and close of every verb that works on the node.
func withNode(c *cli.Context, joining bool, use func(*node.Node) error) error {
	n, err := openNode(c, joining)
	if err != nil {
		return err
	}
	defer n.Close()
	return use(n)
}

// openConfigured is node.Open with its warnings printed.
func openConfigured(c *cli.Context, cfg node.Config) (*node.Node, error) {
	n, err := node.Open(c.Context, cfg)
	if err != nil {
		return nil, err
	}
	warn(c, n.Warnings())
	return n, nil
}

// openDevice opens the device the global flags name, alone.
func openDevice(c *cli.Context) (*node.Device, error) {
	cfg, err := nodeConfig(c)
	if err != nil {
		return nil, err
	}
	d, err := node.OpenDevice(c.Context, cfg)
	if err != nil {
		return nil, err
	}
	warn(c, d.Warnings())
	return d, nil
}

// warn prints each warning on standard error.
func warn(c *cli.Context, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(c.App.ErrWriter, "keyward: warning: "+w)
	}
}
