package tokens

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/keystore"
)

// minBackground is the shortest interval read in the background: below
// it (tests) the log is read on the verification path, as it is due.
const minBackground = 10 * time.Millisecond

// revocations follows the database's revocation log: the ids of revoked
// tokens that may still verify. The first lookup reads the live entries
// (the log's entries of tokens not yet expired); from then on a
// background reader reads what is new every interval (wall-clock,
// whatever the token clock says) while lookups come, so a revocation on
// any node reaches this one within interval (this process's own at
// once), and a lookup waits on the database only when the set is more
// than two intervals old. Lookups take one shard's read lock (revset.go).
type revocations struct {
	store    *keystore.Store
	also     func(ctx context.Context) // read with the log in the background
	interval time.Duration
	keep     time.Duration // how long past its expiry an id is kept
	now      func() time.Time

	set    revSet
	okAt   atomic.Int64              // wall clock when the last good read began, Unix ns; 0: none yet
	failed atomic.Pointer[readError] // the last read's error; nil when it worked
	usedAt atomic.Int64              // wall clock of a recent lookup, Unix ns

	lock   chan struct{} // one reader of the log at a time
	seq    int64         // the last log entry read; guarded by lock
	loaded bool          // the live entries were read; guarded by lock
	rows   atomic.Int64  // log entries read, for tests

	bg      sync.Mutex // starting and stopping the reader
	running atomic.Bool
	closed  bool
	stop    chan struct{}
	done    sync.WaitGroup
}

type readError struct{ err error }

func newRevocations(store *keystore.Store, interval, leeway time.Duration, now func() time.Time) *revocations {
	// An id is kept while its token could still pass the expiry check
	// (exp + leeway), and an hour more for clocks that disagree.
	return &revocations{store: store, interval: interval, keep: leeway + time.Hour, now: now,
		lock: make(chan struct{}, 1), stop: make(chan struct{})}
}

func (r *revocations) has(ctx context.Context, id string, wall time.Time) (bool, error) {
	if w := wall.UnixNano(); w-r.usedAt.Load() > int64(r.interval)/4 {
		r.usedAt.Store(w) // seldom: verifiers on every core only read it
	}
	if err := r.fresh(ctx, wall); err != nil {
		return false, err
	}
	return r.set.has(id), nil
}

// fresh returns once the set is at most two intervals old, reading the
// log if need be; or the database's error: a stale set is never trusted.
func (r *revocations) fresh(ctx context.Context, wall time.Time) error {
	ok := r.okAt.Load()
	if ok != 0 && wall.UnixNano()-ok <= 2*int64(r.interval) {
		return nil
	}
	if f := r.failed.Load(); f != nil && ok != 0 && r.running.Load() {
		return f.err // the reader keeps failing: fail closed at once
	}
	err := r.read(ctx, false)
	r.wake()
	return err
}

// read reads the log: the live entries the first time, then what is
// new; unless force, not again within interval of the last good read.
func (r *revocations) read(ctx context.Context, force bool) error {
	var late <-chan time.Time
	if r.running.Load() {
		// The reader holds the lock: wait for it an interval at most.
		t := time.NewTimer(r.interval)
		defer t.Stop()
		late = t.C
	}
	select {
	case r.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-late:
		return fmt.Errorf("%w: the revocation log was last read %s ago; check the database", keystore.ErrDatabase,
			time.Since(time.Unix(0, r.okAt.Load())).Round(time.Millisecond))
	}
	defer func() { <-r.lock }()
	began := time.Now()
	if !force && began.UnixNano()-r.okAt.Load() < int64(r.interval) {
		return nil // another caller just read it
	}
	if err := r.readLog(ctx); err != nil {
		r.failed.Store(&readError{err})
		return err
	}
	r.failed.Store(nil)
	r.okAt.Store(began.UnixNano())
	return nil
}

// readLog reads the log's live entries the first time, then the entries
// after the last one read, and drops the ids whose tokens have expired.
// Its caller holds r.lock.
func (r *revocations) readLog(ctx context.Context) error {
	now := r.now()
	if !r.loaded {
		last, live, err := r.store.LiveRevocations(ctx, now.Add(-r.keep))
		if err != nil {
			return err
		}
		r.addAll(live)
		r.seq, r.loaded = last, true
	} else {
		log, err := r.store.RevocationsSince(ctx, r.seq)
		if err != nil {
			return err
		}
		r.addAll(log)
		if len(log) > 0 {
			r.seq = log[len(log)-1].Seq
		}
	}
	r.set.expire(now)
	return nil
}

func (r *revocations) addAll(log []keystore.Revocation) {
	for _, e := range log {
		r.set.add(e.TokenID, e.Expires.Add(r.keep))
	}
	r.rows.Add(int64(len(log)))
}

// add holds id (revoked here) until its token expires, and the margin.
func (r *revocations) add(id string, exp time.Time) { r.set.add(id, exp.Add(r.keep)) }

// sync reads the log now: after this node revoked tokens it cannot name
// (a whole family), so that it never accepts them again, not even for
// the interval.
func (r *revocations) sync(ctx context.Context) error {
	return r.read(ctx, true)
}

// idle is how long the reader runs on without lookups: then it stops,
// and the next lookup reads what is new itself and starts it again.
func (r *revocations) idle() time.Duration { return max(240*r.interval, time.Minute) }

// wake starts the background reader unless it runs (or the interval is
// too short for one, or the service is closed).
func (r *revocations) wake() {
	if r.interval < minBackground || r.running.Load() {
		return
	}
	r.bg.Lock()
	defer r.bg.Unlock()
	if r.closed || r.running.Load() {
		return
	}
	r.running.Store(true)
	r.done.Add(1)
	go r.loop()
}

// loop reads the log every interval until the service is closed or no
// lookup came for idle.
func (r *revocations) loop() {
	defer r.done.Done()
	defer r.running.Store(false)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if time.Now().UnixNano()-r.usedAt.Load() > int64(r.idle()) {
			return
		}
		// A read that hangs (a database behind a partition) fails in
		// time, and lookups then fail at once instead of waiting.
		ctx, cancel := context.WithTimeout(context.Background(), max(4*r.interval, 5*time.Second))
		r.read(ctx, false)
		if r.also != nil {
			r.also(ctx)
		}
		cancel()
	}
}

// close stops the background reader and waits for it.
func (r *revocations) close() {
	r.bg.Lock()
	if !r.closed {
		r.closed = true
		close(r.stop)
	}
	r.bg.Unlock()
	r.done.Wait()
}
