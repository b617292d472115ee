package main

import (
	"fmt"
	"strconv"

	"github.com/keyward/keyward/node"
	"github.com/urfave/cli/v2"
)

func keyList(c *cli.Context, n *node.Node) error {
	list, err := n.ListKeys(c.Context)
	if err != nil {
		return err
	}
	for _, k := range list.Keys {
		if k.NearNonceLimit {
			fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s has made %d encryptions; NIST SP 800-38D allows 2^32 with random nonces: run keyward key rotate --role %s\n",
				k.Label, k.Encryptions, k.Role)
		}
	}
	for _, m := range list.Missing {
		fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s key v%d (KCV %s) is registered but not in this device; import it before this node serves data\n", m.Role, m.Version, m.KCV)
	}
	return printList(c, list.Keys, []string{"ROLE", "VERSION", "LABEL", "KEY", "KCV", "ORIGIN", "POLICY", "STATE", "ENCRYPTIONS", "SENSITIVE", "EXTRACTABLE"}, func(k node.ListedKey) []string {
		return []string{string(k.Role), strconv.Itoa(k.Version), k.Label, fmt.Sprintf("%s-%d", k.Type, k.Bits),
			k.DisplayKCV(), string(k.Origin), string(k.Policy), orDash(k.State), strconv.FormatInt(k.Encryptions, 10), yesNo(k.Sensitive), yesNo(k.Extractable)}
	})
}
