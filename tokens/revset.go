package tokens

import (
	"container/heap"
	"sync"
	"time"
)

// revSet is the set of revoked token ids, each held until its drop time
// (its token's expiry plus a margin). Lookups take no lock (a sync.Map,
// read on every core at once). Ids are filed in buckets by the minute
// they drop, so dropping what has expired touches only those ids, never
// the whole set.
type revSet struct {
	ids sync.Map // id → *dropBucket it is filed in

	mu      sync.Mutex // guards the rest; adders and expire take it
	buckets map[int64]*dropBucket
	due     minutes // bucket minutes, earliest first
	n       int     // ids held
}

// dropBucket holds the ids that drop once the clock reaches minute.
type dropBucket struct {
	minute int64 // Unix minutes
	ids    []string
}

func (s *revSet) has(id string) bool {
	_, ok := s.ids.Load(id)
	return ok
}

// add holds id until drop at least: an id held longer already keeps its
// later time (never shortened).
func (s *revSet) add(id string, drop time.Time) {
	// The minute after the one drop falls in: never dropped early.
	m := drop.UnixMilli()/60_000 + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	old, held := s.ids.Load(id)
	if held && old.(*dropBucket).minute >= m {
		return
	}
	b := s.buckets[m]
	if b == nil {
		if s.buckets == nil {
			s.buckets = map[int64]*dropBucket{}
		}
		b = &dropBucket{minute: m}
		s.buckets[m] = b
		heap.Push(&s.due, m)
	}
	b.ids = append(b.ids, id)
	s.ids.Store(id, b)
	if !held {
		s.n++
	}
}

// expire drops the ids whose drop time is past at now, bucket by
// bucket: its cost is the ids dropped, not the set. An id refiled in a
// later bucket stays. visited counts the ids looked at.
func (s *revSet) expire(now time.Time) (dropped, visited int) {
	m := now.UnixMilli() / 60_000
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.due) > 0 && s.due[0] <= m {
		b := s.buckets[heap.Pop(&s.due).(int64)]
		delete(s.buckets, b.minute)
		visited += len(b.ids)
		for _, id := range b.ids {
			if s.ids.CompareAndDelete(id, b) {
				dropped++
			}
		}
	}
	s.n -= dropped
	return dropped, visited
}

// len is the number of ids held.
func (s *revSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// minutes is a min-heap of bucket minutes (container/heap).
type minutes []int64

func (h minutes) Len() int           { return len(h) }
func (h minutes) Less(i, j int) bool { return h[i] < h[j] }
func (h minutes) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minutes) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *minutes) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
