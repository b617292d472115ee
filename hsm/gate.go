package hsm

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
)

// gate lets one caller at a time through to the device. The next caller
// in line spins, yielding its P every few dozen tries, instead of
// sleeping: the call it waits for lasts ~15 µs, less than a sleep and a
// wake-up cost on a virtual machine. Callers behind it wait in line
// (asleep, honouring their context), so however many there are, one
// spins.
//
// It serves one case: HMAC on SoftHSM2, whose concurrent HMAC calls contend
// inside the library (two at once cost each twice the CPU, so two cores do
// less than one). One at a time, with the other cores preparing the next
// call, the device never waits and never contends.
type gate struct {
	held atomic.Bool
	line chan struct{} // held by the caller spinning for the gate
}

func newGate() *gate { return &gate{line: make(chan struct{}, 1)} }

func (g *gate) enter(ctx context.Context) error {
	if g.held.CompareAndSwap(false, true) {
		return nil
	}
	select {
	case g.line <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.line }()
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

// hmacGate is the gate for HMAC calls on a token made by manufacturer, or
// nil when calls may run side by side (every device but SoftHSM2).
func hmacGate(manufacturer string) *gate {
	if strings.TrimSpace(manufacturer) == "SoftHSM project" {
		return newGate()
	}
	return nil
}
