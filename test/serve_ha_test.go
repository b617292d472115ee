package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/keystore/dbtest"
)

// The HA tests run two real `keyward serve` processes, A and B, each with a
// SoftHSM2 token of its own holding the same imported master and join keys,
// on one PostgreSQL database, and talk to them over loopback only.

// haNodes is such a pair of servers.
type haNodes struct {
	ca, cb *cli
	a, b   *served
	admin  string // an admin token, good on both
}

// newHANodes loads the same random master and join keys into two fresh
// tokens against the database dsn and serves each.
func newHANodes(t *testing.T, dsn string) *haNodes {
	t.Helper()
	ca, cb := newCLI(t), newCLI(t)
	master, join := randomHex(32), randomHex(32)
	for _, c := range []*cli{ca, cb} {
		c.env = append(c.env, "KEYWARD_DB="+dsn)
		c.secret(master)
		c.secret(join)
	}
	for _, c := range []*cli{ca, cb} {
		for _, k := range []struct{ role, hex string }{{"master", master}, {"join", join}} {
			r := c.run(k.hex, nil, "key", "import", "--role", k.role, "--from", "-")
			if r.code != 0 || !strings.Contains(r.stdout, "keyward/"+k.role+"/v1") {
				t.Fatalf("import the %s key: %s", k.role, r)
			}
		}
	}
	h := &haNodes{ca: ca, cb: cb, admin: ca.adminToken()}
	h.a, h.b = ca.serve(nil), cb.serve(nil)
	return h
}

