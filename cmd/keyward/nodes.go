package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func nodeCommand() *cli.Command {
	fingerprint := &cli.StringFlag{Name: "expect-fingerprint", Usage: "the node's fingerprint, as its operator read it to you (required)"}
	return &cli.Command{
		Name:  "node",
		Usage: "the cluster's nodes: identity, admission, and keys moving device to device",
		Subcommands: []*cli.Command{
			{
				Name:   "init",
				Usage:  "give this node its identity in its device and register it (pending); prints its fingerprint",
				Action: nodeInit,
			},
			{
				Name:   "list",
				Usage:  "list the nodes: state, what their devices hold, last seen, and what this device trusts and accepts",
				Action: nodeList,
			},
			{
				Name:      "admit",
				Usage:     "let node ID receive this device's transferable keys (needs this device's security officer PIN)",
				ArgsUsage: "ID",
				Flags: []cli.Flag{fingerprint,
					&cli.StringFlag{Name: "so-pin-source", EnvVars: []string{"KEYWARD_SO_PIN_SOURCE"}, Usage: "where the security officer PIN comes from: env:VAR, file:PATH or prompt (KEYWARD_SO_PIN holds the PIN itself, for CI)"},
				},
				Action: nodeAdmit,
			},
			{
				Name:      "accept",
				Usage:     "take the keys node ID sends to this device (after its operator admitted this node)",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{fingerprint},
				Action:    nodeAccept,
			},
			{
				Name:   "sync",
				Usage:  "take the keys waiting for this node and send this device's transferable keys to the nodes it trusts (keyward serve does it every second)",
				Action: nodeSync,
			},
			{
				Name:      "revoke",
				Usage:     "stop sending keys to node ID and taking keys from it; its waiting copies are deleted",
				ArgsUsage: "ID",
				Action:    nodeRevoke,
			},
		},
	}
}

// nodeArg is the one ID argument.
func nodeArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 || c.Args().First() == "" {
		return "", usagef("give exactly one node ID (keyward node list shows them)")
	}
	return c.Args().First(), nil
}

// expectFingerprint is --expect-fingerprint, required.
func expectFingerprint(c *cli.Context) (string, error) {
	f := c.String("expect-fingerprint")
	if f == "" {
		return "", usagef("--expect-fingerprint is required: read it with the node's operator (keyward node init or node list on that node prints it)")
	}
	if _, err := cluster.NormalizeFingerprint(f); err != nil {
		return "", usageError{err, nil}
	}
	return f, nil
}

// nodeAndFingerprint is the ID argument and --expect-fingerprint: the
// node admit and accept name, and what its operator read out.
func nodeAndFingerprint(c *cli.Context) (id, fingerprint string, err error) {
	if id, err = nodeArg(c); err != nil {
		return "", "", err
	}
	if fingerprint, err = expectFingerprint(c); err != nil {
		return "", "", err
	}
	return id, fingerprint, nil
}

func nodeInit(c *cli.Context) error {
	return withNode(c, true, func(n *node.Node) error {
		self, err := n.InitNode(c.Context)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, self)
		}
		fmt.Fprintf(c.App.Writer, "node %s (%s)\nfingerprint %s\n", self.ID, self.State, self.Fingerprint)
		if self.State == "pending" {
			fmt.Fprintf(c.App.ErrWriter, "keyward: read the fingerprint to the operator of a node that holds the keys, who runs:\n  keyward node admit %s --expect-fingerprint '%s'\n", self.ID, self.Fingerprint)
		}
		return nil
	})
}

func nodeList(c *cli.Context) error {
	return withNode(c, true, func(n *node.Node) error {
		nodes, err := n.Nodes(c.Context)
		if err != nil {
			return err
		}
		return printList(c, nodes, []string{"ID", "STATE", "TRUSTED", "ACCEPTED", "HOLDS", "LAST SEEN", "WAITING", "FINGERPRINT"}, func(s cluster.NodeStatus) []string {
			id := s.ID
			if s.Self {
				id += " (this node)"
			}
			return []string{id, s.State, yesNo(s.Trusted), yesNo(s.Accepted), orDash(s.Holds), s.Seen.Format(time.RFC3339), strconv.Itoa(s.Waiting), s.Fingerprint}
		})
	})
}

