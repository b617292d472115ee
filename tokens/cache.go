package tokens

import (
	"hash/maphash"
	"sync"
)

// verifiedCache keeps tokens whose signature verified, by the token's
// exact text, so the same token verifies again without the device. The
// key, time, audience, kind and revocation are checked on every hit.
//
// A token is hashed once (maphash, a per-process seed) to pick one of
// several shards, each a ring of slots with its own lock: verifiers on
// several cores rarely meet, and when a shard is full its oldest token
// makes room in O(1). A hit compares the whole token, so a hash collision
// can only cost a miss.
type verifiedCache struct {
	seed   maphash.Seed
	shards []cacheShard
}

type cacheShard struct {
	mu    sync.Mutex
	index map[uint64]int // token hash → slot
	slots []cacheSlot
	next  int // the slot to fill next

	hits, misses uint64 // under mu: for CacheStats
}

type cacheSlot struct {
	hash  uint64
	token string
	v     verified
}

func newVerifiedCache(max int) *verifiedCache {
	n := min(16, max)
	c := &verifiedCache{seed: maphash.MakeSeed(), shards: make([]cacheShard, n)}
	for i := range c.shards {
		size := max / n
		if i < max%n {
			size++
		}
		c.shards[i] = cacheShard{index: make(map[uint64]int, size), slots: make([]cacheSlot, size)}
	}
	return c
}

// key hashes token; shard is where it lives.
func (c *verifiedCache) key(token string) (uint64, *cacheShard) {
	h := maphash.String(c.seed, token)
	return h, &c.shards[h%uint64(len(c.shards))]
}

func (c *verifiedCache) get(token string) (verified, bool) {
	if c == nil {
		return verified{}, false
	}
	h, sh := c.key(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.index[h]; ok && sh.slots[i].token == token {
		sh.hits++
		return sh.slots[i].v, true
	}
	sh.misses++
	return verified{}, false
}

// stats adds up the shards' hits and misses.
func (c *verifiedCache) stats() (hits, misses uint64) {
	if c == nil {
		return 0, 0
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		hits, misses = hits+sh.hits, misses+sh.misses
		sh.mu.Unlock()
	}
	return hits, misses
}

func (c *verifiedCache) put(token string, v verified) {
	if c == nil {
		return
	}
	h, sh := c.key(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.index[h]; ok {
		return // there already (or a collision: keep the older)
	}
	slot := &sh.slots[sh.next]
	if slot.token != "" {
		delete(sh.index, slot.hash)
	}
	*slot = cacheSlot{hash: h, token: token, v: v}
	sh.index[h] = sh.next
	sh.next = (sh.next + 1) % len(sh.slots)
}

// len is the number of tokens kept.
func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.index)
		sh.mu.Unlock()
	}
	return n
}
