package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
)

// DeviceInfo names the node's device.
type DeviceInfo struct {
	Label        string
	Manufacturer string
	Model        string
	// Software names the software token the device is ("SoftHSM2", "NSS
	// softokn"), whose keys are files on this machine's disk; "" for an
	// HSM.
	Software string
}

// Device names the node's device.
func (n *Node) Device() DeviceInfo {
	return DeviceInfo{Label: n.device.Label(), Manufacturer: n.device.Manufacturer(), Model: n.device.Model(), Software: n.device.Software()}
}

// SoftwareTokenWarning is what to say of a software token such as
// SoftHSM2: at start and in a readiness report.
func (d DeviceInfo) SoftwareTokenWarning() string {
	if d.Software == "" {
		return ""
	}
	return "the device is " + d.Software + ", a software token: its keys are files on this machine's disk, not inside an HSM"
}

// DeviceHealth is whether the device answers, as the last calls found it.
func (n *Node) DeviceHealth() hsm.Health { return n.device.Health() }

// SessionsInUse is the number of device sessions in use now, and the
// pool's bound.
func (n *Node) SessionsInUse() (inUse, max int) { return n.device.SessionsInUse() }

// Reconcile checks the device against the key registry now (a rotation on
// another node, a key destroyed here), takes up the registry's active
// master key, and fails when the device lacks a registered key.
func (n *Node) Reconcile(ctx context.Context) error {
	if err := n.vault.Reconcile(ctx); err != nil {
		return err
	}
	return n.vault.CheckComplete()
}

// ErrNotChecked is a readiness check that could not run: the keys are
// checked against the registry, which is in the database.
var ErrNotChecked = errors.New("not checked: the database cannot be reached")

// Readiness is what a readiness probe asks of a node; nil is a pass.
type Readiness struct {
	Device   error // logged in and answering
	Database error // answering
	Keys     error // the device holds every registered key, and there is an active master and join key (ErrNotChecked without the database)
}

// Ready says every check passed.
func (r Readiness) Ready() bool { return r.Device == nil && r.Database == nil && r.Keys == nil }

// Readiness checks the device, the database and, afresh, the keys against
// the registry (a probe after an outage must not report the old state).
// A check that does not finish by ctx's deadline — a device or database
// that hangs — fails with the deadline's error; it is not waited for.
func (n *Node) Readiness(ctx context.Context) Readiness {
	dev, db := within(ctx, n.device.Ping), within(ctx, n.store.Ping)
	r := Readiness{Device: <-dev, Database: <-db}
	if r.Database != nil {
		r.Keys = ErrNotChecked
	} else {
		r.Keys = <-within(ctx, n.Reconcile)
	}
	if r.Keys == nil {
		r.Keys = <-within(ctx, n.activeKeys)
	}
	return r
}

// activeKeys fails unless the registry has an active master and join key:
// a node without them encrypts nothing and signs nothing (a database
// started empty by mistake must not read as ready).
func (n *Node) activeKeys(ctx context.Context) error {
	regs, err := n.store.Keys(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, role := range []keyring.Role{keyring.Master, keyring.Join} {
		found := false
		for _, r := range regs {
			found = found || (r.Role == string(role) && r.State == keystore.StateActive)
		}
		if !found {
			missing = append(missing, string(role))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: the registry in %s has no active %s key", keyring.ErrNoKey, n.store.Where(), strings.Join(missing, " or "))
	}
	return nil
}

// within runs check on its own goroutine; its answer is check's error,
// or ctx's when ctx ends first.
func within(ctx context.Context, check func(context.Context) error) <-chan error {
	done, out := make(chan error, 1), make(chan error, 1)
	go func() { done <- check(ctx) }()
	go func() {
		select {
		case err := <-done:
			out <- err
		case <-ctx.Done():
			out <- fmt.Errorf("no answer: %w", ctx.Err())
		}
	}()
	return out
}
