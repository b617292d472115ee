package node

import (
	"context"
	"fmt"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// Device is a node's device opened alone, without the database: for
// proving which keys it holds (key kcv, key check), which must work on a
// node whose keys disagree with the registry.
type Device struct {
	tok  *hsm.Token
	ring *keyring.Ring
}

// OpenDevice opens the device of cfg alone; its errors say what to do.
func OpenDevice(ctx context.Context, cfg Config) (*Device, error) {
	if err := cfg.Resolve(); err != nil {
		return nil, err
	}
	tok, err := openDevice(ctx, cfg.Device)
	if err != nil {
		return nil, err
	}
	return &Device{tok: tok, ring: keyring.New(tok)}, nil
}

// Warnings are what opening the device found worth saying: a PIN file
// others can read.
func (d *Device) Warnings() []string { return d.tok.Warnings() }

// Close closes the device's sessions.
func (d *Device) Close() error { return d.tok.Close() }

// KCV returns version v of role (0: the newest) with its KCV. A key whose
// KCV neither keyward nor the device can tell comes back with an empty KCV
// and an error saying why (it matches hsm.ErrKCVUnavailable).
func (d *Device) KCV(ctx context.Context, role keyring.Role, v int) (keyring.Entry, error) {
	k, e, err := d.ring.Get(ctx, role, v)
	if err != nil {
		return keyring.Entry{}, err
	}
	if e.KCV == "" {
		// ring.Get read the KCV; the device is asked again only for why
		// it is missing.
		_, err = k.KCV(ctx)
		return e, fmt.Errorf("%s cannot be checked: %w", e.Label, err)
	}
	return e, nil
}

// CheckKCV is nil when version v of role (0: the newest) has KCV want,
// hsm.ErrKCVMismatch naming both when not.
func (d *Device) CheckKCV(ctx context.Context, role keyring.Role, v int, want string) (keyring.Entry, error) {
	e, err := d.KCV(ctx, role, v)
	if err != nil {
		return e, err
	}
	if e.KCV != want {
		return e, fmt.Errorf("%w: %s in token %q has KCV %s, expected %s", hsm.ErrKCVMismatch, e.Label, d.tok.Label(), e.KCV, want)
	}
	return e, nil
}
