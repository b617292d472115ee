package tokens_test

import (
	"crypto"
	"encoding/base64"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/tokens"
)

// Each benchmark is a pair, run in the same process one after the other:
// "keyward", the token operation, and "device", the bare device HMAC it
// rests on (sign or C_Verify of a token's signing input with a key
// derived from the same join key, through hsm — which hsm's own benchmarks
// show at the raw miekg/pkcs11 rate). scripts/benchratio.awk prints the
// share. Goals (issue 5): create ≥ 50% of the device sign rate on SQLite,
// a first-time verify ≥ 90% of the device verify rate, a cached verify
// ≥ 10× it.

// benchService is a service with the default options (the test helper's
// reads the revocation log on every verify).
func benchService(b *testing.B) (*tokens.Service, *keystore.Vault) {
	b.Helper()
	_, node, _ := service(b, dbtest.SQLite(b))
	s, err := tokens.New(b.Context(), node, tokens.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return s, node
}

// deviceKey derives, from join v1, the HMAC key HS256 tokens are signed
// with (docs/FORMAT.md), as a key of its own.
func deviceKey(b *testing.B, node *keystore.Vault) *hsm.Key {
	b.Helper()
	base, _, err := node.Ring().Get(b.Context(), keyring.Join, 1)
	if err != nil {
		b.Fatal(err)
	}
	var data []byte
	for i := byte(1); i <= 4; i++ {
		data = append(data, "kw-jwt-HS256"...)
		data = append(data, 0, 0, 0, i)
	}
	k, err := node.Ring().Token().DeriveHMACKey(b.Context(), base, data, "bench")
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func signingInput(token string) []byte {
	return []byte(token[:strings.LastIndexByte(token, '.')])
}

func opsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// parallel runs op under RunParallel and reports ops/s.
func parallel(b *testing.B, op func(i int) error) {
	b.Helper()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := op(i); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	opsPerSecond(b)
}

func BenchmarkTokenCreate(b *testing.B) {
	s, node := benchService(b)
	req := tokens.Request{Subject: "svc", Scope: []string{"read", "write"}, Audience: []string{"artifactory@*"}}
	first, err := s.Create(b.Context(), req)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("keyward", func(b *testing.B) {
		b.SetParallelism(16) // a server issues for many clients at once
		parallel(b, func(int) error { _, err := s.Create(b.Context(), req); return err })
	})
	key, msg := deviceKey(b, node), signingInput(first.AccessToken)
	b.Run("device", func(b *testing.B) {
		parallel(b, func(int) error { _, err := key.HMAC(b.Context(), crypto.SHA256, msg); return err })
	})
}

// issueMany makes n distinct tokens for the verify benchmarks.
func issueMany(b *testing.B, s *tokens.Service, n int) []string {
	b.Helper()
	out := make([]string, n)
	for i := range out {
		iss, err := s.Create(b.Context(), tokens.Request{Subject: "svc", Scope: []string{"read"}, Audience: []string{"artifactory@*"}})
		if err != nil {
			b.Fatal(err)
		}
		out[i] = iss.AccessToken
	}
	return out
}

// benchDeviceVerify is the raw device verification of the same tokens:
// their signing inputs and MACs split out beforehand, and C_Verify of each
// in turn, as the keyward side takes them.
func benchDeviceVerify(b *testing.B, node *keystore.Vault, toks []string) {
	b.Helper()
	key := deviceKey(b, node)
	type input struct{ msg, mac []byte }
	in := make([]input, len(toks))
	for i, t := range toks {
		cut := strings.LastIndexByte(t, '.')
		mac, err := base64.RawURLEncoding.DecodeString(t[cut+1:])
		if err != nil {
			b.Fatal(err)
		}
		in[i] = input{[]byte(t[:cut]), mac}
	}
	var next atomic.Int64
	b.Run("device", func(b *testing.B) {
		parallel(b, func(int) error {
			x := in[int(next.Add(1)-1)%len(in)]
			return key.VerifyHMAC(b.Context(), crypto.SHA256, x.msg, x.mac)
		})
	})
}

// BenchmarkVerifyFirstTime verifies tokens the service has not verified
// before, with the default options: the verified cache on, every token
// stored in it. 20,000 tokens go round a cache of 10,000 (which drops the
// oldest first), so none is found there.
func BenchmarkVerifyFirstTime(b *testing.B) {
	s, node := benchService(b)
	v, err := tokens.New(b.Context(), node, tokens.Options{CacheSize: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	toks := issueMany(b, s, 20_000)
	o := tokens.VerifyOptions{Audience: "artifactory@node-1"}
	var next atomic.Int64
	b.Run("keyward", func(b *testing.B) {
		parallel(b, func(int) error {
			_, err := v.Verify(b.Context(), toks[int(next.Add(1)-1)%len(toks)], o)
			return err
		})
	})
	if n := v.CacheLen(); n != 10_000 {
		b.Fatalf("cache holds %d", n)
	}
	benchDeviceVerify(b, node, toks)
}

func BenchmarkVerifyCached(b *testing.B) {
	s, node := benchService(b)
	toks := issueMany(b, s, 100)
	o := tokens.VerifyOptions{Audience: "artifactory@node-1"}
	for _, t := range toks {
		if _, err := s.Verify(b.Context(), t, o); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("keyward", func(b *testing.B) {
		parallel(b, func(i int) error { _, err := s.Verify(b.Context(), toks[i%len(toks)], o); return err })
	})
	benchDeviceVerify(b, node, toks)
}

// BenchmarkVerifyParsers weighs the direct parser against golang-jwt's
// path on first-time verifications (the cache off, so every Verify parses
// and asks the device): two services on one device, one forced onto the
// stock path, take tokens in turn, so a drift in machine speed weighs on
// both alike. It reports each one's mean time per verification and
// stock/direct, the share the direct parser saves.
func BenchmarkVerifyParsers(b *testing.B) {
	s, node := benchService(b)
	toks := issueMany(b, s, 1000)
	o := tokens.VerifyOptions{Audience: "artifactory@node-1"}
	var paths [2]*tokens.Paths
	var vs [2]*tokens.Service
	for i := range vs {
		v, err := tokens.New(b.Context(), node, tokens.Options{CacheSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			v.ForceStockPath()
		}
		// The first token teaches the direct parser keyward's header.
		if _, err := v.Verify(b.Context(), toks[0], o); err != nil {
			b.Fatal(err)
		}
		vs[i], paths[i] = v, v.CountPaths()
	}
	var spent, done [2]atomic.Int64
	var next atomic.Int64
	parallel(b, func(int) error {
		n := next.Add(1) - 1
		i := n % 2
		start := time.Now()
		_, err := vs[i].Verify(b.Context(), toks[n/2%int64(len(toks))], o)
		spent[i].Add(int64(time.Since(start)))
		done[i].Add(1)
		return err
	})
	if paths[0].Stock.Load() != 0 || paths[1].Direct.Load() != 0 {
		b.Fatalf("paths crossed: direct service %d/%d, stock service %d/%d (direct/stock)",
			paths[0].Direct.Load(), paths[0].Stock.Load(), paths[1].Direct.Load(), paths[1].Stock.Load())
	}
	var mean [2]float64
	for i := range mean {
		mean[i] = float64(spent[i].Load()) / float64(max(done[i].Load(), 1))
	}
	b.ReportMetric(mean[0], "direct-ns/verify")
	b.ReportMetric(mean[1], "stock-ns/verify")
	b.ReportMetric(mean[1]/mean[0], "stock/direct")
}
