package test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// served is a `keyward serve` process started by a test.
type served struct {
	t      *testing.T
	c      *cli
	cmd    *exec.Cmd
	url    string
	stderr *lockedBuffer
	exited chan struct{}
	code   int
	client *http.Client
}

// lockedBuffer is a bytes.Buffer that the process's stderr copier and
// the test read at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve starts keyward serve with c's environment plus extraEnv, on a free
// loopback port unless args say --listen, and waits for its ready line.
// The process is killed when the test ends; its standard error must never
// hold a PIN or a registered secret.
func (c *cli) serve(extraEnv []string, args ...string) *served {
	c.t.Helper()
	s, line := c.startServe(extraEnv, args...)
	if !strings.HasPrefix(line, "keyward: serving on ") {
		c.t.Fatalf("keyward serve did not start: %q\nstderr:\n%s", line, s.stderr)
	}
	s.url = strings.TrimPrefix(line, "keyward: serving on ")
	return s
}

// startServe starts keyward serve and returns the first line it printed
// that is not a warning or a JSON log line (the ready line, or the error it
// stopped with).
func (c *cli) startServe(extraEnv []string, args ...string) (*served, string) {
	c.t.Helper()
	hasListen := false
	for _, a := range args {
		hasListen = hasListen || strings.HasPrefix(a, "--listen")
	}
	full := []string{"serve"}
	if !hasListen {
		full = append(full, "--listen", "127.0.0.1:0")
	}
	full = append(full, args...)
	argv := append(append(append([]string(nil), c.wrap...), binary), full...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string(nil), c.env...), extraEnv...)
	cmd.Dir = c.dir
	pr, pw := io.Pipe()
	s := &served{t: c.t, c: c, cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{}),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: &tls.Config{}}}}
	cmd.Stderr = io.MultiWriter(s.stderr, pw)
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		cmd.Wait()
		s.code = cmd.ProcessState.ExitCode()
		pw.Close()
		close(s.exited)
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			l := sc.Text()
			if !sent && !strings.HasPrefix(l, "keyward: warning:") && !strings.HasPrefix(l, "{") {
				lines <- l
				sent = true
			}
		}
		if !sent {
			lines <- ""
		}
		io.Copy(io.Discard, pr)
	}()
	c.t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		c.printed("keyward serve", s.stderr.String())
	})
	select {
	case l := <-lines:
		return s, l
	case <-time.After(60 * time.Second):
		c.t.Fatalf("keyward serve printed nothing in 60 s; stderr:\n%s", s.stderr)
	}
	return s, ""
}

// call makes a request: body is nil, a string (sent as a form when it has
// no leading "{", else as JSON), []byte (raw) or any other value (JSON).
// It returns the status and the body.
func (s *served) call(method, path, token string, body any) (int, []byte) {
	s.t.Helper()
	code, b, _ := s.callH(method, path, token, body)
	return code, b
}

func (s *served) callH(method, path, token string, body any) (int, []byte, http.Header) {
	s.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/x-www-form-urlencoded"
		if strings.HasPrefix(b, "{") {
			ct = "application/json"
		}
	case []byte:
		rd, ct = bytes.NewReader(b), "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v\nserver stderr:\n%s", method, path, err, s.stderr)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the answer: %v\nserver stderr:\n%s", method, path, err, s.stderr)
	}
	return resp.StatusCode, out, resp.Header
}

// json calls and decodes the JSON answer, failing unless the status is want.
func (s *served) json(want int, method, path, token string, body any) map[string]any {
	s.t.Helper()
	code, b := s.call(method, path, token, body)
	if code != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatalf("%s %s: not JSON: %q", method, path, b)
	}
	return m
}

// signal sends sig and waits (up to 30 s) for the process to exit; it
// returns the exit code.
func (s *served) signal(sig syscall.Signal) int {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
		return s.code
	case <-time.After(30 * time.Second):
		s.t.Fatalf("keyward serve did not exit 30 s after %v; stderr:\n%s", sig, s.stderr)
	}
	return -1
}

// adminToken issues an admin access token through the CLI.
func (c *cli) adminToken(args ...string) string {
	c.t.Helper()
	return c.createToken(append([]string{"--subject", "admin", "--scope", "admin"}, args...)...).AccessToken
}

// errorCode is the first error code of an API error body.
func errorCode(b []byte) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	json.Unmarshal(b, &e)
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// tokenLoad creates tokens on a server from several goroutines until it
// is finished or the server goes away, keeping what was answered 200 and
// what was answered otherwise.
type tokenLoad struct {
	mu       sync.Mutex
	issued   []issued
	failures []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startTokenLoad(s *served, admin, subject string, workers int) *tokenLoad {
	l := &tokenLoad{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, _, err := haDo(s, "POST", "/access/api/v1/tokens", admin, `{"subject":"`+subject+`"}`)
				if err != nil {
					return // the server is gone
				}
				var iss issued
				l.mu.Lock()
				if code == http.StatusOK && json.Unmarshal(body, &iss) == nil && iss.TokenID != "" {
					l.issued = append(l.issued, iss)
				} else {
					l.failures = append(l.failures, fmt.Sprintf("status %d: %s", code, body))
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// count is how many tokens were answered 200 so far.
func (l *tokenLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.issued)
}

// finish stops the load and returns what it got.
func (l *tokenLoad) finish() (ok []issued, failures []string) {
	close(l.stop)
	l.wg.Wait()
	return l.issued, l.failures
}

// claimsOf is a JWT's payload, unverified.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &claims)
	}
	if err != nil {
		t.Fatal(err)
	}
	return claims
}
