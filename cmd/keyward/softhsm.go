package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyward/keyward/softhsm"
	"github.com/urfave/cli/v2"
)

func softhsmCommand() *cli.Command {
	return &cli.Command{
		Name:  "softhsm",
		Usage: "SoftHSM2 tokens for development and CI",
		Subcommands: []*cli.Command{{
			Name:  "init",
			Usage: "create a SoftHSM2 token and print the exports that use it",
			Description: "PINs come from KEYWARD_PIN and KEYWARD_SO_PIN, else a prompt on a terminal,\n" +
				"else they are generated and written to 0600 files in the directory.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "label", Usage: "token label, up to 32 bytes (required)"},
				&cli.StringFlag{Name: "dir", Usage: "SoftHSM2 home for the token (default $KEYWARD_HOME/softhsm)"},
			},
			Action: softhsmInit,
		}},
	}
}

func softhsmInit(c *cli.Context) error {
	dir := c.String("dir")
	if dir == "" {
		dir = filepath.Join(home(c), "softhsm")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	label := c.String("label")
	if label == "" {
		return usagef("--label is required")
	}
	base := strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r < ' ' {
			return '_'
		}
		return r
	}, label)
	userPIN, userSource, err := initPIN(c, dir, "KEYWARD_PIN", base+".pin", "User PIN: ")
	if err != nil {
		return err
	}
	soPIN, _, err := initPIN(c, dir, "KEYWARD_SO_PIN", base+".so.pin", "Security officer PIN: ")
	if err != nil {
		return err
	}
	tok, err := softhsm.NewTokenWithPINs(dir, label, userPIN, soPIN)
	clear(userPIN)
	clear(soPIN)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, map[string]any{"label": tok.Label, "serial": tok.Serial, "module": tok.Module,
			"softhsm2_conf": tok.ConfPath, "pin_source": userSource})
	}
	fmt.Fprintf(c.App.ErrWriter, "keyward: token %q (serial %s) created; run these lines to use it:\n", tok.Label, tok.Serial)
	fmt.Fprintf(w, "export SOFTHSM2_CONF=%s\n", shellQuote(tok.ConfPath))
	fmt.Fprintf(w, "export KEYWARD_PKCS11_MODULE=%s\n", shellQuote(tok.Module))
	fmt.Fprintf(w, "export KEYWARD_TOKEN=%s\n", shellQuote(tok.Label))
	if userSource != "env:KEYWARD_PIN" {
		fmt.Fprintf(w, "export KEYWARD_PIN_SOURCE=%s\n", shellQuote(userSource))
	}
	return nil
}

// initPIN takes a new token's PIN from env, a terminal, or makes one and
// writes it to dir/file (0600). source is how later commands read it.
func initPIN(c *cli.Context, dir, env, file, prompt string) (pin []byte, source string, err error) {
	if v := os.Getenv(env); v != "" {
		return []byte(v), "env:" + env, nil
	}
	if p := ttyPrompt(); p != nil {
		pin, err := p(c.Context, prompt)
		if err != nil {
			return nil, "", err
		}
		if len(pin) < 4 {
			return nil, "", usagef("a PIN needs at least 4 characters")
		}
		return pin, "prompt", nil
	}
	pin = softhsm.RandomPIN()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, append(append([]byte(nil), pin...), '\n'), 0o600); err != nil {
		return nil, "", err
	}
	return pin, "file:" + path, nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	for _, r := range s {
		if !(r == '/' || r == '.' || r == '-' || r == '_' || r == ':' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
