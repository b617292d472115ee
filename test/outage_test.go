package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/softhsm/faultshim"
)

// keyward serve on a token behind the fault shim (softhsm/faultshim): the
// device goes away, hangs, or loses its library's state, and comes back,
// while a steady load of token creation, introspection, records and
// transit encryption runs against the server.

const outageTimeout = 2 * time.Second // the server's --request-timeout here

// shimmed is a CLI whose keyward processes load the fault shim in front
// of its SoftHSM2 token.
func shimmed(t *testing.T) (*cli, *faultshim.Shim) {
	t.Helper()
	c := newCLI(t)
	shim := faultshim.New(t, c.tok.Module)
	c.env = append(append(c.env, shim.Env()...), "KEYWARD_PKCS11_MODULE="+shim.Module)
	return c, shim
}

// outageLoad is a bounded load on a server: each worker makes one request
// after another, of each kind in turn.
type outageLoad struct {
	s      *served
	admin  string
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts map[int]int   // by status
	slow   []string      // requests that took longer than the timeout allows
	issued []issued      // tokens answered 200
	other  []string      // answers that are neither a success nor a 503
	worst  time.Duration // the longest request
}

func startOutageLoad(t *testing.T, s *served, admin string, workers int) *outageLoad {
	t.Helper()
	l := &outageLoad{s: s, admin: admin, stop: make(chan struct{}), counts: map[int]int{}}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				l.one(w, i)
			}
		})
	}
	return l
}

// one makes request i of worker w.
func (l *outageLoad) one(w, i int) {
	var method, path, body string
	switch i % 5 {
	case 0:
		method, path, body = "POST", "/access/api/v1/tokens", `{"subject":"load"}`
	case 1:
		method, path, body = "POST", "/oauth2/introspect", "token="+url.QueryEscape(l.admin)
	case 2:
		method, path, body = "PUT", fmt.Sprintf("/api/v1/store/load/%d", w), "{value "+strconv.Itoa(i)+"}"
	case 3:
		method, path = "GET", fmt.Sprintf("/api/v1/store/load/%d", w)
	case 4:
		method, path, body = "POST", "/api/v1/encrypt", `{"plaintext":"`+base64.StdEncoding.EncodeToString([]byte("transit"))+`","context":"load"}`
	}
	start := time.Now()
	code, b, _, err := haDo(l.s, method, path, l.admin, body)
	took := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.worst = max(l.worst, took)
	if took > outageTimeout+time.Second {
		l.slow = append(l.slow, fmt.Sprintf("%s %s took %v (status %d)", method, path, took, code))
	}
	switch {
	case err != nil:
		l.other = append(l.other, fmt.Sprintf("%s %s: %v", method, path, err))
	case code == http.StatusOK:
		if i%5 == 0 {
			var iss issued
			if json.Unmarshal(b, &iss) == nil {
				l.issued = append(l.issued, iss)
			}
		}
	case code == http.StatusServiceUnavailable:
	case method == "GET" && code == http.StatusNotFound: // not stored yet: its PUT failed
	default:
		l.other = append(l.other, fmt.Sprintf("%s %s: %d %s", method, path, code, b))
	}
	l.counts[code]++
}

func (l *outageLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// goroutines reads go_goroutines from the server's metrics.
func goroutines(t *testing.T, s *served) int {
	t.Helper()
	code, b := s.call("GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in the metrics")
	return 0
}

// allWork makes one request of each kind and says whether all succeeded.
func allWork(s *served, admin string) bool {
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/access/api/v1/tokens", `{"subject":"probe"}`},
		{"PUT", "/api/v1/store/probe", "probe"},
		{"GET", "/api/v1/store/probe", ""},
		{"POST", "/api/v1/encrypt", `{"plaintext":"cHJvYmU=","context":"p"}`},
		{"GET", "/readyz", ""},
	} {
		if code, _, _, err := haDo(s, r.method, r.path, admin, r.body); err != nil || code != 200 {
			return false
		}
	}
	return true
}

