package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keyward/keyward/cluster"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// RequiredOps are the device operations a node cannot serve without:
// sealing shared data, deriving the token HMAC keys, HS256.
var RequiredOps = []hsm.Op{hsm.OpAESGCM, hsm.OpDerive, hsm.OpHMACSHA256}

// Check is one line of a diagnosis.
type Check struct {
	OK    bool   `json:"ok"`
	Check string `json:"check"`
}

// Diagnosis is what Diagnose found, check by check, in the order a node
// opens: module, token, login, capabilities, keys, database, registry.
type Diagnosis struct {
	Checks       []Check          `json:"checks"`
	Capabilities []hsm.Capability `json:"capabilities,omitempty"`
	Warnings     []string         `json:"-"` // a PIN or database file others can read
}

// Failed counts the checks that failed.
func (d Diagnosis) Failed() int {
	n := 0
	for _, c := range d.Checks {
		if !c.OK {
			n++
		}
	}
	return n
}

func (d *Diagnosis) check(ok bool, format string, args ...any) {
	d.Checks = append(d.Checks, Check{OK: ok, Check: fmt.Sprintf(format, args...)})
}

func errSuffix(err error) string {
	if err == nil || err.Error() == "" {
		return ""
	}
	return ": " + err.Error()
}

// Diagnose opens the node of cfg step by step, as Open would, and says
// what works and what does not, going as far as it can: each step it
// cannot take is a failed check, never an error.
func Diagnose(ctx context.Context, cfg Config) Diagnosis {
	var d Diagnosis
	if err := cfg.Resolve(); err != nil {
		d.check(false, "module found%s", errSuffix(err))
		return d
	}
	dev := cfg.Device
	mod, err := hsm.LoadModule(dev.ModulePath)
	d.check(err == nil, "module loads: %s%s", dev.ModulePath, errSuffix(err))
	if err != nil {
		return d
	}
	defer mod.Close()
	tok, err := hsm.Open(ctx, dev)
	switch {
	case err == nil:
		d.check(true, "token found: %s (serial %s, slot %d)", tok.Label(), tok.Serial(), tok.Slot())
		d.check(true, "login works (PIN from %s)", dev.PIN)
	case errors.Is(err, hsm.ErrTokenNotFound):
		d.check(false, "token found%s", errSuffix(err))
	default:
		d.check(true, "token found")
		d.check(false, "login works%s", errSuffix(explainOpen(dev, err)))
	}
	if err != nil {
		return d
	}
	defer tok.Close()
	d.Warnings = append(d.Warnings, tok.Warnings()...)
	d.Capabilities = tok.Capabilities(ctx)
	var lacking, names []string
	for _, op := range RequiredOps {
		names = append(names, string(op))
		if err := tok.Require(op); err != nil {
			lacking = append(lacking, err.Error())
		}
	}
	d.check(len(lacking) == 0, "device can do what keyward needs (%s)%s", strings.Join(names, ", "), errSuffix(errors.New(strings.Join(lacking, "; "))))
	ring := keyring.New(tok)
	entries, err := ring.List(ctx)
	d.check(err == nil, "keys listed%s", errSuffix(err))
	have := map[keyring.Role]bool{}
	for _, e := range entries {
		have[e.Role] = true
		// A transferable key is extractable, but only wrapped under a key
		// the SO trusted; anything else extractable is not keyward's.
		d.check(e.Sensitive && e.Policy != hsm.PolicyExtractable, "%s (KCV %s, %s, %s): sensitive=%v extractable=%v", e.Label, e.DisplayKCV(), e.Origin, e.Policy, e.Sensitive, e.Extractable)
	}
	for _, r := range []keyring.Role{keyring.Master, keyring.Join} {
		if !have[r] {
			d.check(false, "a %s key is present: none (generate or import one)", r)
		}
	}
	store, err := keystore.Open(ctx, cfg.DB)
	if err != nil {
		d.check(false, "database opens%s", errSuffix(err))
		return d
	}
	defer store.Close()
	d.Warnings = append(d.Warnings, store.Warnings()...)
	v, _ := store.SchemaVersion(ctx)
	d.check(true, "database opens: %s (schema %d)", store.Where(), v)
	vault, err := keystore.NewVault(ctx, store, ring, keystore.VaultOptions{Joining: true})
	if err != nil {
		d.check(false, "device matches the key registry%s", errSuffix(err))
		return d
	}
	missing := vault.Missing()
	for _, m := range missing {
		d.check(false, "%s key v%d (KCV %s) registered in the database is in the device: missing; import it", m.Role, m.Version, m.KCV)
	}
	if len(missing) == 0 {
		d.check(true, "device matches the key registry")
	}
	self, err := cluster.New(ring, store, vault, cfg.Home).Self(ctx)
	switch {
	case errors.Is(err, cluster.ErrNotMember):
		d.check(true, "node identity: none (a single node; keyward node init joins a cluster)")
	case err != nil:
		d.check(false, "node identity%s", errSuffix(err))
	default:
		d.check(true, "node identity: %s (%s), fingerprint %s", self.ID, self.State, self.Fingerprint)
	}
	return d
}
