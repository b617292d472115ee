//go:build unix

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/server"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

// BenchmarkServer loads `keyward serve` over loopback and measures, in the
// same run, the two rates the server's is bounded by:
//
//   - server: the real Handler (access log on, JSON lines to a file, as in
//     production they go to stderr; Prometheus metrics, the device
//     reporting into them) served by Server.Run on 127.0.0.1:0, loaded by
//     one http.Client with keep-alive and 2×GOMAXPROCS connections, one
//     goroutine each;
//   - inproc (a): the same operation called directly by as many
//     goroutines: the caller's Bearer token verified as the server does,
//     then the token service's Create or Introspect;
//   - bare (b): a net/http handler doing nothing, served and loaded the
//     same way with the same requests.
//
// Were the server to do (a) and (b) and nothing else, on the same cores,
// it would run at the additive bound 1/(1/a + 1/b): bound_ops/s. share_%
// is the server's rate as a share of it (the goal is 80%); p50_µs and
// p99_µs are the server's latencies as its client sees them; ns/op is the
// server's wall time per request. *_cpu_µs are the process's CPU time per
// request on each side (user and system, every thread: SoftHSM2, SQLite
// and the client included); server − inproc − bare is what the server
// adds, and it drifts much less than the rates.
//
// b.N requests go to each side, in rounds of 500 that take turns (the
// order rotating), so the machine's drift falls on all three alike. Run it
// with a fixed count:
//
//	go test -run '^$' -bench Server -benchtime 10000x -count 3 ./server
//
// KEYWARD_BENCH_DB=postgres runs it on PostgreSQL; KEYWARD_BENCH_CONNS=N
// loads each side with N connections (goroutines in process) instead.
func BenchmarkServer(b *testing.B) {
	e := newBenchEnv(b)
	for _, op := range []struct {
		name    string
		prepare func(e *benchEnv, b *testing.B, n int) benchOp
	}{
		{"create", prepareCreate},
		{"introspect_first", prepareIntrospectFirst},
		{"introspect_cached", prepareIntrospectCached},
	} {
		b.Run(op.name, func(b *testing.B) { e.run(b, op.prepare) })
	}
	if !e.served {
		return // KEYWARD_BENCH_SIDE ran another side alone
	}
	if fi, err := os.Stat(e.accessLog); err != nil || fi.Size() == 0 {
		b.Errorf("the access log %s is empty (%v): the benchmark must pay for it", e.accessLog, err)
	}
}

// benchEnv is one node served twice over loopback: by keyward and by a
// bare handler.
type benchEnv struct {
	n          *node.Node
	url, bare  string
	client     *http.Client
	workers    int
	admin      string // Bearer with scope admin
	introspect string // Bearer with scope introspect
	accessLog  string
	served     bool // the server side ran
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	e := &benchEnv{workers: 2 * runtime.GOMAXPROCS(0)}
	if v := os.Getenv("KEYWARD_BENCH_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("KEYWARD_BENCH_CONNS=%q: give a number of connections, 1 or more", v)
		}
		e.workers = n
	}
	// As `keyward serve` does: metrics made first, the device reports
	// into them; revocations read every 250 ms.
	metrics := server.NewMetrics()
	dev := softhsmtest.NewTestToken(b).Config()
	dev.Observe = metrics.ObserveDevice
	n, err := node.Open(b.Context(), node.Config{Device: dev, DB: benchDB(b), Home: b.TempDir(),
		Tokens: tokens.Options{RevocationRefresh: 250 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() }) // runs after the server has stopped
	e.n = n
	for _, role := range []keyring.Role{keyring.Master, keyring.Join} {
		if _, err := n.GenerateKey(b.Context(), role, node.KeySpec{}); err != nil {
			b.Fatal(err)
		}
	}
	e.admin = e.token(b, "admin")
	e.introspect = e.token(b, "introspect")

	// keyward, through Server.Run itself (its http.Server and timeouts).
	e.accessLog = filepath.Join(b.TempDir(), "access.log")
	logf, err := os.Create(e.accessLog)
	if err != nil {
		b.Fatal(err)
	}
	logw := server.NewLogWriter(logf) // as keyward serve writes its log
	srv := server.New(n, server.Config{Metrics: metrics, Log: slog.New(slog.NewJSONHandler(logw, nil))})
	// Stopped by the Cleanup below, after b.Context() is done: the
	// server's context is its own.
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- srv.Run(ctx, server.Listen{Addr: "127.0.0.1:0"}, nil, func(url string) { ready <- url })
	}()
	select {
	case e.url = <-ready:
	case err := <-done:
		cancel()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		logw.Close()
		logf.Close()
	})

	// The bare handler, with the http.Server settings of Server.Run.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{
		Handler:           http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	e.bare = "http://" + ln.Addr().String()

	// One client for both, a keep-alive connection per worker and host.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * e.workers,
		MaxIdleConnsPerHost: e.workers,
		MaxConnsPerHost:     e.workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	e.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	b.Cleanup(tr.CloseIdleConnections)
	return e
}

