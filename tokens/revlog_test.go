package tokens_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

// Expired ids drop out bucket by bucket: dropping looks only at what
// expires, and an id revoked again with a later expiry stays.
func TestRevSetDropsExpiredWithoutWalkingTheSet(t *testing.T) {
	var s tokens.RevSet
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		s.Add(fmt.Sprintf("live-%d", i), now.Add(time.Hour))
	}
	s.Add("soon", now.Add(30*time.Second))
	s.Add("later", now.Add(90*time.Second))
	s.Add("refiled", now.Add(30*time.Second))
	s.Add("refiled", now.Add(time.Hour))
	s.Add("refiled", now.Add(10*time.Second)) // never shortened
	if d, v := s.Expire(now.Add(30 * time.Second)); d != 0 || v != 0 || !s.Has("soon") {
		t.Fatalf("expire before any drop time: dropped %d, looked at %d", d, v)
	}
	d, v := s.Expire(now.Add(2 * time.Minute))
	if d != 2 || v != 3 {
		t.Fatalf("expire at +2m: dropped %d, looked at %d; want 2 and 3 (not the 10,000 live ids)", d, v)
	}
	if s.Has("soon") || s.Has("later") || !s.Has("refiled") || !s.Has("live-9999") || s.Len() != 10_001 {
		t.Fatalf("after expire: soon %v later %v refiled %v, %d held", s.Has("soon"), s.Has("later"), s.Has("refiled"), s.Len())
	}
	if d, _ := s.Expire(now.Add(2 * time.Hour)); d != 10_001 || s.Len() != 0 {
		t.Fatalf("expire at +2h: dropped %d, %d held", d, s.Len())
	}
}

// The memory the set holds follows the revocations live now, not the
// most ever held: a burst that has expired gives its memory back.
func TestRevSetMemoryFollowsLiveRevocations(t *testing.T) {
	heapBytes := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	var s tokens.RevSet
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	base := heapBytes()
	for i := range 200_000 {
		s.Add(fmt.Sprintf("burst-%d", i), now.Add(time.Minute))
	}
	burst := heapBytes() - base
	for i := range 100 {
		s.Add(fmt.Sprintf("live-%d", i), now.Add(time.Hour))
	}
	if d, _ := s.Expire(now.Add(10 * time.Minute)); d != 200_000 || s.Len() != 100 || !s.Has("live-99") || s.Has("burst-0") {
		t.Fatalf("expire: dropped %d, %d held", d, s.Len())
	}
	left := heapBytes() - base
	runtime.KeepAlive(&s)
	t.Logf("200,000 revocations: %.1f MiB (%d bytes each); 100 left after the burst expired: %d KiB", float64(burst)/(1<<20), burst/200_000, left/1024)
	if left > burst/50 {
		t.Fatalf("after the burst expired the set still holds %d KiB of the %d KiB it took (100 live ids)", left/1024, burst/1024)
	}
}

// The first verification after start reads only the revocations of
// tokens that may still verify.
func TestFirstLoadReadsOnlyLiveRevocations(t *testing.T) {
	path := dbtest.SQLite(t)
	s0, node, _ := service(t, path)
	iss := issue(t, s0, tokens.Request{Subject: "svc"})
	seedRevocations(t, path, 1000) // 500 expired three days ago
	s, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, held := s.RevocationRowsRead(), s.RevocationsHeld(); n != 500 || held != 500 {
		t.Fatalf("first load read %d log entries and holds %d ids, want 500 and 500 (the live ones)", n, held)
	}
}

// After the first load a verification answers from memory while the
// background reader is late by less than two intervals, whatever the
// database does; after that it fails as an outage, never passes.
func TestVerifyDoesNotWaitOnTheDatabase(t *testing.T) {
	const interval = 300 * time.Millisecond
	s0, node, _ := service(t, dbtest.SQLite(t))
	iss := issue(t, s0, tokens.Request{Subject: "svc"})
	s, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: interval})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	loaded := time.Now()
	node.Store().Close()
	for time.Since(loaded) < interval*3/2 {
		start := time.Now()
		if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err != nil {
			t.Fatalf("%s after the last read, with the database closed: %v", time.Since(loaded).Round(time.Millisecond), err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Fatalf("a verification took %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(interval)
	if _, err := s.Verify(t.Context(), iss.AccessToken, tokens.VerifyOptions{}); err == nil || errors.Is(err, tokens.ErrInvalid) {
		t.Fatalf("verify two intervals after the database closed: %v, want an outage", err)
	}
}

// Warm loads the live revocations before a server serves: its first
// request reads nothing of the log.
func TestWarmLoadsRevocations(t *testing.T) {
	s0, node, _ := service(t, dbtest.SQLite(t))
	revoked := issue(t, s0, tokens.Request{Subject: "svc"})
	if err := s0.RevokeToken(t.Context(), revoked.AccessToken); err != nil {
		t.Fatal(err)
	}
	live := issue(t, s0, tokens.Request{Subject: "svc"})
	s, err := tokens.New(t.Context(), node, tokens.Options{RevocationRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	read := s.RevocationRowsRead()
	if read != 1 || s.RevocationsHeld() != 1 {
		t.Fatalf("Warm read %d revocation rows and holds %d, want the one", read, s.RevocationsHeld())
	}
	if _, err := s.Verify(t.Context(), live.AccessToken, tokens.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), revoked.AccessToken, tokens.VerifyOptions{}); !errors.Is(err, tokens.ErrRevoked) {
		t.Fatalf("the revoked token after Warm: %v", err)
	}
	if got := s.RevocationRowsRead(); got != read {
		t.Fatalf("the first verifications after Warm read %d more revocation rows", got-read)
	}
}

// A join key imported a moment ago signs the next token, even when the
// service read the registry without it just before (a server's
// bootstrap imports it right after start).
func TestJoinKeyImportedSignsAtOnce(t *testing.T) {
	_, tok := softhsmtest.OpenTestToken(t)
	store, err := keystore.Open(t.Context(), dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	vault, err := keystore.NewVault(t.Context(), store, keyring.New(tok), keystore.VaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := tokens.New(t.Context(), vault, tokens.Options{RevocationRefresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Create(t.Context(), tokens.Request{Subject: "svc"}); !errors.Is(err, keystore.ErrNoActiveKey) {
		t.Fatalf("create without a join key: %v", err)
	}
	key, _ := hex.DecodeString(joinHex)
	if _, err := vault.Import(t.Context(), keyring.Join, key, hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(t.Context(), tokens.Request{Subject: "svc"}); err != nil {
		t.Fatalf("create right after the join key's import: %v", err)
	}
}
