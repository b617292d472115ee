package hsm

import (
	"context"
	"runtime"
	"sync/atomic"
)

// gate lets one caller at a time through to the device. Callers waiting
// for it spin, yielding their P every few dozen tries, instead of
// sleeping: the call they wait for lasts ~15 µs, less than a sleep and a
// wake-up cost on a virtual machine. At most GOMAXPROCS callers spin;
// more wait in line asleep (honouring their context), so that spinners do
// not crowd out the goroutines with work to do.
//
// It serves one case: HMAC verification on a device whose concurrent HMAC
// calls contend inside the library (quirks.HMACContends: SoftHSM2; two at
// once cost each twice the CPU, so two cores do less than one). One at a
// time, with the other cores preparing the next call, the device never
// waits and never contends: verifying tokens on two cores went from 91% to
// 98% of the raw two-core rate. Signing is left side by side: a signer's
// caller also writes the token to the database, and with signing gated the
// database writer and the spinners fought over the cores (token creation
// −19%).
type gate struct {
	held     atomic.Bool
	spinners chan struct{} // a slot for each caller spinning
}

func newGate() *gate { return &gate{spinners: make(chan struct{}, runtime.GOMAXPROCS(0))} }

func (g *gate) enter(ctx context.Context) error {
	if g.held.CompareAndSwap(false, true) {
		return nil
	}
	select {
	case g.spinners <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.spinners }()
	for i := 1; !g.held.CompareAndSwap(false, true); i++ {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			runtime.Gosched()
		}
	}
	return nil
}

func (g *gate) leave() { g.held.Store(false) }

// hmacGate is the gate for HMAC verifications on a device with quirks q,
// or nil when they may run side by side.
func (q *quirks) hmacGate() *gate {
	if q.HMACContends {
		return newGate()
	}
	return nil
}
