package main

import (
	"fmt"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func ceremonyCommand() *cli.Command {
	return &cli.Command{
		Name:  "ceremony",
		Usage: "split a new key among custodians (Shamir), and combine shares into the device",
		Subcommands: []*cli.Command{
			{
				Name:  "split",
				Usage: "make a random key in memory and write N share files, any M of which rebuild it",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "threshold", Usage: "shares needed to rebuild the key (M, at least 2)"},
					&cli.IntFlag{Name: "shares", Usage: "shares to write (N)"},
					&cli.StringFlag{Name: "out-dir", Usage: "directory for the share files (created 0700)"},
					&cli.IntFlag{Name: "bits", Value: 256, Usage: "AES key size"},
				},
				Action: ceremonySplit,
			},
			{
				Name:  "combine",
				Usage: "rebuild a key from M shares and import it into the device",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "role", Usage: "master or join (required)"},
					&cli.StringSliceFlag{Name: "share", Usage: "a share file; repeat for each share"},
					&cli.BoolFlag{Name: "prompt", Usage: "read the shares one at a time, hidden, on the terminal"},
					&cli.StringFlag{Name: "expect-kcv", Usage: "refuse the key unless its KCV is this"},
					transferableFlag,
				},
				Action: ceremonyCombine,
			},
		},
	}
}

func ceremonySplit(c *cli.Context) error {
	m, n, dir, bits := c.Int("threshold"), c.Int("shares"), c.String("out-dir"), c.Int("bits")
	if m < 2 || n < m || n > 255 {
		return usagef("need 2 ≤ --threshold ≤ --shares ≤ 255 (got %d of %d)", m, n)
	}
	if dir == "" {
		return usagef("--out-dir is required")
	}
	if bits != 128 && bits != 192 && bits != 256 {
		return usagef("--bits must be 128, 192 or 256, got %d", bits)
	}
	split, err := ceremony.SplitToFiles(dir, bits, m, n)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, split)
	}
	rows := make([][]string, len(split.Shares))
	for i, s := range split.Shares {
		rows[i] = []string{fmt.Sprint(s.Index), s.Fingerprint, s.File}
	}
	printTable(c.App.Writer, []string{"SHARE", "FINGERPRINT", "FILE"}, rows)
	fmt.Fprintf(c.App.Writer, "key KCV %s (AES-%d); any %d of %d shares rebuild it. The key was not imported and is gone from memory.\n", split.KCV, bits, m, n)
	return nil
}

func ceremonyCombine(c *cli.Context) error {
	role, err := parseRole(c)
	if err != nil {
		return err
	}
	expect, err := kcvFlag(c)
	if err != nil {
		return err
	}
	files := c.StringSlice("share")
	if (len(files) > 0) == c.Bool("prompt") {
		return usagef("give the shares with --share FILE ... or --prompt")
	}
	var shares []ceremony.ShareInfo
	for _, f := range files {
		s, err := ceremony.ReadShareFile(f)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.ErrWriter, "share %d of split %s read (fingerprint %s)\n", s.Index, s.SplitID, s.Fingerprint)
		shares = append(shares, s)
	}
	if c.Bool("prompt") {
		prompt := ttyPrompt()
		if prompt == nil {
			return usagef("--prompt needs a terminal; use --share FILE")
		}
		for i := 1; len(shares) == 0 || len(shares) < shares[0].Threshold; i++ {
			line, err := prompt(c.Context, fmt.Sprintf("Share %d (input hidden): ", i))
			if err != nil {
				return err
			}
			s, err := ceremony.ParseShare(string(line), fmt.Sprintf("share %d", i))
			clear(line)
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "keyward: %v; type it again\n", err)
				i--
				continue
			}
			fmt.Fprintf(c.App.ErrWriter, "share %d of split %s accepted (fingerprint %s)\n", s.Index, s.SplitID, s.Fingerprint)
			shares = append(shares, s)
		}
	}
	return withNode(c, true, func(nd *node.Node) error {
		e, err := nd.CombineShares(c.Context, role, node.ImportOptions{Policy: policyFlag(c)}, shares, expect)
		if err != nil {
			return err
		}
		return printAndShare(c, nd, e)
	})
}
