package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// A request's handler may be held by a device that hangs: a PKCS#11 call
// cannot be interrupted. So the handler writes into a buffer on a
// goroutine of its own, and the request is answered from here — with what
// the handler wrote, or, when RequestTimeout comes first, with a 503 and
// Retry-After. A handler still held then finishes when the device
// answers, its session goes back to the pool, and what it writes is
// dropped.

// buffered is the ResponseWriter a handler writes into.
type buffered struct {
	mu     sync.Mutex
	header http.Header
	status int
	body   bytes.Buffer
	late   bool // the request was answered without it
}

func (b *buffered) Header() http.Header { return b.header }

func (b *buffered) WriteHeader(code int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.status == 0 {
		b.status = code
	}
}

func (b *buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.late {
		return 0, http.ErrHandlerTimeout
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// errNoAnswer is the answer to a request whose handler was held past its
// deadline (by a device or a database that hangs).
var errNoAnswer = errorf(http.StatusServiceUnavailable, "UNAVAILABLE", "the request did not finish in time: the device or the database is not answering; try again later")

// serveWithin runs serve for r on its own goroutine and answers w with
// what it wrote, or with errNoAnswer when r's context ends first.
func (s *Server) serveWithin(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	b := &buffered{header: make(http.Header)}
	done := make(chan any, 1)
	s.handlers.run(func() {
		defer func() { done <- recover() }()
		serve(b, r)
	})
	select {
	case p := <-done:
		if p != nil {
			panic(p)
		}
		dst := w.Header()
		for k, v := range b.header {
			dst[k] = v
		}
		if b.status == 0 {
			b.status = http.StatusOK
		}
		w.WriteHeader(b.status)
		w.Write(b.body.Bytes())
	case <-r.Context().Done():
		b.mu.Lock()
		b.late = true
		b.mu.Unlock()
		if !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
			// Not the request timeout: the client went away.
			s.fail(w, r, errClientGone)
			return
		}
		s.fail(w, r, errNoAnswer)
	}
}

// handlers run the handlers on goroutines kept between requests: one made
// for each request grew its stack from the minimum every time (stack
// growth was 3% of the server's CPU on token creation).
type handlers struct{ jobs chan func() }

// handlerIdle is how long a handler goroutine waits for the next request
// before it ends: under load one is reused within microseconds, and once
// the load is gone the goroutines are back to their level within a second
// (the outage test checks that nothing stays behind).
const handlerIdle = time.Second

// run runs f on a handler goroutine waiting for work, or on a new one
// when none is (a handler held by a hung device holds its goroutine only).
func (h *handlers) run(f func()) {
	select {
	case h.jobs <- f:
	default:
		go h.work(f)
	}
}

func (h *handlers) work(f func()) {
	idle := time.NewTimer(handlerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil // the request, its body and its answer are not kept while idle
		idle.Reset(handlerIdle)
		select {
		case f = <-h.jobs:
		case <-idle.C:
			return
		}
	}
}
