package hsm

import (
	"errors"
	"testing"
)

// A call begun before the device went down that finishes well says
// nothing of the device now: one outage is one down and one up, not two.
func TestHealthIgnoresCallsBegunBeforeTheOutage(t *testing.T) {
	var h health
	var changes []bool
	h.notify = func(s Health) { changes = append(changes, s.Up) }
	before := h.downs.Load()
	h.fault(errors.New("CKR_DEVICE_REMOVED"))
	h.up(before) // a call with its session open before the fault
	if !h.down.Load() {
		t.Fatal("a call begun before the outage marked the device up")
	}
	h.up(h.downs.Load()) // a call begun during the outage
	if h.down.Load() || len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("changes %v, want one down and one up", changes)
	}
}
