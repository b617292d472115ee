package main

import (
	"errors"
	"fmt"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:   "doctor",
		Usage:  "check module, token, login and keys; one line per check, exit 1 if any fails",
		Action: doctor,
	}
}

func doctor(c *cli.Context) error {
	w := c.App.Writer
	failed := 0
	check := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s  %s\n", mark, fmt.Sprintf(format, args...))
	}
	nc, err := nodeConfig(c)
	if err != nil {
		return err
	}
	cfg := nc.Device
	mod, err := hsm.LoadModule(cfg.ModulePath)
	check(err == nil, "module loads: %s%s", cfg.ModulePath, errSuffix(err))
	if err != nil {
		return doctorResult(failed)
	}
	defer mod.Close()
	tok, err := hsm.Open(c.Context, cfg)
	switch {
	case err == nil:
		check(true, "token found: %s (serial %s, slot %d)", tok.Label(), tok.Serial(), tok.Slot())
		check(true, "login works (PIN from %s)", cfg.PIN)
	case errors.Is(err, hsm.ErrTokenNotFound):
		check(false, "token found%s", errSuffix(err))
	default:
		check(true, "token found")
		check(false, "login works%s", errSuffix(node.ExplainOpen(cfg, err)))
	}
	if err != nil {
		return doctorResult(failed)
	}
	defer tok.Close()
	entries, err := keyring.New(tok).List(c.Context)
	check(err == nil, "keys listed%s", errSuffix(err))
	have := map[keyring.Role]bool{}
	for _, e := range entries {
		have[e.Role] = true
		check(e.Sensitive && !e.Extractable, "%s (KCV %s, %s): sensitive=%v extractable=%v", e.Label, orDash(e.KCV), e.Origin, e.Sensitive, e.Extractable)
	}
	for _, r := range []keyring.Role{keyring.Master, keyring.Join} {
		if !have[r] {
			check(false, "a %s key is present: none (keyward key generate --role %s, or key import)", r, r)
		}
	}
	store, err := keystore.Open(c.Context, nc.DB)
	if err != nil {
		check(false, "database opens%s", errSuffix(err))
		return doctorResult(failed)
	}
	defer store.Close()
	warn(c, store.Warnings())
	v, _ := store.SchemaVersion(c.Context)
	check(true, "database opens: %s (schema %d)", store.Where(), v)
	node, err := keystore.NewJoiningNode(c.Context, store, keyring.New(tok))
	if err != nil {
		check(false, "device matches the key registry%s", errSuffix(err))
		return doctorResult(failed)
	}
	missing := node.Missing()
	for _, m := range missing {
		check(false, "%s key v%d (KCV %s) registered in the database is in the device: missing; import it", m.Role, m.Version, m.KCV)
	}
	if len(missing) == 0 {
		check(true, "device matches the key registry")
	}
	return doctorResult(failed)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func doctorResult(failed int) error {
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}
