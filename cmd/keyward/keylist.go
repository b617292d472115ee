package main

import (
	"fmt"
	"strconv"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/urfave/cli/v2"
)

// listedKey is a key in the device with what the registry says of it.
type listedKey struct {
	keyring.Entry
	State          string `json:"state,omitempty"`
	Encryptions    int64  `json:"encryptions"`
	Records        int    `json:"records"`
	NearNonceLimit bool   `json:"near_nonce_limit"`
}

func keyList(c *cli.Context, node *keystore.Node) error {
	entries, err := node.Ring().List(c.Context)
	if err != nil {
		return err
	}
	statuses, err := node.KeyStatuses(c.Context)
	if err != nil {
		return err
	}
	byLabel := map[string]keystore.KeyStatus{}
	for _, s := range statuses {
		byLabel[s.Label] = s
	}
	out := make([]listedKey, len(entries))
	for i, e := range entries {
		s := byLabel[e.Label]
		out[i] = listedKey{Entry: e, State: s.State, Encryptions: s.Encryptions, Records: s.Records, NearNonceLimit: s.NearCap}
		if s.NearCap {
			fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s has made %d encryptions; NIST SP 800-38D allows 2^32 with random nonces: run keyward key rotate --role %s\n",
				e.Label, s.Encryptions, e.Role)
		}
	}
	for _, m := range node.Missing() {
		fmt.Fprintf(c.App.ErrWriter, "keyward: warning: %s key v%d (KCV %s) is registered but not in this device; import it before this node serves data\n", m.Role, m.Version, m.KCV)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	rows := make([][]string, len(out))
	for i, k := range out {
		rows[i] = []string{string(k.Role), strconv.Itoa(k.Version), k.Label, fmt.Sprintf("%s-%d", k.Type, k.Bits),
			kcvText(k.Entry), string(k.Origin), orDash(k.State), strconv.FormatInt(k.Encryptions, 10), yesNo(k.Sensitive), yesNo(k.Extractable)}
	}
	printTable(c.App.Writer, []string{"ROLE", "VERSION", "LABEL", "KEY", "KCV", "ORIGIN", "STATE", "ENCRYPTIONS", "SENSITIVE", "EXTRACTABLE"}, rows)
	return nil
}
