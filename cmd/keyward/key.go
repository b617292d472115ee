package main

import (
	"fmt"
	"strconv"

	"github.com/keyward/keyward/keyring"
	"github.com/urfave/cli/v2"
)

func keyCommand() *cli.Command {
	roleFlag := &cli.StringFlag{Name: "role", Usage: "master, join or signing (required)"}
	versionFlag := &cli.IntFlag{Name: "version", Usage: "key version (default: the newest)"}
	return &cli.Command{
		Name:  "key",
		Usage: "generate, import, inspect and prove keys in the device",
		Subcommands: []*cli.Command{
			{
				Name:  "generate",
				Usage: "make the next version of a role's key inside the device",
				Flags: []cli.Flag{roleFlag, &cli.IntFlag{Name: "bits", Value: 256, Usage: "AES key size: 128, 192 (master only) or 256"}},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					ring, done, err := openRing(c)
					if err != nil {
						return err
					}
					defer done()
					e, err := ring.Generate(c.Context, role, c.Int("bits"))
					if err != nil {
						return err
					}
					return printEntry(c, e)
				},
			},
			{
				Name:  "kcv",
				Usage: "print a key's check value (AES-ECB of a zero block, first 3 bytes)",
				Flags: []cli.Flag{roleFlag, versionFlag},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					ring, done, err := openRing(c)
					if err != nil {
						return err
					}
					defer done()
					_, e, err := ring.Get(c.Context, role, c.Int("version"))
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]any{"label": e.Label, "role": e.Role, "version": e.Version, "kcv": e.KCV})
					}
					fmt.Fprintln(c.App.Writer, e.KCV)
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list keyward's keys in the device",
				Action: func(c *cli.Context) error {
					ring, done, err := openRing(c)
					if err != nil {
						return err
					}
					defer done()
					entries, err := ring.List(c.Context)
					if err != nil {
						return err
					}
					if c.Bool("json") {
						if entries == nil {
							entries = []keyring.Entry{}
						}
						return printJSON(c.App.Writer, entries)
					}
					rows := make([][]string, len(entries))
					for i, e := range entries {
						rows[i] = []string{string(e.Role), strconv.Itoa(e.Version), e.Label, fmt.Sprintf("%s-%d", e.Type, e.Bits),
							orDash(e.KCV), string(e.Origin), yesNo(e.Sensitive), yesNo(e.Extractable)}
					}
					printTable(c.App.Writer, []string{"ROLE", "VERSION", "LABEL", "KEY", "KCV", "ORIGIN", "SENSITIVE", "EXTRACTABLE"}, rows)
					return nil
				},
			},
		},
	}
}

func parseRole(c *cli.Context) (keyring.Role, error) {
	if !c.IsSet("role") {
		return "", usagef("--role is required: master, join or signing")
	}
	r, err := keyring.ParseRole(c.String("role"))
	if err != nil {
		return "", usageError{err}
	}
	return r, nil
}

func printEntry(c *cli.Context, e keyring.Entry) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, e)
	}
	fmt.Fprintf(c.App.Writer, "%s  KCV %s  (%s-%d, %s)\n", e.Label, orDash(e.KCV), e.Type, e.Bits, e.Origin)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