// benchDB is a SQLite file, or with KEYWARD_BENCH_DB=postgres a
// PostgreSQL database (dbtest's server, or KEYWARD_TEST_PG_URL).
func benchDB(b *testing.B) string {
	if os.Getenv("KEYWARD_BENCH_DB") == "postgres" {
		return dbtest.Postgres(b)
	}
	return dbtest.SQLite(b)
}

// token creates an access token with scope for this node.
func (e *benchEnv) token(b *testing.B, scope string) string {
	b.Helper()
	iss, err := e.n.Tokens().Create(b.Context(), tokens.Request{Subject: "bench-" + scope, Scope: []string{scope}})
	if err != nil {
		b.Fatal(err)
	}
	return iss.AccessToken
}

// tokens creates n tokens, in parallel, for the first-time introspection.
func (e *benchEnv) tokens(b *testing.B, n int) []string {
	b.Helper()
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				iss, err := e.n.Tokens().Create(b.Context(), tokens.Request{Subject: "svc", Scope: []string{"read"}})
				if err != nil {
					errs <- err
					return
				}
				out[i] = iss.AccessToken
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return out
}

// benchOp is one operation, ready for n requests on each side: request i
// of the server and bare sides sends body(i); call i of the in-process
// side is inproc(i).
type benchOp struct {
	path, contentType, bearer string
	body                      func(i int) string
	want                      []byte // in every answer of the server side
	inproc                    func(i int) error
}

func prepareCreate(e *benchEnv, b *testing.B, n int) benchOp {
	const body = `{"subject":"bench","scope":"read"}`
	return benchOp{path: "/access/api/v1/tokens", contentType: "application/json", bearer: e.admin,
		body: func(int) string { return body }, want: []byte(`"access_token":"`),
		inproc: func(int) error {
			if _, err := e.n.Tokens().Verify(b.Context(), e.admin, tokens.VerifyOptions{}); err != nil {
				return err
			}
			_, err := e.n.Tokens().Create(b.Context(), tokens.Request{Subject: "bench", Scope: strings.Fields("read")})
			return err
		}}
}

// introspectOp introspects server[i] over HTTP and inproc[i] in process,
// with ctx.
func introspectOp(ctx context.Context, e *benchEnv, server, inproc []string) benchOp {
	return benchOp{path: "/oauth2/introspect", contentType: "application/x-www-form-urlencoded", bearer: e.introspect,
		body: func(i int) string { return "token=" + server[i] }, want: []byte(`"active":true`),
		inproc: func(i int) error {
			if _, err := e.n.Tokens().Verify(ctx, e.introspect, tokens.VerifyOptions{}); err != nil {
				return err
			}
			out, err := e.n.Tokens().Introspect(ctx, inproc[i], tokens.VerifyOptions{AnyAudience: true})
			if err != nil {
				return err
			}
			if !out.Active {
				return fmt.Errorf("introspect: %v", out)
			}
			return nil
		}}
}

// prepareIntrospectFirst: every request introspects a token never
// verified before (2n of them, made in process before the timer).
func prepareIntrospectFirst(e *benchEnv, b *testing.B, n int) benchOp {
	b.Helper()
	toks := e.tokens(b, 2*n)
	return introspectOp(b.Context(), e, toks[:n], toks[n:])
}

// prepareIntrospectCached: every request introspects the same token,
// verified before.
func prepareIntrospectCached(e *benchEnv, b *testing.B, n int) benchOp {
	b.Helper()
	tok := e.tokens(b, 1)[0]
	if _, err := e.n.Tokens().Introspect(b.Context(), tok, tokens.VerifyOptions{AnyAudience: true}); err != nil {
		b.Fatal(err)
	}
	same := make([]string, n)
	for i := range same {
		same[i] = tok
	}
	return introspectOp(b.Context(), e, same, same)
}

