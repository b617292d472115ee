package test

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/softhsm/softhsmtest"
)

// Faults a careless operator or a hostile client causes from outside the
// device: a flood of connections that would use up the process's
// descriptors (and with them the software token's files), and the token's
// directory gone for a few seconds. Each heals with no restart.

func TestConnectionFloodLeavesTheDeviceAlone(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	c.ok("key", "generate", "--role", "signing")
	c.run("record", nil, "store", "put", "x", "--from", "-")
	admin := c.adminToken()
	// The server's own descriptor limit is 512: the flood below is four
	// times that.
	c.wrap = []string{"prlimit", "--nofile=512:512"}
	s := c.serve(nil)
	host := strings.TrimPrefix(s.url, "http://")
	var flood []net.Conn
	defer func() {
		for _, conn := range flood {
			conn.Close()
		}
	}()
	for range 2048 {
		conn, err := net.DialTimeout("tcp", host, 2*time.Second)
		if err != nil {
			break // the backlog is full: enough
		}
		// Headers promising a body that never comes.
		conn.Write([]byte("POST /oauth2/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65536\r\n\r\n"))
		flood = append(flood, conn)
	}
	if len(flood) < 1024 {
		t.Fatalf("only %d flood connections", len(flood))
	}
	// Held past a reconciliation (every 5 s) and a few key transfer rounds
	// (every second), which use the device meanwhile.
	time.Sleep(7 * time.Second)
	if out, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.cmd.Process.Pid), "limits")); err == nil && !strings.Contains(string(out), "512") {
		t.Fatalf("the server's limit is not 512:\n%s", out)
	}
	for _, conn := range flood {
		conn.Close()
	}
	flood = nil
	took := within(t, 2*time.Second, "a request after the flood", func() bool {
		code, _ := s.call("GET", "/readyz", "", nil)
		return code == 200
	})
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/api/v1/store/x", ""},
		{"POST", "/access/api/v1/tokens", `{"subject":"es","alg":"ES256"}`},
		{"POST", "/api/v1/encrypt", `{"plaintext":"eA==","context":"c"}`},
	} {
		if code, b := s.call(r.method, r.path, admin, r.body); code != 200 {
			t.Fatalf("%s %s after the flood: %d %s", r.method, r.path, code, b)
		}
	}
	t.Logf("%d connections held against a 512-descriptor server; ready %v after they went", 2048, took.Round(time.Millisecond))
	// The connections never took the device's descriptors: it never
	// failed (without the cap SoftHSM2 lost its objects here, and keyward
	// had to initialize it again).
	if log := s.stderr.String(); strings.Contains(log, "too many open files") || strings.Contains(log, "device unavailable") {
		t.Fatalf("the flood reached the descriptor limit:\n%s", log)
	}
}

func TestTokenDirectoryAway(t *testing.T) {
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	c.run("record", nil, "store", "put", "x", "--from", "-")
	admin := c.adminToken()
	s := c.serve(nil, "--request-timeout", "2s")
	dir := tokenDir(t, c)
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	away := time.Now()
	codes := map[int]int{}
	for time.Since(away) < 4*time.Second {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/readyz", ""}, // looks the keys up in the device afresh
			{"GET", "/api/v1/store/x", ""},
			{"POST", "/api/v1/encrypt", `{"plaintext":"eA==","context":"c"}`},
		} {
			code, b := s.call(r.method, r.path, admin, r.body)
			codes[code]++
			if code != 200 && code != 503 {
				os.Rename(dir+".away", dir)
				t.Fatalf("%s %s with the token directory away: %d %s", r.method, r.path, code, b)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	took := within(t, 2*time.Second, "requests after the token directory came back", func() bool {
		c0, _ := s.call("GET", "/readyz", "", nil)
		c1, _ := s.call("GET", "/api/v1/store/x", admin, nil)
		c2, _ := s.call("POST", "/api/v1/encrypt", admin, `{"plaintext":"eA==","context":"c"}`)
		return c0 == 200 && c1 == 200 && c2 == 200
	})
	if strings.Contains(s.stderr.String(), "tampered") {
		t.Fatalf("a device fault was logged as tampering:\n%s", s.stderr)
	}
	t.Logf("token directory away 4 s: statuses %v; every request works %v after it came back", codes, took.Round(time.Millisecond))
}

// tokenDir is the directory of c's SoftHSM2 token.
func tokenDir(t *testing.T, c *cli) string {
	t.Helper()
	if c.tok.ConfPath == "" {
		t.Skipf("moves SoftHSM2's token directory away; %s points the tests at %s, an external module", softhsmtest.EnvTestModule, c.tok.Module)
	}
	f, err := os.Open(c.tok.ConfPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "directories.tokendir = "); ok {
			entries, err := os.ReadDir(v)
			if err != nil {
				t.Fatal(err)
			}
			// Tokens share the directory; each has its own, whose
			// token.object holds its label.
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(v, e.Name(), "token.object"))
				if err == nil && bytes.Contains(b, []byte(c.tok.Label)) {
					return filepath.Join(v, e.Name())
				}
			}
			t.Fatalf("no directory of token %q in %s", c.tok.Label, v)
		}
	}
	t.Fatal("no tokendir in " + c.tok.ConfPath)
	return ""
}
