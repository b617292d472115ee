package tokens_test

import (
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// seedRevocations writes n revocations of made-up tokens to the SQLite
// database at path, in one transaction: those with i%2 == 0 expired
// three days ago, the rest expire in an hour.
func seedRevocations(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := sql.Open("sqlite3", path+"?_busy_timeout=10000")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	st, err := tx.Prepare(`INSERT INTO revocations (token_id, expires_at, at) VALUES (?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	for i := range n {
		exp := now.Add(time.Hour)
		if i%2 == 0 {
			exp = now.Add(-72 * time.Hour)
		}
		if _, err := st.Exec(fmt.Sprintf("0190aaaa-bbbb-7ccc-8ddd-%012d", i), exp.UnixMilli(), now.UnixMilli()); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkVerifyWithRevocations: N revocations in the log
// (KEYWARD_BENCH_REVOCATIONS, default 100,000), half of tokens that
// expired three days ago. It reports the first verification after
// start (first-ms, which reads the log), the heap the revocation set
// took (set-MB), and, per verification of a cached token over the
// run's seconds (the log read again every 250 ms), the average (ns/op)
// and the slowest (max-ms).
func BenchmarkVerifyWithRevocations(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYWARD_BENCH_REVOCATIONS")); err == nil && v > 0 {
		n = v
	}
	path := dbtest.SQLite(b)
	s0, node, _ := service(b, path)
	iss := issue(b, s0, tokens.Request{Subject: "bench"})
	seedRevocations(b, path, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := tokens.New(b.Context(), node, tokens.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Verify(b.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	var slow []time.Duration
	b.ResetTimer()
	for range b.N {
		t := time.Now()
		if _, err := s.Verify(b.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
		if d := time.Since(t); d > 100*time.Microsecond {
			slow = append(slow, d)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "set-MB")
	b.ReportMetric(float64(slices.Max(append(slow, 0)).Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(slow)), "over-100µs")
}
