package keystore_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

// BenchmarkTokenListPage reads one page of 100 token records out of
// KEYWARD_BENCH_TOKENS (default 100,000): the newest live tokens, one
// subject's (of 1,000), a page from the middle of the listing, and a
// description prefix that one token in ten has (no index: a scan until
// the page is full), and expiry order (no index: every live token sorted
// for each page). The oldest quarter of the tokens has expired.
func BenchmarkTokenListPage(b *testing.B) {
	count := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYWARD_BENCH_TOKENS")); err == nil && v > 0 {
		count = v
	}
	now := time.Now()
	start := now.Add(-time.Duration(count) * time.Millisecond)
	record := func(i int) keystore.TokenRecord {
		at := start.Add(time.Duration(i) * time.Millisecond)
		exp := now.Add(time.Hour)
		if i < count/4 {
			exp = now.Add(-time.Minute)
		}
		id := fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", at.UnixMilli()>>16, at.UnixMilli()&0xffff, i%4096, i%4096, i*2654435761%(1<<48))
		return keystore.TokenRecord{ID: id, Kind: "access", Subject: fmt.Sprintf("svc-%02d", i%100), Scope: "store:read",
			Audience: "keyward@bench", Issued: at, Expires: exp, Family: id, Description: fmt.Sprintf("job %d", i%10)}
	}
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", dbtest.SQLite}, {"postgres", dbtest.Postgres}} {
		b.Run(be.name, func(b *testing.B) {
			s, err := keystore.Open(b.Context(), be.dsn(b))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			t0 := time.Now()
			if err := s.SeedTokens(b.Context(), count, record); err != nil {
				b.Fatal(err)
			}
			b.Logf("seeded %d tokens in %s", count, time.Since(t0).Round(time.Millisecond))
			middle := keystore.TokenFilter{Descending: true, Limit: keystore.MaxTokenPage}
			for range count * 3 / 8 / keystore.MaxTokenPage {
				p, err := s.Tokens(b.Context(), middle, now)
				if err != nil || p.Next == "" {
					b.Fatalf("paging to the middle: %v", err)
				}
				middle.Cursor = p.Next
			}
			middle.Limit = 0
			for _, c := range []struct {
				name string
				f    keystore.TokenFilter
			}{
				{"newest", keystore.TokenFilter{Descending: true}},
				{"username", keystore.TokenFilter{Subject: "svc-42", Descending: true}},
				{"middle", middle},
				{"description", keystore.TokenFilter{Description: "job 7*", Descending: true}},
				{"expiry", keystore.TokenFilter{OrderBy: "expiry"}},
			} {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						p, err := s.Tokens(b.Context(), c.f, now)
						if err != nil || len(p.Tokens) != keystore.DefaultTokenPage {
							b.Fatalf("%d records: %v", len(p.Tokens), err)
						}
					}
				})
			}
		})
	}
}
