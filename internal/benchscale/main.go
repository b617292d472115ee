// Command benchscale is make bench-scale (issue 21): for each size N it
// makes a fresh SoftHSM2 token and SQLite database with the real CLI,
// loads N token records and N/10 revocations straight into the database,
// starts keyward serve and measures it with net/http: the first request
// (which reads the revocation log), introspection first-time and cached,
// create, idle RSS, the peak RSS of a full listing and one page of 100.
//
//	go run ./internal/benchscale [-keyward bin/keyward] [-out bench-scale.out] 10000 100000
//
// It lives under internal/ as a main package: keyward's binary never
// links it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type options struct {
	bin                   string
	pool, cached, workers int
	keep                  bool
}

// result is one size's row.
type result struct {
	size        int
	load        loaded
	start       time.Duration
	first       time.Duration
	introFirst  rate
	introCached rate
	create      rate
	idleRSS     int64
	list        listing
	page        time.Duration // 0: the server has no limit parameter
}

func main() {
	var o options
	out := flag.String("out", "bench-scale.out", "file for the raw figures and the table")
	flag.StringVar(&o.bin, "keyward", "bin/keyward", "the keyward binary (make build)")
	flag.IntVar(&o.pool, "pool", 5000, "tokens created through the API, then each introspected once")
	flag.IntVar(&o.cached, "cached", 20000, "introspections of one token")
	flag.IntVar(&o.workers, "workers", 16, "concurrent clients")
	flag.BoolVar(&o.keep, "keep", false, "keep each size's directory (token, database)")
	flag.Parse()
	var sizes []int
	for _, a := range flag.Args() {
		for _, f := range strings.Fields(a) { // SIZES="10000 100000" as one word too
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				fatal(fmt.Errorf("size %q: want a positive number of tokens", f))
			}
			sizes = append(sizes, n)
		}
	}
	if len(sizes) == 0 {
		sizes = []int{10_000, 100_000}
	}
	if o.pool < 100 || o.cached < 100 || o.workers < 1 {
		fatal(errors.New("-pool and -cached need at least 100, -workers at least 1"))
	}
	header := fmt.Sprintf("keyward bench-scale: %d cores (%s), %s, %s; %d workers, pool of %d tokens, %d cached introspections",
		runtime.NumCPU(), cpuModel(), time.Now().UTC().Format("2006-01-02"), runtime.Version(), o.workers, o.pool, o.cached)
	var raw bytes.Buffer
	fmt.Fprintln(&raw, header)
	rows, failed := measureAll(o, sizes)
	for _, r := range rows {
		fmt.Fprintln(&raw, r.raw())
	}
	table := markdown(header, rows)
	fmt.Print(table)
	raw.WriteString("\n" + table)
	if err := os.WriteFile(*out, raw.Bytes(), 0o644); err != nil {
		fatal(err)
	}
	if failed != nil {
		fatal(failed)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench-scale:", err)
	os.Exit(1)
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench-scale: "+format+"\n", a...)
}