// soPINSource is --so-pin-source; else KEYWARD_SO_PIN; else a prompt on
// a terminal.
func soPINSource(c *cli.Context) (hsm.PINSource, error) {
	if spec := c.String("so-pin-source"); spec != "" {
		src, err := hsm.ParsePINSource(spec, ttyPrompt())
		if err != nil {
			return nil, usageError{err, nil}
		}
		return src, nil
	}
	if os.Getenv("KEYWARD_SO_PIN") != "" {
		return hsm.PINFromEnv("KEYWARD_SO_PIN"), nil
	}
	if p := ttyPrompt(); p != nil {
		return hsm.PINFromPrompt(p), nil
	}
	return nil, usagef("no security officer PIN: set KEYWARD_SO_PIN_SOURCE to env:VAR or file:PATH (or KEYWARD_SO_PIN in CI)")
}

func nodeAdmit(c *cli.Context) error {
	id, fp, err := nodeAndFingerprint(c)
	if err != nil {
		return err
	}
	so, err := soPINSource(c)
	if err != nil {
		return err
	}
	return withNode(c, false, func(n *node.Node) error {
		a, err := n.AdmitNode(c.Context, id, fp, so)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, map[string]any{"node": a.Node, "admitted_by": a.Admitter, "sent": a.Sent})
		}
		fmt.Fprintf(c.App.Writer, "node %s admitted; %d cop%s of keys wrapped for its device\n", a.Node.ID, a.Sent, plural(a.Sent, "y", "ies"))
		fmt.Fprintf(c.App.ErrWriter, "keyward: its operator takes them with:\n  keyward node accept %s --expect-fingerprint '%s'\n", a.Admitter.ID, a.Admitter.Fingerprint)
		return nil
	})
}

func nodeAccept(c *cli.Context) error {
	id, fp, err := nodeAndFingerprint(c)
	if err != nil {
		return err
	}
	return withNode(c, true, func(n *node.Node) error {
		s, err := n.AcceptNode(c.Context, id, fp)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "node %s accepted: this device takes the keys it sends\n", s.ID)
		return syncAndReport(c, n)
	})
}

func nodeSync(c *cli.Context) error {
	return withNode(c, true, func(n *node.Node) error { return syncAndReport(c, n) })
}

// syncAndReport runs a sync and says what it did; refused copies fail the
// command (exit 3).
func syncAndReport(c *cli.Context, n *node.Node) error {
	rep, err := n.SyncNodes(c.Context)
	if err != nil {
		return err
	}
	if !rep.Member {
		return fmt.Errorf("%w: run keyward node init", cluster.ErrNotMember)
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, map[string]any{"delivered": orEmpty(rep.Delivered), "refused": orEmpty(rep.Refused),
			"waiting": orEmpty(rep.Waiting), "sent": rep.Sent}); err != nil {
			return err
		}
	} else {
		for _, d := range rep.Delivered {
			fmt.Fprintf(c.App.Writer, "received %s\n", d)
		}
		for _, w := range rep.Waiting {
			fmt.Fprintf(c.App.ErrWriter, "keyward: waiting: %s\n", w)
		}
		for _, l := range rep.Dropped {
			fmt.Fprintf(c.App.ErrWriter, "keyward: %s was held twice; the extra object was destroyed\n", l)
		}
		if rep.Sent > 0 {
			fmt.Fprintf(c.App.Writer, "%d cop%s wrapped for other nodes\n", rep.Sent, plural(rep.Sent, "y", "ies"))
		}
	}
	if len(rep.Refused) > 0 {
		return fmt.Errorf("%w: %d cop%s refused and deleted: %s", hsm.ErrBadCopy, len(rep.Refused), plural(len(rep.Refused), "y", "ies"), strings.Join(rep.Refused, "; "))
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nodeRevoke(c *cli.Context) error {
	id, err := nodeArg(c)
	if err != nil {
		return err
	}
	return withNode(c, true, func(n *node.Node) error {
		r, err := n.RevokeNode(c.Context, id)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			return printJSON(c.App.Writer, map[string]any{"node": r.Node, "destroyed": r.Destroyed, "deleted": r.Deleted})
		}
		fmt.Fprintf(c.App.Writer, "node %s revoked: %d object%s for it destroyed in this device, %d waiting cop%s deleted\n",
			id, r.Destroyed, plural(r.Destroyed, "", "s"), r.Deleted, plural(r.Deleted, "y", "ies"))
		warn(c, []string{"keys it already received stay in its device: rotate them (keyward key rotate --transferable) and retire the old versions"})
		return nil
	})
}