// post sends request i of op to base and checks the answer.
func (e *benchEnv) post(base string, op *benchOp, i int, want []byte) error {
	req, err := http.NewRequest(http.MethodPost, base+op.path, strings.NewReader(op.body(i)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", op.contentType)
	req.Header.Set("Authorization", "Bearer "+op.bearer)
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, want) {
		return fmt.Errorf("%s %s: %s: %.300s", req.Method, req.URL.Path, resp.Status, body)
	}
	return nil
}

// side is one of the three things measured.
type side struct {
	name    string
	call    func(i int) error
	lat     []time.Duration // per request, when kept
	elapsed time.Duration   // wall time
	cpu     time.Duration   // the process's CPU time (user + system, every thread)
}

// cpuTime is the CPU time the process has used: Go, SoftHSM2, SQLite and
// the kernel on its behalf.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// chunk runs calls from..to-1 of s on e.workers goroutines and adds the
// wall and CPU time to s.
func (e *benchEnv) chunk(s *side, from, to int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	cpu := cpuTime()
	start := time.Now()
	for range e.workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < to && failed.Load() == nil; i = int(next.Add(1) - 1) {
				t := time.Now()
				if err := s.call(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				if s.lat != nil {
					s.lat[i] = time.Since(t)
				}
			}
		})
	}
	wg.Wait()
	s.elapsed += time.Since(start)
	s.cpu += cpuTime() - cpu
	if err := failed.Load(); err != nil {
		return fmt.Errorf("%s: %w", s.name, *err)
	}
	return nil
}

func (e *benchEnv) run(b *testing.B, prepare func(*benchEnv, *testing.B, int) benchOp) {
	b.Helper()
	warm := 4 * e.workers // opens every connection, derives the HMAC key
	n := warm + b.N
	op := prepare(e, b, n)
	srv := &side{name: "server", lat: make([]time.Duration, n), call: func(i int) error { return e.post(e.url, &op, i, op.want) }}
	inproc := &side{name: "inproc", call: op.inproc}
	bare := &side{name: "bare", call: func(i int) error { return e.post(e.bare, &op, i, nil) }}
	sides := []*side{srv, inproc, bare}
	// KEYWARD_BENCH_SIDE=server (inproc, bare) runs one side alone, for a
	// CPU profile of it; the figures that compare sides are then 0.
	switch os.Getenv("KEYWARD_BENCH_SIDE") {
	case "server":
		sides = []*side{srv}
	case "inproc":
		sides = []*side{inproc}
	case "bare":
		sides = []*side{bare}
	}
	e.served = e.served || slices.Contains(sides, srv)
	for _, s := range sides {
		if err := e.chunk(s, 0, warm); err != nil {
			b.Fatal(err)
		}
		s.elapsed, s.cpu = 0, 0
	}
	rounds := max(b.N/500, 1)
	runtime.GC()
	b.ResetTimer()
	for r := range rounds {
		from, to := warm+b.N*r/rounds, warm+b.N*(r+1)/rounds
		for k := range sides {
			if err := e.chunk(sides[(r+k)%len(sides)], from, to); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()

	rate := func(s *side) float64 { return float64(b.N) / s.elapsed.Seconds() }
	a, bb, got := rate(inproc), rate(bare), rate(srv)
	bound := 1 / (1/a + 1/bb)
	lat := srv.lat[warm:]
	slices.Sort(lat)
	us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(float64(srv.elapsed.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(got, "server_ops/s")
	b.ReportMetric(a, "inproc_ops/s")
	b.ReportMetric(bb, "bare_ops/s")
	b.ReportMetric(bound, "bound_ops/s")
	b.ReportMetric(100*got/bound, "share_%")
	b.ReportMetric(us(0.50), "p50_µs")
	b.ReportMetric(us(0.99), "p99_µs")
	cpu := func(s *side) float64 { return float64(s.cpu.Nanoseconds()) / 1e3 / float64(b.N) }
	b.ReportMetric(cpu(srv), "server_cpu_µs")
	b.ReportMetric(cpu(inproc), "inproc_cpu_µs")
	b.ReportMetric(cpu(bare), "bare_cpu_µs")
}