// setup makes the SoftHSM2 token and the master and join keys in dir
// with the CLI, and returns the environment that uses them. The PIN is
// generated into a 0600 file there, so no command line or output shows it.
func setup(bin, dir string) ([]string, error) {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYWARD_") && !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			env = append(env, kv)
		}
	}
	env = append(env, "KEYWARD_HOME="+dir)
	out, err := keyward(bin, env, "--json", "softhsm", "init", "--label", "bench-scale", "--dir", filepath.Join(dir, "softhsm"))
	if err != nil {
		return nil, err
	}
	var tok struct {
		Label, Module string
		Conf          string `json:"softhsm2_conf"`
		PINSource     string `json:"pin_source"`
	}
	if err := json.Unmarshal(out, &tok); err != nil {
		return nil, fmt.Errorf("keyward softhsm init: %w", err)
	}
	env = append(env, "SOFTHSM2_CONF="+tok.Conf, "KEYWARD_PKCS11_MODULE="+tok.Module,
		"KEYWARD_TOKEN="+tok.Label, "KEYWARD_PIN_SOURCE="+tok.PINSource)
	for _, role := range []string{"master", "join"} {
		if _, err := keyward(bin, env, "key", "generate", "--role", role); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// createToken runs keyward token create and returns the access token.
func createToken(bin string, env []string, args ...string) (string, error) {
	out, err := keyward(bin, env, append([]string{"token", "create"}, args...)...)
	if err != nil {
		return "", err
	}
	var g struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(out, &g); err != nil || g.AccessToken == "" {
		return "", fmt.Errorf("keyward token create: no access_token in its output (%v)", err)
	}
	return g.AccessToken, nil
}

// keyward runs the CLI with no terminal and returns its standard output;
// on failure the error carries its standard error (never its output,
// which may hold a token).
func keyward(bin string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("keyward %s: %v: %s", strings.Join(args[:min(3, len(args))], " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

// raw is the row's figures, one key=value each, in plain units.
func (r result) raw() string {
	return fmt.Sprintf("size=%d load_ms=%d revocations=%d start_ms=%.1f first_request_ms=%.2f"+
		" create_per_s=%.0f create_p50_us=%d create_p99_us=%d"+
		" introspect_first_per_s=%.0f introspect_first_p50_us=%d introspect_first_p99_us=%d"+
		" introspect_cached_per_s=%.0f introspect_cached_p50_us=%d introspect_cached_p99_us=%d"+
		" idle_rss_kib=%d list_peak_rss_kib=%d list_ms=%d list_pages=%d list_paginated=%t list_failed=%q page100_us=%d",
		r.size, r.load.took.Milliseconds(), r.load.revoked, ms(r.start), ms(r.first),
		r.create.perSec, r.create.p50.Microseconds(), r.create.p99.Microseconds(),
		r.introFirst.perSec, r.introFirst.p50.Microseconds(), r.introFirst.p99.Microseconds(),
		r.introCached.perSec, r.introCached.p50.Microseconds(), r.introCached.p99.Microseconds(),
		r.idleRSS>>10, r.list.peakRSS>>10, r.list.took.Milliseconds(), r.list.pages, r.list.paginated, r.list.failed, r.page.Microseconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func markdown(header string, rows []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", header)
	b.WriteString("| tokens | start | first request | introspect, first time | introspect, cached | create | idle RSS | listing: peak RSS | listing: time | page of 100 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		page := "no limit parameter"
		if r.page > 0 {
			page = dur(r.page)
		}
		pages := "one call, unpaginated"
		if r.list.paginated {
			pages = fmt.Sprintf("%d pages", r.list.pages)
		}
		if r.list.failed != "" {
			pages = "failed: " + r.list.failed
			if se := strings.Index(pages, " {"); se > 0 {
				pages = pages[:se] // the status, not the JSON body
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f ms | %s | %s | %s | %s | %s | %s (%s) | %s |\n",
			thousands(float64(r.size)), dur(r.start), ms(r.first), r.introFirst, r.introCached, r.create,
			mib(r.idleRSS), mib(r.list.peakRSS), dur(r.list.took), pages, page)
	}
	// The criteria compare each size with the smallest, measured in the
	// same alternating rounds.
	for _, r := range rows[min(1, len(rows)):] {
		base := rows[0]
		fmt.Fprintf(&b, "\n%s against %s tokens: introspection first time %.1f%%, idle RSS %.2f×, listing RSS +%s",
			thousands(float64(r.size)), thousands(float64(base.size)), 100*r.introFirst.perSec/base.introFirst.perSec,
			float64(r.idleRSS)/float64(base.idleRSS), mib(r.list.peakRSS-r.idleRSS))
	}
	if len(rows) > 1 {
		b.WriteString("\n")
	}
	return b.String()
}

func (r rate) String() string {
	return fmt.Sprintf("%s/s (p50 %s, p99 %s)", thousands(r.perSec), dur(r.p50), dur(r.p99))
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// dur is a latency as the docs write them: 307 µs, 4.5 ms, 1.2 s.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// thousands is a whole number with comma separators.
func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
