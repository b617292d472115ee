package tokens

import (
	"sync"
	"sync/atomic"
)

// cowMap is a small map read on every token and written a few times per
// key version: readers load it without a lock, a writer copies it.
type cowMap[K comparable, V any] struct {
	mu sync.Mutex // one writer at a time
	m  atomic.Pointer[map[K]V]
}

func (c *cowMap[K, V]) load(k K) (V, bool) {
	if m := c.m.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// loadOrMake returns k's value, or makes it with make (one maker at a time,
// so a value is made once) and adds it.
func (c *cowMap[K, V]) loadOrMake(k K, make func() (V, error)) (V, error) {
	if v, ok := c.load(k); ok {
		return v, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.load(k); ok {
		return v, nil
	}
	v, err := make()
	if err != nil {
		return v, err
	}
	next := map[K]V{k: v}
	if old := c.m.Load(); old != nil {
		for ok, ov := range *old {
			next[ok] = ov
		}
	}
	c.m.Store(&next)
	return v, nil
}

// update sets k's value to f(its value, whether it has one), one writer
// at a time; f returning ok false leaves the map as it is.
func (c *cowMap[K, V]) update(k K, f func(old V, had bool) (V, bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.load(k)
	v, ok := f(old, had)
	if !ok {
		return
	}
	next := map[K]V{k: v}
	if m := c.m.Load(); m != nil {
		for ok, ov := range *m {
			if ok != k {
				next[ok] = ov
			}
		}
	}
	c.m.Store(&next)
}
