package main

import (
	"errors"
	"fmt"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func keyImportCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "put your own key into the device: hex file, system.yaml, or split-knowledge components",
		UsageText: "keyward key import --role master|join --from FILE|- [--expect-kcv HEX] [--remove-source]\n" +
			"keyward key import --role master|join|all --from-system-yaml FILE [--scrub]\n" +
			"keyward key import --role master|join --component FILE --component FILE ... [--expect-kcv HEX]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "role", Usage: "master, join, or all (system.yaml only) (required)"},
			&cli.StringFlag{Name: "from", Usage: "file holding the key as 32, 48 or 64 hex digits; - for standard input"},
			&cli.StringFlag{Name: "from-system-yaml", Usage: "a system.yaml with shared.security.masterKey / joinKey"},
			&cli.StringSliceFlag{Name: "component", Usage: "a hex key component file; give two or more (XORed)"},
			&cli.StringFlag{Name: "expect-kcv", Usage: "refuse the key unless its KCV is this (6 hex digits)"},
			&cli.BoolFlag{Name: "remove-source", Usage: "overwrite and remove the key file(s) once the key is in the device"},
			&cli.BoolFlag{Name: "scrub", Usage: "rewrite the system.yaml without the imported keys"},
			transferableFlag,
		},
		Action: keyImport,
	}
}

func keyImport(c *cli.Context) error {
	sources := 0
	for _, set := range []bool{c.IsSet("from"), c.IsSet("from-system-yaml"), c.IsSet("component")} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return usagef("give exactly one of --from, --from-system-yaml or --component")
	}
	if c.IsSet("component") && len(c.StringSlice("component")) < 2 {
		return usagef("a split-knowledge key needs at least 2 components: repeat --component FILE")
	}
	expect, err := kcvFlag(c)
	if err != nil {
		return err
	}
	if c.Bool("scrub") && !c.IsSet("from-system-yaml") {
		return usagef("--scrub goes with --from-system-yaml")
	}
	if c.Bool("remove-source") && c.IsSet("from-system-yaml") {
		return usagef("use --scrub with --from-system-yaml: the file holds more than keys")
	}
	if c.Bool("remove-source") && c.String("from") == "-" {
		return usagef("--remove-source cannot remove standard input")
	}
	var roles []keyring.Role
	if c.String("role") == "all" {
		if !c.IsSet("from-system-yaml") {
			return usagef("--role all goes with --from-system-yaml")
		}
		if expect != "" {
			return usagef("--expect-kcv names one key; import the roles one at a time")
		}
		roles = []keyring.Role{keyring.Master, keyring.Join}
	} else {
		role, err := parseRole(c)
		if err != nil {
			return err
		}
		roles = []keyring.Role{role}
	}
	return withNode(c, true, func(n *node.Node) error {
		switch {
		case c.IsSet("from"):
			e, err := n.ImportHexFile(c.Context, roles[0], node.ImportOptions{Policy: policyFlag(c)}, c.String("from"), c.App.Reader, expect, c.Bool("remove-source"))
			if err != nil {
				return err
			}
			if err := printEntry(c, e); err != nil {
				return err
			}
			if c.Bool("remove-source") && !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "%s overwritten and removed\n", c.String("from"))
			}
			share(c, n, e)
			return nil
		case c.IsSet("from-system-yaml"):
			path := c.String("from-system-yaml")
			entries, err := n.ImportSystemYAML(c.Context, roles, node.ImportOptions{Policy: policyFlag(c)}, path, c.Bool("scrub"))
			if len(roles) > 1 && errors.Is(err, ceremony.ErrNotFound) {
				err = fmt.Errorf("%w (to import only the other key, name its --role)", err)
			}
			for _, e := range entries {
				if perr := printEntry(c, e); perr != nil {
					return perr
				}
			}
			if err == nil && c.Bool("scrub") && !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "%s rewritten without the imported keys\n", path)
			}
			share(c, n, entries...)
			return err
		default:
			e, err := n.ImportComponents(c.Context, roles[0], node.ImportOptions{Policy: policyFlag(c)}, c.StringSlice("component"), expect, c.Bool("remove-source"),
				func(i int, path, kcv string) {
					fmt.Fprintf(c.App.ErrWriter, "component %d (%s): KCV %s\n", i, path, kcv)
				})
			if err != nil {
				return err
			}
			return printAndShare(c, n, e)
		}
	})
}
