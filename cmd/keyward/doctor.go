package main

import (
	"fmt"
	"io"
	"strings"

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

func doctor(c *cli.Context) error {
	cfg, err := nodeConfig(c)
	if err != nil {
		return err
	}
	d := node.Diagnose(c.Context, cfg)
	warn(c, d.Warnings)
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, d); err != nil {
			return err
		}
	} else {
		printDoctor(c.App.Writer, d)
	}
	if failed := d.Failed(); failed > 0 {
		return fmt.Errorf("doctor: %d check(s) failed", failed)
	}
	return nil
}

// printDoctor prints one line per check, the capability table after the
// login check.
func printDoctor(w io.Writer, d node.Diagnosis) {
	for _, ch := range d.Checks {
		mark := "ok  "
		if !ch.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s  %s\n", mark, ch.Check)
		if strings.HasPrefix(ch.Check, "login works") && len(d.Capabilities) > 0 {
			rows := make([][]string, len(d.Capabilities))
			for i, cp := range d.Capabilities {
				rows[i] = []string{"", string(cp.Op), yesNo(cp.Supported), strings.Join(cp.Mechanisms, " "), cp.Note}
			}
			printTable(w, []string{"", "OPERATION", "SUPPORTED", "NEEDS", "NOTE"}, rows)
		}
	}
}
