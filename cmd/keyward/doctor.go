package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:   "doctor",
		Usage:  "check module, token, login, device capabilities and keys; one line per check, exit 1 if any fails",
		Action: doctor,
	}
}

// doctorCheck is one line of doctor's report.
type doctorCheck struct {
	OK    bool   `json:"ok"`
	Check string `json:"check"`
}

// doctorReport is what doctor found; --json prints it whole.
type doctorReport struct {
	Checks       []doctorCheck    `json:"checks"`
	Capabilities []hsm.Capability `json:"capabilities,omitempty"`
}

// required are the operations a node cannot serve without.
var required = []hsm.Op{hsm.OpAESGCM, hsm.OpDerive, hsm.OpHMACSHA256}

func doctor(c *cli.Context) error {
	var report doctorReport
	err := runDoctor(c, &report)
	failed := 0
	for _, ch := range report.Checks {
		if !ch.OK {
			failed++
		}
	}
	if c.Bool("json") {
		if perr := printJSON(c.App.Writer, report); perr != nil {
			return perr
		}
	} else {
		printDoctor(c.App.Writer, report)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}

// printDoctor prints one line per check, the capability table after the
// login check.
func printDoctor(w io.Writer, r doctorReport) {
	for _, ch := range r.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s\n", mark, ch.Check)
		if strings.HasPrefix(ch.Check, "login works") && len(r.Capabilities) > 0 {
			rows := make([][]string, len(r.Capabilities))
			for i, cp := range r.Capabilities {
				rows[i] = []string{"", string(cp.Op), yesNo(cp.Supported), strings.Join(cp.Mechanisms, " "), cp.Note}
			}
			printTable(w, []string{"", "OPERATION", "SUPPORTED", "NEEDS", "NOTE"}, rows)
		}
	}
}

func runDoctor(c *cli.Context, report *doctorReport) error {
	check := func(ok bool, format string, args ...any) {
		report.Checks = append(report.Checks, doctorCheck{OK: ok, Check: fmt.Sprintf(format, args...)})
	}
	nc, err := nodeConfig(c)
	if err != nil {
		return err
	}
	cfg := nc.Device
	mod, err := hsm.LoadModule(cfg.ModulePath)
	check(err == nil, "module loads: %s%s", cfg.ModulePath, errSuffix(err))
	if err != nil {
		return nil
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
		return nil
	}
	defer tok.Close()
	report.Capabilities = tok.Capabilities(c.Context)
	var lacking []string
	for _, op := range required {
		if err := tok.Require(op); err != nil {
			lacking = append(lacking, err.Error())
		}
	}
	check(len(lacking) == 0, "device can do what keyward needs (%s)%s", joinOps(required), errSuffix(errors.New(strings.Join(lacking, "; "))))
	entries, err := keyring.New(tok).List(c.Context)
	check(err == nil, "keys listed%s", errSuffix(err))
	have := map[keyring.Role]bool{}
	for _, e := range entries {
		have[e.Role] = true
		check(e.Sensitive && !e.Extractable, "%s (KCV %s, %s): sensitive=%v extractable=%v", e.Label, kcvText(e), e.Origin, e.Sensitive, e.Extractable)
	}
	for _, r := range []keyring.Role{keyring.Master, keyring.Join} {
		if !have[r] {
			check(false, "a %s key is present: none (keyward key generate --role %s, or key import)", r, r)
		}
	}
	store, err := keystore.Open(c.Context, nc.DB)
	if err != nil {
		check(false, "database opens%s", errSuffix(err))
		return nil
	}
	defer store.Close()
	warn(c, store.Warnings())
	v, _ := store.SchemaVersion(c.Context)
	check(true, "database opens: %s (schema %d)", store.Where(), v)
	node, err := keystore.NewJoiningNode(c.Context, store, keyring.New(tok))
	if err != nil {
		check(false, "device matches the key registry%s", errSuffix(err))
		return nil
	}
	missing := node.Missing()
	for _, m := range missing {
		check(false, "%s key v%d (KCV %s) registered in the database is in the device: missing; import it", m.Role, m.Version, m.KCV)
	}
	if len(missing) == 0 {
		check(true, "device matches the key registry")
	}
	return nil
}

func errSuffix(err error) string {
	if err == nil || err.Error() == "" {
		return ""
	}
	return ": " + err.Error()
}

func joinOps(ops []hsm.Op) string {
	names := make([]string, len(ops))
	for i, op := range ops {
		names[i] = string(op)
	}
	return strings.Join(names, ", ")
}
