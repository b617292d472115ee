package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/node"

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
				Flags: []cli.Flag{roleFlag,
					&cli.IntFlag{Name: "bits", Value: 256, Usage: "AES key size: 128, 192 (master only) or 256"},
					&cli.StringFlag{Name: "type", Value: "ec-p256", Usage: "signing key pair: ec-p256, rsa-2048, rsa-3072 or ed25519"},
					transferableFlag,
				},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					return withNode(c, true, func(n *node.Node) error {
						e, err := n.GenerateKey(c.Context, role, node.KeySpec{Bits: c.Int("bits"), Type: hsm.KeyPairType(c.String("type")), Policy: policyFlag(c)})
						if err != nil {
							return err
						}
						return printAndShare(c, n, e)
					})
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
					dev, err := openDevice(c)
					if err != nil {
						return err
					}
					defer dev.Close()
					e, err := dev.KCV(c.Context, role, c.Int("version"))
					if e.Label == "" {
						return err
					}
					if c.Bool("json") {
						out := map[string]any{"label": e.Label, "role": e.Role, "version": e.Version, "kcv": e.KCV}
						if err != nil {
							out["kcv"], out["error"] = nil, err.Error()
						}
						if perr := printJSON(c.App.Writer, out); perr != nil {
							return perr
						}
					} else if err != nil {
						fmt.Fprintln(c.App.Writer, "unavailable")
					} else {
						fmt.Fprintln(c.App.Writer, e.KCV)
					}
					return err
				},
			},
			keyImportCommand(),
			{
				Name:  "rotate",
				Usage: "make a new version in the device, registered and active; older versions become decrypt-only",
				Flags: []cli.Flag{roleFlag, &cli.IntFlag{Name: "bits", Value: 256, Usage: "AES key size"}, transferableFlag,
					&cli.BoolFlag{Name: "local", Usage: "the new version never leaves this device (default: the active version's policy)"}},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					return withNode(c, false, func(n *node.Node) error {
						var policy hsm.Policy // the active version's
						switch {
						case c.Bool("transferable") && c.Bool("local"):
							return usagef("give --transferable or --local, not both")
						case c.Bool("transferable"):
							policy = hsm.PolicyTransferable
						case c.Bool("local"):
							policy = hsm.PolicyLocal
						}
						e, err := n.RotateKey(c.Context, role, node.KeySpec{Bits: c.Int("bits"), Policy: policy})
						if err != nil {
							return err
						}
						if err := printAndShare(c, n, e); err != nil {
							return err
						}
						if role == keyring.Master && !c.Bool("json") {
							fmt.Fprintln(c.App.ErrWriter, "keyward: now run keyward store rewrap to re-encrypt existing records under it")
						}
						return nil
					})
				},
			},
			{
				Name:  "retire",
				Usage: "mark a key version retired (refused while records still use it; a signing key pair signs no more); then it may be destroyed",
				Flags: []cli.Flag{roleFlag, &cli.IntFlag{Name: "version", Usage: "the version to retire (required)"}},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					if c.Int("version") < 1 {
						return usagef("--version is required")
					}
					return withNode(c, false, func(n *node.Node) error {
						if err := n.RetireKey(c.Context, role, c.Int("version")); err != nil {
							if errors.Is(err, keystore.ErrKeyInUse) && role == keyring.Master {
								return fmt.Errorf("%w (keyward store rewrap moves records onto the active version)", err)
							}
							return err
						}
						fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s\n", node.RetireEffect(role, c.Int("version")))
						fmt.Fprintf(c.App.Writer, "%s retired\n", keyring.Label(role, c.Int("version")))
						return nil
					})
				},
			},
			{
				Name:  "check",
				Usage: "exit 0 when a key's KCV is the expected one, 3 when not",
				Flags: []cli.Flag{roleFlag, versionFlag, &cli.StringFlag{Name: "expect-kcv", Usage: "the KCV the key must have (6 hex digits)"}},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					want, err := kcvFlag(c)
					if err != nil {
						return err
					}
					if want == "" {
						return usagef("--expect-kcv is required")
					}
					dev, err := openDevice(c)
					if err != nil {
						return err
					}
					defer dev.Close()
					e, err := dev.CheckKCV(c.Context, role, c.Int("version"), want)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%s: KCV %s matches\n", e.Label, e.KCV)
					return nil
				},
			},
			{
				Name:  "destroy",
				Usage: "delete a key version from the device (asks to type its label unless --yes)",
				Flags: []cli.Flag{roleFlag, &cli.IntFlag{Name: "version", Usage: "the version to destroy (required)"}, &cli.BoolFlag{Name: "yes", Usage: "do not ask"}},
				Action: func(c *cli.Context) error {
					role, err := parseRole(c)
					if err != nil {
						return err
					}
					v := c.Int("version")
					if v < 1 {
						return usagef("--version is required: destroying a key names it exactly")
					}
					return withNode(c, false, func(n *node.Node) error {
						check, err := n.CheckDestroy(c.Context, role, v)
						if err != nil {
							if errors.Is(err, keystore.ErrKeyInUse) {
								return fmt.Errorf("%w: keyward key retire --role %s --version %d", err, role, v)
							}
							return err
						}
						if check.Effect != "" {
							fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s: %s\n", check.Entry.Label, check.Effect)
						}
						if !c.Bool("yes") {
							if err := confirm(c, check.Entry.Label); err != nil {
								return err
							}
						}
						e, err := n.DestroyKey(c.Context, role, v)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "%s (KCV %s) destroyed\n", e.Label, e.DisplayKCV())
						return nil
					})
				},
			},
			{
				Name:  "list",
				Usage: "list keyward's keys in the device",
				Action: func(c *cli.Context) error {
					return withNode(c, true, func(n *node.Node) error { return keyList(c, n) })
				},
			},
		},
	}
}

