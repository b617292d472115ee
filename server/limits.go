package server

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Two bounds against hostile load: the request bytes held in memory at
// once (a body is read whole: 100 uploads of 1 MiB held half a GiB), and a
// per-client rate on the routes anyone may call without credentials.

// DefaultMaxBytesInFlight is Config.MaxBytesInFlight's default.
const DefaultMaxBytesInFlight = 64 << 20

// inFlight counts the request bytes being read or held now.
type inFlight struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or says no when they would pass the bound.
func (f *inFlight) take(n int64) bool {
	if f.used.Add(n) > f.max && n > 0 {
		f.used.Add(-n)
		return false
	}
	return true
}

func (f *inFlight) give(n int64) { f.used.Add(-n) }

// bodyBytes is what a request's body may hold, as reserved: its announced
// length, or the largest body the server takes when it announces none
// (chunked); no more than that largest either way (a longer one is 413).
func (s *Server) bodyBytes(r *http.Request) int64 {
	largest := max(s.cfg.MaxBody, s.node.MaxRecord()*2) // transit bodies are base64
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return 0
	}
	if r.ContentLength < 0 || r.ContentLength > largest {
		return largest
	}
	return r.ContentLength
}

var errBusy = errorf(http.StatusServiceUnavailable, "BUSY", "the server holds as many request bodies as it may; send again later")

// rateLimiter is a token bucket per client address: rate requests a
// second, burst at once.
type rateLimiter struct {
	rate, burst float64
	mu          sync.Mutex
	clients     map[string]*bucket
	swept       time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), clients: map[string]*bucket{}}
}

// allow takes a token of client's bucket, or says how long until one is
// there.
func (l *rateLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		// A bucket left alone this long is full again: forget it.
		for k, b := range l.clients {
			if now.Sub(b.last) > time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	b, ok := l.clients[client]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.clients[client] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// clientOf is the address a request came from (the peer, not a header a
// client could set).
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// rateLimited is h behind the per-client rate: over it, 429 with
// Retry-After.
func (s *Server) rateLimited(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.anon == nil {
			return h(w, r)
		}
		client := clientOf(r)
		if ok, wait := s.anon.allow(client, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			return errorf(http.StatusTooManyRequests, "TOO_MANY_REQUESTS", "too many requests from %s to routes whose credential is a token in the body; wait %s", client, wait.Round(time.Millisecond))
		}
		return h(w, r)
	}
}