// haDo makes one request without failing the test (for goroutines, and
// for servers that may be gone). A body starting with "{" is JSON, any
// other a form.
func haDo(s *served, method, path, token, body string) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		ct := "application/x-www-form-urlencoded"
		if strings.HasPrefix(body, "{") {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

// haActive introspects token on s; anything but a 200 fails the test.
func haActive(t *testing.T, s *served, admin, token string) bool {
	t.Helper()
	code, b := s.call("POST", "/oauth2/introspect", admin, "token="+url.QueryEscape(token))
	if code != http.StatusOK {
		t.Fatalf("introspect on %s: status %d: %s", s.url, code, b)
	}
	var m struct {
		Active *bool `json:"active"`
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Active == nil {
		t.Fatalf("introspect on %s: no \"active\" in %q", s.url, b)
	}
	return *m.Active
}

// haCreate creates an access token on s.
func haCreate(t *testing.T, s *served, admin string, req map[string]any) issued {
	t.Helper()
	code, b := s.call("POST", "/access/api/v1/tokens", admin, req)
	var iss issued
	if code != http.StatusOK || json.Unmarshal(b, &iss) != nil || iss.AccessToken == "" || iss.TokenID == "" {
		t.Fatalf("create a token on %s: status %d: %s", s.url, code, b)
	}
	return iss
}

// haInactiveWithin polls s until token introspects inactive and fails the
// test unless that happens within d of since.
func haInactiveWithin(t *testing.T, s *served, admin, token string, since time.Time, d time.Duration, what string) time.Duration {
	t.Helper()
	for {
		active := haActive(t, s, admin, token)
		took := time.Since(since)
		if !active {
			if took > d {
				t.Fatalf("%s: inactive on %s only %v after, want within %v", what, s.url, took.Round(time.Millisecond), d)
			}
			return took
		}
		if took > d {
			t.Fatalf("%s: still active on %s %v after, want inactive within %v", what, s.url, took.Round(time.Millisecond), d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// haRace sends n copies of one request at once, alternating between the
// servers, and returns the statuses and bodies by request index.
func haRace(t *testing.T, servers []*served, n int, method, path, token, body string) ([]int, [][]byte) {
	t.Helper()
	codes, bodies, errs := make([]int, n), make([][]byte, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i], bodies[i], _, errs[i] = haDo(servers[i%len(servers)], method, path, token, body)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d to %s: %v", i, servers[i%len(servers)].url, err)
		}
	}
	return codes, bodies
}

// haAlive says the server process has not exited.
func haAlive(s *served) bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// TestServeHATokens: a token from either server is good on the other, a
// revocation on one reaches the other within a second, and refresh and
// pairing tokens are single-use across both servers.
func TestServeHATokens(t *testing.T) {
	h := newHANodes(t, dbtest.Postgres(t))
	a, b, admin := h.a, h.b, h.admin

	// 1. Created on A, active on B (and on A).
	tok := haCreate(t, a, admin, map[string]any{"subject": "ha-cross", "scope": "read"})
	for _, s := range []*served{b, a} {
		if !haActive(t, s, admin, tok.AccessToken) {
			t.Fatalf("a token created on A is not active on %s", s.url)
		}
	}

	// 2. Revoked on B: B at once, A within a second of the revoke's answer.
	if m := b.json(200, "DELETE", "/access/api/v1/tokens/"+tok.TokenID, admin, nil); m["revoked"] != true || m["token_id"] != tok.TokenID {
		t.Fatalf("revoke on B: %v", m)
	}
	revoked := time.Now()
	if haActive(t, b, admin, tok.AccessToken) {
		t.Fatal("B still reports active the token it has just revoked")
	}
	took := haInactiveWithin(t, a, admin, tok.AccessToken, revoked, time.Second, "token revoked on B")
	t.Logf("revocation on B seen by A after %v", took.Round(time.Millisecond))
	// A stops accepting it as a credential too, not only in introspection.
	if code, body := a.call("GET", "/access/api/v1/tokens/me", tok.AccessToken, nil); code != http.StatusUnauthorized {
		t.Fatalf("A accepts a token revoked on B: status %d: %s", code, body)
	}

	// 3. One refresh token, 20 concurrent refreshes over A and B: one wins.
	grant := haCreate(t, a, admin, map[string]any{"subject": "ha-refresh", "scope": "read write", "refreshable": true})
	if grant.RefreshToken == "" {
		t.Fatalf("no refresh token: %+v", grant)
	}
	codes, bodies := haRace(t, []*served{a, b}, 20, "POST", "/access/api/v1/tokens", "",
		"grant_type=refresh_token&refresh_token="+url.QueryEscape(grant.RefreshToken))
	var winner issued
	wins := 0
	for i, code := range codes {
		switch code {
		case http.StatusOK:
			wins++
			if err := json.Unmarshal(bodies[i], &winner); err != nil || winner.AccessToken == "" || winner.RefreshToken == "" {
				t.Fatalf("refresh %d answered 200 with %q", i, bodies[i])
			}
		case http.StatusBadRequest: // invalid_grant: used, or its grant revoked by a reuse
		default:
			t.Fatalf("refresh %d: status %d: %s", i, code, bodies[i])
		}
	}
	t.Logf("20 concurrent refreshes: statuses %v", codes)
	if wins != 1 {
		t.Fatalf("%d of 20 concurrent refreshes over two servers succeeded, want exactly 1 (statuses %v)", wins, codes)
	}
	// The others were reuses: the grant's whole family is revoked, the
	// winner's new tokens too, on both servers within a second.
	done := time.Now()
	for _, s := range []*served{a, b} {
		haInactiveWithin(t, s, admin, winner.AccessToken, done, time.Second, "refreshed token of a reused grant")
		if haActive(t, s, admin, grant.AccessToken) {
			t.Fatalf("the grant's first access token is still active on %s after its refresh", s.url)
		}
	}
	if code, body, _, err := haDo(b, "POST", "/access/api/v1/tokens", "", "grant_type=refresh_token&refresh_token="+url.QueryEscape(winner.RefreshToken)); err != nil ||
		code != http.StatusBadRequest || !strings.Contains(string(body), `"error":"invalid_grant"`) {
		t.Fatalf("the winner's refresh token of a revoked family: status %d, %v: %s", code, err, body)
	}

	// 4. One pairing token, 20 concurrent redemptions over both: one master token.
	p := a.json(200, "POST", "/access/api/v1/pairing", admin, map[string]any{})
	pt, _ := p["pairing_token"].(string)
	if pt == "" {
		t.Fatalf("pairing: %v", p)
	}
	codes, bodies = haRace(t, []*served{b, a}, 20, "POST", "/access/api/v1/pairing/redeem", "", "pairing_token="+url.QueryEscape(pt))
	var masters []string
	for i, code := range codes {
		switch code {
		case http.StatusOK:
			var m struct {
				MasterToken string `json:"master_token"`
			}
			if err := json.Unmarshal(bodies[i], &m); err != nil || m.MasterToken == "" {
				t.Fatalf("redemption %d answered 200 with %q", i, bodies[i])
			}
			masters = append(masters, m.MasterToken)
		case http.StatusUnauthorized, http.StatusConflict:
		default:
			t.Fatalf("redemption %d: status %d: %s", i, code, bodies[i])
		}
	}
	t.Logf("20 concurrent redemptions: statuses %v", codes)
	if len(masters) != 1 {
		t.Fatalf("%d of 20 concurrent redemptions over two servers gave a master token, want exactly 1 (statuses %v)", len(masters), codes)
	}
	for _, s := range []*served{a, b} {
		if !haActive(t, s, admin, masters[0]) {
			t.Fatalf("the master token is not active on %s", s.url)
		}
		if code, body, _, err := haDo(s, "POST", "/access/api/v1/pairing/redeem", "", "pairing_token="+url.QueryEscape(pt)); err != nil || (code != http.StatusConflict && code != http.StatusUnauthorized) {
			t.Fatalf("redeem a used pairing token on %s: status %d: %s (%v)", s.url, code, body, err)
		}
	}
}

// TestServeHAKillMidLoad: A is killed with SIGKILL while clients create
// tokens on it; every token A answered 200 for is on B, and B serves on.
func TestServeHAKillMidLoad(t *testing.T) {
	h := newHANodes(t, dbtest.Postgres(t))
	a, b, admin := h.a, h.b, h.admin
	const subject = "ha-load"

	load := startTokenLoad(a, admin, subject, 4)
	// Kill A in the middle of the load: once it has answered for some
	// tokens, and while clients keep asking.
	deadline := time.Now().Add(20 * time.Second)
	for load.count() < 50 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	a.signal(syscall.SIGKILL)
	killed := load.count()
	ids, fails := load.finish()
	if len(fails) > 0 {
		t.Fatalf("A refused %d creations under load before the kill, first: %s", len(fails), fails[0])
	}
	if killed < 50 {
		t.Fatalf("only %d tokens were created on A in 20 s", killed)
	}
	t.Logf("A killed after answering 200 for %d tokens (%d in all, with the answers read after the kill)", killed, len(ids))

	if !haAlive(b) {
		t.Fatalf("B exited when A was killed:\n%s", b.stderr)
	}
	var list []struct {
		ID      string  `json:"token_id"`
		Revoked *string `json:"revoked_at"`
	}
	// Every page, following next.
	for query := "?all=true&limit=1000&subject=" + subject; ; {
		var page struct {
			Tokens []struct {
				ID      string  `json:"token_id"`
				Revoked *string `json:"revoked_at"`
			} `json:"tokens"`
			Next string `json:"next"`
		}
		code, body := b.call("GET", "/access/api/v1/tokens"+query, admin, nil)
		if err := json.Unmarshal(body, &page); code != 200 || err != nil {
			t.Fatalf("list on B: %d %v: %s", code, err, body)
		}
		for _, r := range page.Tokens {
			list = append(list, struct {
				ID      string  `json:"token_id"`
				Revoked *string `json:"revoked_at"`
			}(r))
		}
		if page.Next == "" {
			break
		}
		query = "?all=true&limit=1000&subject=" + subject + "&cursor=" + url.QueryEscape(page.Next)
	}
	have := map[string]bool{}
	for _, r := range list {
		have[r.ID] = r.Revoked == nil
	}
	for _, iss := range ids {
		if active, ok := have[iss.TokenID]; !ok || !active {
			t.Fatalf("token %s was answered 200 by A but B does not list it as active after A's SIGKILL (listed %v; %d listed, %d answered)",
				iss.TokenID, ok, len(list), len(ids))
		}
	}
	// The last ones answered before the kill, verified by B in full.
	for _, iss := range ids[max(0, len(ids)-40):] {
		if !haActive(t, b, admin, iss.AccessToken) {
			t.Fatalf("token %s answered 200 by A is not active on B after A's SIGKILL", iss.TokenID)
		}
	}
	// B serves on.
	after := haCreate(t, b, admin, map[string]any{"subject": "after-kill"})
	if !haActive(t, b, admin, after.AccessToken) {
		t.Fatal("a token B created after A's kill is not active on B")
	}
	if r := b.json(200, "GET", "/readyz", "", nil); r["ready"] != true {
		t.Fatalf("B readyz after A's kill: %v", r)
	}
}

// TestServeHADatabaseOutage: with PostgreSQL stopped both servers answer
// 503 with Retry-After and stay up; started again, both recover without
// a restart.
func TestServeHADatabaseOutage(t *testing.T) {
	if os.Getenv(dbtest.EnvPGURL) != "" {
		t.Skipf("%s names an external PostgreSQL server; this test stops and starts PostgreSQL, so it runs only on a throwaway cluster of its own (unset %s to run it)",
			dbtest.EnvPGURL, dbtest.EnvPGURL)
	}
	pg := dbtest.NewCluster(t)
	h := newHANodes(t, pg.URL())
	servers := []*served{h.a, h.b}
	pids := []int{h.a.cmd.Process.Pid, h.b.cmd.Process.Pid}
	for _, s := range servers {
		haCreate(t, s, h.admin, map[string]any{"subject": "before-outage"})
		if r := s.json(200, "GET", "/readyz", "", nil); r["ready"] != true {
			t.Fatalf("readyz before the outage on %s: %v", s.url, r)
		}
	}

	pg.Stop(t)
	stopped := time.Now()
	// A readiness answer may be a second old.
	for _, s := range servers {
		within(t, 3*time.Second, "readyz unready on "+s.url, func() bool {
			code, _ := s.call("GET", "/readyz", "", nil)
			return code == http.StatusServiceUnavailable
		})
	}
	// Several rounds over a second or so: a crash or a hang shows up.
	for round := range 3 {
		for _, s := range servers {
			code, body, hdr := s.callH("GET", "/readyz", "", nil)
			var ready struct {
				Ready    *bool `json:"ready"`
				Database struct {
					OK    bool   `json:"ok"`
					Error string `json:"error"`
				} `json:"database"`
			}
			if err := json.Unmarshal(body, &ready); err != nil || code != http.StatusServiceUnavailable || ready.Ready == nil || *ready.Ready ||
				ready.Database.OK {
				t.Fatalf("readyz on %s with PostgreSQL stopped: status %d: %s", s.url, code, body)
			}
			haRetryAfter(t, s, "readyz", hdr)

			code, body, hdr = s.callH("POST", "/access/api/v1/tokens", h.admin, map[string]any{"subject": "during-outage"})
			if code != http.StatusServiceUnavailable || errorCode(body) != "DATABASE_UNAVAILABLE" {
				t.Fatalf("token create on %s with PostgreSQL stopped (round %d): status %d: %s", s.url, round, code, body)
			}
			haRetryAfter(t, s, "token create", hdr)

			code, body, hdr = s.callH("PUT", "/api/v1/store/outage", h.admin, []byte("value"))
			if code != http.StatusServiceUnavailable || errorCode(body) != "DATABASE_UNAVAILABLE" {
				t.Fatalf("store put on %s with PostgreSQL stopped (round %d): status %d: %s", s.url, round, code, body)
			}
			haRetryAfter(t, s, "store put", hdr)

			if m := s.json(200, "GET", "/healthz", "", nil); m["status"] != "ok" {
				t.Fatalf("healthz on %s with PostgreSQL stopped: %v", s.url, m)
			}
			if !haAlive(s) {
				t.Fatalf("%s exited with PostgreSQL stopped:\n%s", s.url, s.stderr)
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("503s checked for %v of outage", time.Since(stopped).Round(time.Millisecond))

	pg.Start(t)
	started := time.Now()
	const bound = 20 * time.Second
	var recovered []issued
	for i, s := range servers {
		for {
			code, body, _, err := haDo(s, "POST", "/access/api/v1/tokens", h.admin, `{"subject":"after-outage"}`)
			if err != nil {
				t.Fatalf("%s after PostgreSQL came back: %v\n%s", s.url, err, s.stderr)
			}
			rcode, rbody, _, _ := haDo(s, "GET", "/readyz", "", "")
			if code == http.StatusOK && rcode == http.StatusOK {
				var iss issued
				if err := json.Unmarshal(body, &iss); err != nil {
					t.Fatalf("token create on %s after PostgreSQL came back: %v: %s", s.url, err, body)
				}
				recovered = append(recovered, iss)
				break
			}
			if code != http.StatusOK && code != http.StatusServiceUnavailable {
				t.Fatalf("token create on %s after PostgreSQL came back: status %d: %s", s.url, code, body)
			}
			if time.Since(started) > bound {
				t.Fatalf("%s has not recovered %v after PostgreSQL came back: token create %d %s, readyz %d %s", s.url, bound, code, body, rcode, rbody)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !haAlive(s) || s.cmd.Process.Pid != pids[i] {
			t.Fatalf("%s was restarted or exited", s.url)
		}
	}
	t.Logf("both servers recovered %v after PostgreSQL started again", time.Since(started).Round(time.Millisecond))
	// And they are one cluster again: each one's new token is good on the other.
	if !haActive(t, h.b, h.admin, recovered[0].AccessToken) || !haActive(t, h.a, h.admin, recovered[1].AccessToken) {
		t.Fatal("a token created after the outage is not active on the other server")
	}
}

// haRetryAfter fails the test unless hdr has a Retry-After of a whole
// number of seconds, at least 1.
func haRetryAfter(t *testing.T, s *served, what string, hdr http.Header) {
	t.Helper()
	if n, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || n < 1 {
		t.Fatalf("%s on %s: 503 with Retry-After %q, want whole seconds", what, s.url, hdr.Get("Retry-After"))
	}
}