// kcvFlag reads --expect-kcv as 6 upper-case hex digits ("" when unset).
func kcvFlag(c *cli.Context) (string, error) {
	v := strings.ToUpper(strings.TrimSpace(c.String("expect-kcv")))
	if v == "" {
		return "", nil
	}
	if b, err := hex.DecodeString(v); err != nil || len(b) != 3 {
		return "", usagef("--expect-kcv must be 6 hex digits, like 9F8E7D")
	}
	return v, nil
}

// confirm asks the person at the terminal to type label.
func confirm(c *cli.Context, label string) error {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return usagef("no terminal to confirm on: pass --yes to destroy %s", label)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "This destroys %s for good. Type its label to confirm: ", label)
	line, _ := bufio.NewReader(tty).ReadString('\n')
	if strings.TrimSpace(line) != label {
		return usagef("confirmation did not match; nothing was destroyed")
	}
	return nil
}

func parseRole(c *cli.Context) (keyring.Role, error) {
	if !c.IsSet("role") {
		return "", usagef("--role is required: master, join or signing")
	}
	r, err := keyring.ParseRole(c.String("role"))
	if err != nil {
		return "", usageError{err, nil}
	}
	return r, nil
}

func printEntry(c *cli.Context, e keyring.Entry) error {
	if c.Bool("json") {
		return printJSON(c.App.Writer, e)
	}
	fmt.Fprintf(c.App.Writer, "%s  KCV %s  (%s-%d, %s, %s)\n", e.Label, e.DisplayKCV(), e.Type, e.Bits, e.Origin, e.Policy)
	return nil
}

// transferableFlag makes a key that may move to the devices of the nodes
// this device's security officer admits (keyward node admit).
var transferableFlag = &cli.BoolFlag{Name: "transferable", Usage: "the key may leave this device, wrapped only for nodes its security officer admits (default: it never leaves)"}

// policyFlag is the policy --transferable (or the bool flag named)
// asks for.
func policyFlag(c *cli.Context, flag ...string) hsm.Policy {
	name := "transferable"
	if len(flag) > 0 {
		name = flag[0]
	}
	if c.Bool(name) {
		return hsm.PolicyTransferable
	}
	return hsm.PolicyLocal
}

// printAndShare prints a key just made and shares it: how the verbs that
// make a key end.
func printAndShare(c *cli.Context, n *node.Node, e keyring.Entry) error {
	if err := printEntry(c, e); err != nil {
		return err
	}
	share(c, n, e)
	return nil
}

// share sends a transferable key just made to the nodes this device
// trusts at once (keyward serve would within a second); a failure is a
// warning, not a failed command: the key is made, and the next sync sends
// it.
func share(c *cli.Context, n *node.Node, entries ...keyring.Entry) {
	transferable := false
	for _, e := range entries {
		transferable = transferable || e.Policy == hsm.PolicyTransferable
	}
	if !transferable {
		return
	}
	rep, err := n.SyncNodes(c.Context)
	switch {
	case err != nil:
		warn(c, []string{"the key was not sent to the admitted nodes yet: " + message(err) + "; keyward serve or keyward node sync sends it"})
	case rep.Sent > 0:
		fmt.Fprintf(c.App.ErrWriter, "keyward: %d cop%s wrapped for the nodes this device trusts\n", rep.Sent, plural(rep.Sent, "y", "ies"))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
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
