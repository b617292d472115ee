package hsm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

// Waiters that give up (their context ends) must not swallow the wake-up
// a leave gave: every other waiter still gets through, and soon.
func TestGateWakesWaitersPastCancelledOnes(t *testing.T) {
	g := newGate()
	var passed atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range 8 {
		wg.Go(func() {
			for i := range 3000 {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (w+i)%3 == 0 {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(i%7)*time.Microsecond)
				}
				if err := g.enter(ctx); err != nil {
					cancel()
					continue // gave up waiting: fine
				}
				passed.Add(1)
				g.leave()
				cancel()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("waiters stuck after %d passes: a wake-up was lost", passed.Load())
	}
	if passed.Load() < 8*3000*2/3 {
		t.Fatalf("%d passes, want at least every caller without a deadline", passed.Load())
	}
}
