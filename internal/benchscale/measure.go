package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// server is a running keyward serve and a client for it.
type server struct {
	cmd    *exec.Cmd
	url    string
	admin  string // bearer token; never printed
	client *http.Client
	start  time.Duration // exec to the "serving on" line
}

// startServe runs bin serve on a free loopback port and waits for the
// line that names its URL.
func startServe(bin string, env []string, admin string, workers int) (*server, error) {
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--quiet")
	cmd.Env = env
	// A pipe of our own, not StderrPipe: Wait would close that one under
	// the reader.
	stderr, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = w
	t0 := time.Now()
	err = cmd.Start()
	w.Close()
	if err != nil {
		stderr.Close()
		return nil, err
	}
	lines := make(chan string)
	go func() {
		defer stderr.Close()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	s := &server{cmd: cmd, admin: admin}
	var said []string
	timeout := time.After(2 * time.Minute)
	for s.url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				return nil, fmt.Errorf("keyward serve exited before serving: %s", strings.Join(said, "; "))
			}
			if u, found := strings.CutPrefix(l, "keyward: serving on "); found {
				s.url = strings.TrimSpace(u)
			} else {
				said = append(said, l)
			}
		case <-timeout:
			s.stop()
			return nil, fmt.Errorf("keyward serve did not say where it serves within 2 minutes: %s", strings.Join(said, "; "))
		}
	}
	s.start = time.Since(t0)
	go func() {
		for range lines { // drained, so that serve never blocks writing
		}
	}()
	// One kept connection per worker, as a pool of clients would hold.
	tr := &http.Transport{MaxIdleConns: 4 * workers, MaxIdleConnsPerHost: 4 * workers, IdleConnTimeout: time.Minute}
	s.client = &http.Client{Transport: tr, Timeout: 10 * time.Minute}
	return s, nil
}

// stop sends SIGTERM (serve commits what is queued and exits) and kills
// it if it takes longer than 30 s.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("keyward serve did not stop within 30 s of SIGTERM: killed (%v)", <-done)
	}
}

// do sends one request with the admin token and returns the body of a
// 200, or an error naming the status and the start of the body.
func (s *server) do(method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{method + " " + strings.SplitN(path, "?", 2)[0], resp.StatusCode, string(out[:min(len(out), 300)])}
	}
	return out, nil
}

type statusError struct {
	what string
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s: %d %s", e.what, e.code, e.body) }

// noLimit says err is a listing's refusal of the limit parameter: the
// server predates pagination.
func noLimit(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.code == http.StatusBadRequest &&
		strings.Contains(se.body, "unknown query parameter") && strings.Contains(se.body, "limit")
}

// introspect checks that token is active.
func (s *server) introspect(token string) error {
	body, err := s.do("POST", "/oauth2/introspect", "application/x-www-form-urlencoded", []byte("token="+url.QueryEscape(token)))
	if err != nil {
		return err
	}
	var r struct{ Active bool }
	if err := json.Unmarshal(body, &r); err != nil || !r.Active {
		return fmt.Errorf("introspect: the token is not active (%v)", err)
	}
	return nil
}

// create makes an access token through the API and returns it.
func (s *server) create(subject string) (string, error) {
	body, err := s.do("POST", "/access/api/v1/tokens", "application/json", []byte(`{"subject":"`+subject+`","scope":"read"}`))
	if err != nil {
		return "", err
	}
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" {
		return "", fmt.Errorf("create: no access_token in the answer (%v)", err)
	}
	return r.AccessToken, nil
}

// rate is a load's throughput and latency.
type rate struct {
	perSec   float64
	p50, p99 time.Duration
}

// timings add up the rounds of one load on one size.
type timings struct {
	wall time.Duration
	lat  []time.Duration
}

// run calls f(i) for i in [from, to) on workers goroutines and adds the
// wall time and each call's latency.
func (t *timings) run(from, to, workers int, f func(i int) error) error {
	lat := make([]time.Duration, to-from)
	var next atomic.Int64
	next.Store(int64(from))
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= to {
					return
				}
				start := time.Now()
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(to)) // stop the others too
					return
				}
				lat[i-from] = time.Since(start)
			}
		})
	}
	wg.Wait()
	t.wall += time.Since(t0)
	t.lat = append(t.lat, lat...)
	return first
}

// rate is the throughput and latency of what run measured.
func (t *timings) rate() rate {
	n := len(t.lat)
	if n == 0 {
		return rate{}
	}
	slices.Sort(t.lat)
	return rate{perSec: float64(n) / t.wall.Seconds(), p50: t.lat[n/2], p99: t.lat[n*99/100]}
}

// rss is the process's resident set (VmRSS), in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// listing is what a full listing took.
type listing struct {
	tokens, pages int
	took          time.Duration
	peakRSS       int64
	paginated     bool   // false: the server took no limit, one call listed all
	failed        string // why the listing stopped, if it did
}

// listAll follows next through GET /access/api/v1/tokens?all=true in
// pages of limit, sampling the server's VmRSS every 20 ms meanwhile. A
// server without pagination refuses limit: then it lists in one call.
func (s *server) listAll(limit int) (listing, error) {
	pid := s.cmd.Process.Pid
	out := listing{paginated: true}
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := rss(pid); err == nil && v > peak {
				peak = v
			}
			select {
			case <-stop:
				sampled <- peak
				return
			case <-tick.C:
			}
		}
	}()
	t0 := time.Now()
	q := "all=true&limit=" + strconv.Itoa(limit)
	cursor := ""
	var err error
	for {
		path := "/access/api/v1/tokens?" + q
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var n int
		n, cursor, err = s.listPage(path)
		if out.pages == 0 && out.paginated && noLimit(err) {
			out.paginated = false
			q = "all=true"
			continue
		}
		if err != nil {
			break
		}
		out.tokens += n
		out.pages++
		if cursor == "" {
			break
		}
	}
	out.took = time.Since(t0)
	close(stop)
	out.peakRSS = <-sampled
	return out, err
}

// listPage reads one page as a stream, counting its tokens without
// keeping them: a one-call listing of a million records would otherwise
// cost this process as much memory as the server.
func (s *server) listPage(path string) (n int, next string, err error) {
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return 0, "", &statusError{"GET /access/api/v1/tokens", resp.StatusCode, string(b)}
	}
	dec := json.NewDecoder(bufio.NewReaderSize(resp.Body, 64<<10))
	if _, err := dec.Token(); err != nil { // {
		return 0, "", err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return n, "", err
		}
		switch key {
		case "tokens":
			if _, err := dec.Token(); err != nil { // [
				return n, "", err
			}
			for dec.More() {
				var skip struct{}
				if err := dec.Decode(&skip); err != nil {
					return n, "", err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // ]
				return n, "", err
			}
		case "next":
			if err := dec.Decode(&next); err != nil {
				return n, "", err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return n, "", err
			}
		}
	}
	return n, next, nil
}

// pageTime is the median of calls reads of one page of 100; 0 when the
// server has no limit parameter.
func (s *server) pageTime(calls int) (time.Duration, error) {
	took := make([]time.Duration, calls)
	for i := range took {
		t := time.Now()
		if _, err := s.do("GET", "/access/api/v1/tokens?limit=100", "", nil); err != nil {
			if noLimit(err) {
				return 0, nil
			}
			return 0, err
		}
		took[i] = time.Since(t)
	}
	slices.Sort(took)
	return took[calls/2], nil
}
