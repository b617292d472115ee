package keystore_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// Store benchmarks, each on SQLite and PostgreSQL (the throwaway cluster
// runs with fsync off: compare the device share, not absolute database
// speed). The raw device rate to compare with is hsm's
// BenchmarkGCMPair1K/raw.

func benchBackends(b *testing.B, f func(b *testing.B, n *keystore.Vault)) {
	b.Helper()
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", dbtest.SQLite}, {"postgres", dbtest.Postgres}} {
		b.Run(be.name, func(b *testing.B) {
			n, _ := node(b, be.dsn(b))
			if _, err := n.Generate(b.Context(), keyring.Master, 256, hsm.PolicyLocal); err != nil {
				b.Fatal(err)
			}
			f(b, n)
		})
	}
}

func rate(b *testing.B, what string, count int, d time.Duration) {
	b.ReportMetric(float64(count)/d.Seconds(), what)
}

var value1K = make([]byte, 1024)

func BenchmarkStorePut1K(b *testing.B) {
	benchBackends(b, func(b *testing.B, n *keystore.Vault) {
		b.ResetTimer()
		for i := range b.N {
			if err := n.Put(b.Context(), "bench-"+strconv.Itoa(i), value1K); err != nil {
				b.Fatal(err)
			}
		}
		rate(b, "puts/s", b.N, b.Elapsed())
	})
}

func BenchmarkStoreGet1K(b *testing.B) {
	benchBackends(b, func(b *testing.B, n *keystore.Vault) {
		const records = 1000
		if err := keystore.SeedRecords(b.Context(), n, records, 1024); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := n.Get(b.Context(), fmt.Sprintf("seed-%06d", i%records)); err != nil {
				b.Fatal(err)
			}
		}
		rate(b, "gets/s", b.N, b.Elapsed())
	})
}

// BenchmarkRewrap rotates the master key and rewraps every record
// (KEYWARD_BENCH_RECORDS, default 100,000, of 1 KiB) per iteration; run it
// with -benchtime 1x. records/s is the figure.
func BenchmarkRewrap(b *testing.B) {
	records := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYWARD_BENCH_RECORDS")); err == nil && v > 0 {
		records = v
	}
	benchBackends(b, func(b *testing.B, n *keystore.Vault) {
		start := time.Now()
		if err := keystore.SeedRecords(b.Context(), n, records, 1024); err != nil {
			b.Fatal(err)
		}
		b.Logf("seeded %d records in %s", records, time.Since(start).Round(time.Millisecond))
		b.ResetTimer()
		var total time.Duration
		for range b.N {
			b.StopTimer()
			if _, err := n.Rotate(b.Context(), keyring.Master, 256, hsm.PolicyLocal); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			t0 := time.Now()
			done, err := n.Rewrap(b.Context(), benchBatch(), nil)
			total += time.Since(t0)
			if err != nil || done != records {
				b.Fatalf("rewrapped %d of %d: %v", done, records, err)
			}
		}
		rate(b, "records/s", records*b.N, total)
	})
}

// benchBatch is KEYWARD_BENCH_BATCH, default 1000 (the CLI's default).
func benchBatch() int {
	if v, err := strconv.Atoi(os.Getenv("KEYWARD_BENCH_BATCH")); err == nil && v > 0 {
		return v
	}
	return 1000
}
