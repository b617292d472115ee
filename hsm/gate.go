package hsm

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate lets one caller at a time through to the device. It serves one
// case: HMAC verification on a device whose concurrent HMAC calls contend
// inside the library (quirks.HMACContends: SoftHSM2; two at once cost each
// twice the CPU, so two cores do less than one). Signing is left side by
// side: a signer's caller also writes the token to the database.
//
// Waiters sleep, honouring their context, and a caller that comes as the
// gate opens may go first, as with sync.Mutex, so the device is not left
// idle while a woken waiter is scheduled. An earlier gate had waiters spin
// for it instead: best for verifications alone (the next caller takes the
// device at once), but in keyward serve the spinners took the cores from
// the HTTP work: first-time introspection over HTTP ran 15% faster with
// sleeping waiters (docs/PERFORMANCE.md, "On SoftHSM2, HMAC verifications
// pass a gate").
type gate struct {
	mu      sync.Mutex
	waiting atomic.Int32
	wake    chan struct{} // a token for one waiter: the gate was left
}

func newGate() *gate { return &gate{wake: make(chan struct{}, 1)} }

func (g *gate) enter(ctx context.Context) error {
	if g.mu.TryLock() {
		return nil
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	for {
		// Tried again once counted: a leave before the count saw no
		// waiter, and one after it leaves a token.
		if g.mu.TryLock() {
			return nil
		}
		select {
		case <-g.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *gate) leave() {
	g.mu.Unlock()
	if g.waiting.Load() > 0 {
		select {
		case g.wake <- struct{}{}:
		default: // a token is already there
		}
	}
}

// hmacGate is the gate for HMAC verifications on a device with quirks q,
// or nil when they may run side by side.
func (q *quirks) hmacGate() *gate {
	if q.HMACContends {
		return newGate()
	}
	return nil
}
