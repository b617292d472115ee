package tokens_test

import (
	"testing"

	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// Compare with hsm's BenchmarkHMACSign/raw and BenchmarkHMACVerify/raw
// (the bare device rate): create should reach 50% of the raw sign rate,
// a first-time verify 90% of the raw verify rate, a cached verify 10×.

// benchService is a service with the default options (the test helper's
// reads the revocation log on every verify).
func benchService(b *testing.B) (*tokens.Service, *keystore.Node) {
	_, node, _ := service(b, dbtest.SQLite(b))
	s, err := tokens.New(bg, node, tokens.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return s, node
}

func BenchmarkTokenCreate(b *testing.B) {
	s, _ := benchService(b)
	req := tokens.Request{Subject: "svc", Scope: []string{"read", "write"}, Audience: []string{"artifactory@*"}}
	if _, err := s.Create(bg, req); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16) // a server issues for many clients at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Create(bg, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// issueMany makes n distinct tokens for the verify benchmarks.
func issueMany(b *testing.B, s *tokens.Service, n int) []string {
	out := make([]string, n)
	for i := range out {
		iss, err := s.Create(bg, tokens.Request{Subject: "svc", Scope: []string{"read"}, Audience: []string{"artifactory@*"}})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = iss.AccessToken
	}
	return out
}

func BenchmarkVerifyFirstTime(b *testing.B) {
	s, node := benchService(b)
	// A service without the verified cache: every verify checks the
	// signature in the device, as the first verify of a token does.
	v, err := tokens.New(bg, node, tokens.Options{CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	toks := issueMany(b, s, 2000)
	o := tokens.VerifyOptions{Audience: "artifactory@node-1"}
	v.Verify(bg, toks[0], o)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := v.Verify(bg, toks[i%len(toks)], o); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkVerifyCached(b *testing.B) {
	s, _ := benchService(b)
	toks := issueMany(b, s, 100)
	o := tokens.VerifyOptions{Audience: "artifactory@node-1"}
	for _, t := range toks {
		if _, err := s.Verify(bg, t, o); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Verify(bg, toks[i%len(toks)], o); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
