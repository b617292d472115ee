package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// rounds is how many turns each size takes at each rate: the sizes
// alternate, so the machine's drift falls on all of them alike (one size
// measured after another read the same code 76% and 92% apart).
const rounds = 4

// sized is one size's directory and server, while it is measured.
type sized struct {
	r     result
	dir   string
	env   []string // the CLI's and the server's
	admin string   // bearer token; never printed
	probe string   // a token its server has never seen
	s     *server
	pool  []string
}

// measureAll measures every size: each is loaded and served first, then
// their rates are measured in alternating rounds, then each is listed
// and stopped. rows has a row for each size done when it fails.
func measureAll(o options, sizes []int) (rows []result, err error) {
	var all []*sized
	defer func() {
		for _, z := range all {
			if z.s != nil {
				if stopErr := z.s.stop(); err == nil && stopErr != nil {
					err = fmt.Errorf("%d tokens: %w", z.r.size, stopErr)
				}
			}
			if o.keep {
				progress("%d tokens: keeping %s", z.r.size, z.dir)
			} else {
				os.RemoveAll(z.dir)
			}
		}
	}()
	for _, n := range sizes {
		z := &sized{r: result{size: n}}
		all = append(all, z)
		if err := z.prepare(o); err != nil {
			return nil, fmt.Errorf("%d tokens: %w", n, err)
		}
	}
	for _, z := range all {
		if err := z.serve(o); err != nil {
			return nil, fmt.Errorf("%d tokens: %w", z.r.size, err)
		}
	}
	if err := measureRates(o, all); err != nil {
		return nil, err
	}
	for _, z := range all {
		if err := z.finish(o); err != nil {
			return rows, fmt.Errorf("%d tokens: %w", z.r.size, err)
		}
		rows = append(rows, z.r)
	}
	return rows, nil
}

// prepare makes the size's token, keys and tokens in a fresh directory
// and loads its database.
func (z *sized) prepare(o options) (err error) {
	n := z.r.size
	if z.dir, err = os.MkdirTemp("", "keyward-bench-scale-"); err != nil {
		return err
	}
	if z.env, err = setup(o.bin, z.dir); err != nil {
		return err
	}
	if z.admin, err = createToken(o.bin, z.env, "--subject", "ops", "--scope", "admin", "--expires-in", "1h"); err != nil {
		return err
	}
	if z.probe, err = createToken(o.bin, z.env, "--subject", "probe", "--scope", "read"); err != nil {
		return err
	}
	if z.r.load, err = load(filepath.Join(z.dir, "keyward.db"), n, time.Now()); err != nil {
		return err
	}
	progress("%d tokens: loaded %d records, %d revocations in %v", n, z.r.load.tokens, z.r.load.revoked, z.r.load.took.Round(time.Millisecond))
	return nil
}

// serve starts the size's server and times its first request, which
// introspects a token it has never seen.
func (z *sized) serve(o options) error {
	s, err := startServe(o.bin, z.env, z.admin, o.workers)
	if err != nil {
		return err
	}
	z.s = s
	z.r.start = s.start
	t := time.Now()
	if err := s.introspect(z.probe); err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	z.r.first = time.Since(t)
	progress("%d tokens: serving after %v, first request %v", z.r.size, z.r.start.Round(time.Millisecond), z.r.first.Round(time.Microsecond))
	return nil
}

// measureRates measures create, then first-time and cached introspection,
// each in rounds that take turns between the sizes (the first size
// leading in turn).
func measureRates(o options, all []*sized) error {
	for _, z := range all {
		z.pool = make([]string, o.pool)
	}
	type load struct {
		name string
		n    int
		rate func(z *sized) *rate
		call func(z *sized, i int) error
	}
	for _, l := range []load{
		{"create", o.pool, func(z *sized) *rate { return &z.r.create }, func(z *sized, i int) (err error) {
			z.pool[i], err = z.s.create(fmt.Sprintf("pool-%d", i%100))
			return err
		}},
		{"introspect first time", o.pool, func(z *sized) *rate { return &z.r.introFirst }, func(z *sized, i int) error { return z.s.introspect(z.pool[i]) }},
		{"introspect cached", o.cached, func(z *sized) *rate { return &z.r.introCached }, func(z *sized, _ int) error { return z.s.introspect(z.pool[0]) }},
	} {
		acc := make([]timings, len(all))
		for round := range rounds {
			from, to := l.n*round/rounds, l.n*(round+1)/rounds
			for k := range all {
				i := (round + k) % len(all)
				z := all[i]
				if err := acc[i].run(from, to, o.workers, func(j int) error { return l.call(z, j) }); err != nil {
					return fmt.Errorf("%d tokens: %s: %w", z.r.size, l.name, err)
				}
			}
		}
		for i, z := range all {
			*l.rate(z) = acc[i].rate()
		}
	}
	for _, z := range all {
		progress("%d tokens: create %.0f/s, introspect first time %.0f/s, cached %.0f/s", z.r.size, z.r.create.perSec, z.r.introFirst.perSec, z.r.introCached.perSec)
	}
	return nil
}

// finish measures the idle size's RSS, a full listing and one page, and
// stops its server.
func (z *sized) finish(o options) (err error) {
	n, s := z.r.size, z.s
	time.Sleep(2 * time.Second) // the load's goroutines and buffers settle
	if z.r.idleRSS, err = rss(s.cmd.Process.Pid); err != nil {
		return err
	}
	// A listing that fails (a one-call listing of a million records can
	// outlast serve's request timeout) is a finding: the row says so and
	// the run goes on.
	if z.r.list, err = s.listAll(1000); err != nil {
		z.r.list.failed = err.Error()
		progress("%d tokens: listing failed after %v: %v", n, z.r.list.took.Round(time.Millisecond), err)
	} else if want := n + o.pool + 2; z.r.list.tokens != want {
		return fmt.Errorf("listing: %d tokens, want %d", z.r.list.tokens, want)
	}
	if z.r.page, err = s.pageTime(20); err != nil {
		return fmt.Errorf("page of 100: %w", err)
	}
	z.s = nil
	return s.stop()
}
