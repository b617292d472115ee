package hsm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestGateLetsOneThrough(t *testing.T) {
	g := newGate()
	var inside atomic.Int32
	count := 0 // guarded by g alone: -race sees any overlap
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if err := g.enter(context.Background()); err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					t.Error("two callers inside the gate")
				}
				count++
				inside.Add(-1)
				g.leave()
			}
		}()
	}
	wg.Wait()
	if count != 8*2000 {
		t.Fatalf("count %d", count)
	}
}

func TestGateWaiterHonoursContext(t *testing.T) {
	g := newGate()
	g.enter(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with a cancelled context: %v", err)
	}
	g.leave()
	if err := g.enter(context.Background()); err != nil {
		t.Fatal(err)
	}
}
