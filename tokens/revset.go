package tokens

import (
	"container/heap"
	"hash/maphash"
	"sync"
	"time"
)

// revSet is the set of revoked token ids, each held until its drop time
// (its token's expiry plus a margin). Ids are filed in buckets by the
// minute they drop, so dropping what has expired touches only those ids,
// never the whole set.
//
// Lookups take one shard's read lock. The shards are plain maps, not a
// sync.Map, which held a revocation in more than twice the memory: with a
// million tokens and 50,000 live revocations the server's idle RSS was
// 1.47× that with 10,000 tokens, and is 1.26–1.28× now (docs/PERFORMANCE.md).
type revSet struct {
	shards [revShards]revShard

	mu      sync.Mutex // guards the rest and orders writers; adders and expire take it
	buckets map[int64]*dropBucket
	due     minutes // bucket minutes, earliest first
}

// revShards spreads lookups from many cores over as many locks.
const revShards = 16

// revShard is a part of the set; its map changes only under revSet.mu
// and its own lock, and is read under either.
type revShard struct {
	mu   sync.RWMutex
	ids  map[string]*dropBucket // id → the bucket it is filed in
	peak int                    // the most ids held since ids was made; a map never shrinks
	_    [24]byte               // a cache line of its own
}

var revSeed = maphash.MakeSeed()

func (s *revSet) shard(id string) *revShard {
	return &s.shards[maphash.String(revSeed, id)%revShards]
}

// dropBucket holds the ids that drop once the clock reaches minute.
type dropBucket struct {
	minute int64 // Unix minutes
	ids    []string
}

func (s *revSet) has(id string) bool {
	sh := s.shard(id)
	sh.mu.RLock()
	_, ok := sh.ids[id]
	sh.mu.RUnlock()
	return ok
}

// add holds id until drop at least: an id held longer already keeps its
// later time (never shortened).
func (s *revSet) add(id string, drop time.Time) {
	// The minute after the one drop falls in: never dropped early.
	m := drop.UnixMilli()/60_000 + 1
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shard(id)
	old, held := sh.ids[id] // s.mu held: no writer runs
	if held && old.minute >= m {
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
	sh.mu.Lock()
	if sh.ids == nil {
		sh.ids = map[string]*dropBucket{}
	}
	sh.ids[id] = b
	sh.peak = max(sh.peak, len(sh.ids))
	sh.mu.Unlock()
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
			sh := s.shard(id)
			if sh.ids[id] != b {
				continue // refiled in a later bucket
			}
			sh.mu.Lock()
			delete(sh.ids, id)
			sh.mu.Unlock()
			dropped++
		}
	}
	if dropped > 0 {
		for i := range s.shards {
			s.shards[i].shrink()
		}
	}
	return dropped, visited
}

// shrink remakes the map once it holds under a quarter of what it held
// at its largest: a Go map keeps its size, so memory would otherwise
// follow the most revocations ever held, not those live. Copying is paid
// for by the drops that made the map that small. Called under revSet.mu.
func (sh *revShard) shrink() {
	if sh.peak < 1024 || len(sh.ids) >= sh.peak/4 {
		return
	}
	fresh := make(map[string]*dropBucket, len(sh.ids))
	for id, b := range sh.ids {
		fresh[id] = b
	}
	sh.mu.Lock()
	sh.ids, sh.peak = fresh, len(fresh)
	sh.mu.Unlock()
}

// len is the number of ids held.
func (s *revSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].ids)
	}
	return n
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