func TestServeRidesThroughDeviceOutages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults []string
	}{
		{"removed", []string{faultshim.Removed}},
		{"hung", []string{faultshim.Hang}},
		{"library lost its state", []string{faultshim.Reinit}},
		{"three in a row", []string{faultshim.Removed, faultshim.Absent, faultshim.Error}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, shim := shimmed(t)
			c.ok("key", "generate", "--role", "master")
			c.ok("key", "generate", "--role", "join")
			c.ok("key", "generate", "--role", "signing")
			admin := c.adminToken()
			s := c.serve(nil, "--request-timeout", outageTimeout.String())
			if !allWork(s, admin) {
				t.Fatal("the server does not work before the outage")
			}
			s.client.Transport.(*http.Transport).CloseIdleConnections()
			time.Sleep(200 * time.Millisecond)
			before := goroutines(t, s)
			load := startOutageLoad(t, s, admin, 6)
			time.Sleep(500 * time.Millisecond)
			for _, fault := range tc.faults {
				shim.Set(t, fault)
				time.Sleep(5 * time.Second)
				// Things that need no device keep answering meanwhile.
				if fault != faultshim.Hang {
					for _, p := range []string{"/healthz", "/.well-known/jwks.json", "/metrics"} {
						if code, b := s.call("GET", p, "", nil); code != 200 {
							t.Fatalf("%s during the outage: %d %s", p, code, b)
						}
					}
					if r := s.json(503, "GET", "/readyz", admin, nil); !strings.Contains(fmt.Sprint(r["device"]), c.tok.Label) {
						t.Fatalf("readyz during the outage does not name the device: %v", r)
					}
				}
				shim.Set(t, faultshim.Healthy)
				healed := time.Now()
				took := within(t, 2*time.Second, "every request works after "+fault, func() bool { return allWork(s, admin) })
				t.Logf("%s: every kind of request works %v after the device came back", fault, took.Round(time.Millisecond))
				if time.Since(healed) > 2*time.Second {
					t.Fatalf("recovery after %s took %v", fault, time.Since(healed))
				}
				time.Sleep(500 * time.Millisecond)
			}
			load.finish()
			load.mu.Lock()
			defer load.mu.Unlock()
			t.Logf("load: statuses %v, %d tokens issued, slowest request %v", load.counts, len(load.issued), load.worst.Round(time.Millisecond))
			if len(load.slow) > 0 || len(load.other) > 0 {
				t.Fatalf("during the outages: %d slow requests %v; %d answers neither success nor 503: %v", len(load.slow), load.slow, len(load.other), load.other)
			}
			if load.counts[503] == 0 || load.counts[200] == 0 {
				t.Fatalf("the load saw no outage or no success: %v", load.counts)
			}
			if !allWork(s, admin) {
				t.Fatal("the server does not work after the outages")
			}
			// Every token answered 200 is recorded and verifies.
			recorded := map[string]bool{}
			var list []struct {
				ID string `json:"token_id"`
			}
			if err := json.Unmarshal([]byte(c.ok("--json", "token", "list", "--all")), &list); err != nil {
				t.Fatal(err)
			}
			for _, r := range list {
				recorded[r.ID] = true
			}
			for _, iss := range load.issued {
				if !recorded[iss.TokenID] {
					t.Fatalf("token %s was answered 200 but is not recorded", iss.TokenID)
				}
				if !haActive(t, s, admin, iss.AccessToken) {
					t.Fatalf("token %s was answered 200 but does not verify", iss.TokenID)
				}
			}
			// No goroutine or session stays behind (the load's keep-alive
			// connections closed, as before it started).
			s.client.Transport.(*http.Transport).CloseIdleConnections()
			within(t, 5*time.Second, "the goroutines back to their level", func() bool {
				n := goroutines(t, s)
				s.client.Transport.(*http.Transport).CloseIdleConnections()
				return n <= before+2
			})
			if log := s.stderr.String(); strings.Count(log, "device unavailable") != len(tc.faults) && tc.faults[0] != faultshim.Hang {
				t.Fatalf("want one outage line per outage, the log says:\n%s", log)
			}
			_, metrics := s.call("GET", "/metrics", "", nil)
			if tc.faults[0] == faultshim.Reinit && !strings.Contains(string(metrics), "keyward_device_reconnects_total 1") {
				t.Fatalf("the module was not initialized again:\n%s", metrics)
			}
			if tc.faults[0] != faultshim.Hang && !strings.Contains(string(metrics), fmt.Sprintf("keyward_device_outages_total %d", len(tc.faults))) {
				t.Fatal("the outages are not counted in the metrics")
			}
		})
	}
}

// The CLI against a device that is gone or hangs: a plain message and exit
// 1, within its timeout.
func TestCLIDeviceAway(t *testing.T) {
	c, shim := shimmed(t)
	c.ok("key", "generate", "--role", "join")
	shim.Set(t, faultshim.Removed)
	start := time.Now()
	r := c.run("", nil, "key", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "CKR_DEVICE_REMOVED") || !strings.Contains(r.stderr, "the device cannot be used now") || time.Since(start) > 10*time.Second {
		t.Fatalf("key list with the device removed: %s (%v)", r, time.Since(start))
	}
	shim.Set(t, faultshim.Hang)
	start = time.Now()
	r = c.run("", nil, "--timeout", "2s", "key", "list")
	took := time.Since(start)
	shim.Set(t, faultshim.Healthy)
	if r.code != 1 || !strings.Contains(r.stderr, "does not answer") || took > 2*time.Second+10*time.Second {
		t.Fatalf("key list with the device hung: %s (%v)", r, took)
	}
	t.Logf("CLI: removed device fails at once; hung device ends after %v with --timeout 2s", took.Round(time.Millisecond))
}
