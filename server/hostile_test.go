package server_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/server"
)

// lockedLog is a log buffer safe for the server's goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}
func (l *lockedLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

// hostileServer is a served API on a fresh node, its admin token and its
// log.
func hostileServer(t *testing.T, cfg server.Config) (*httptest.Server, string, *lockedLog) {
	t.Helper()
	n, admin := openAPINode(t)
	log := &lockedLog{}
	cfg.Log = slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := httptest.NewServer(server.New(n, cfg).Handler())
	t.Cleanup(ts.Close)
	return ts, admin, log
}

// rawRequest writes req on a new connection, half-closes it when asked,
// and returns the status line of the answer ("" when there is none).
func rawRequest(t *testing.T, ts *httptest.Server, req string, closeWrite bool) string {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		conn.(*net.TCPConn).CloseWrite()
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line)
}

// A body the client botches (a bad chunk length, an upload cut short) is
// the client's mistake: 400, never 500, and no ERROR line that pages.
func TestClientBodyErrorsAreNot500(t *testing.T) {
	ts, admin, log := hostileServer(t, server.Config{})
	auth := "Authorization: Bearer " + admin + "\r\n"
	for _, c := range []struct {
		name, req  string
		closeWrite bool
	}{
		{"bad chunk length, record", "PUT /api/v1/store/x HTTP/1.1\r\nHost: k\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\nZZ\r\n", false},
		{"bad chunk length, token", "POST /access/api/v1/tokens HTTP/1.1\r\nHost: k\r\n" + auth + "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", false},
		{"cut short, record", "PUT /api/v1/store/y HTTP/1.1\r\nHost: k\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n10\r\nabc", true},
		{"cut short, revoke", "POST /access/api/v1/tokens/revoke HTTP/1.1\r\nHost: k\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"token\":", true},
	} {
		status := rawRequest(t, ts, c.req, c.closeWrite)
		// A client that half-closed may be seen to leave before its body
		// is read: 499, the log's word for it.
		if !strings.Contains(status, " 400 ") && !(c.closeWrite && strings.Contains(status, " 499 ")) {
			t.Errorf("%s: %q, want 400", c.name, status)
		}
	}
	if strings.Contains(log.String(), `"level":"ERROR"`) || strings.Contains(log.String(), `"status":5`) {
		t.Fatalf("a client's mistake logged as an error:\n%s", log)
	}
}

// The store's root redirects nowhere, and Allow names only what is
// served there.
func TestStoreRootNeitherRedirectsNorOverclaims(t *testing.T) {
	ts, admin, _ := hostileServer(t, server.Config{})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, method := range []string{"PUT", "DELETE", "POST"} {
		for _, token := range []string{"", admin} {
			req, _ := http.NewRequest(method, ts.URL+"/api/v1/store", strings.NewReader("v"))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET" || res.Header.Get("Location") != "" {
				t.Errorf("%s /api/v1/store (token %v): %d Allow %q Location %q, want 405 with Allow: GET",
					method, token != "", res.StatusCode, res.Header.Get("Allow"), res.Header.Get("Location"))
			}
		}
	}
}

// The routes whose credential is a token in the body are rate limited
// per client: 429 with Retry-After past the burst, and served again once
// the bucket refills.
func TestAnonymousRoutesRateLimited(t *testing.T) {
	ts, admin, _ := hostileServer(t, server.Config{AnonymousRate: 5, AnonymousBurst: 3})
	post := func(path, body string) *http.Response {
		t.Helper()
		res, err := http.Post(ts.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, path := range []string{"/oauth2/revoke", "/access/api/v1/tokens/revoke", "/access/api/v1/pairing/redeem", "/access/api/v1/tokens"} {
		body := "token=x&pairing_token=x"
		if path == "/access/api/v1/tokens" {
			body = "grant_type=refresh_token&refresh_token=kwr_x"
		}
		if path == "/access/api/v1/pairing/redeem" {
			body = "pairing_token=x"
		}
		time.Sleep(time.Second) // a full bucket for each route's round
		var limited *http.Response
		for range 10 {
			if res := post(path, body); res.StatusCode == http.StatusTooManyRequests {
				limited = res
				break
			}
		}
		if limited == nil {
			t.Fatalf("%s: 10 requests at once, none limited", path)
		}
		if ra, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("%s: 429 with Retry-After %q", path, limited.Header.Get("Retry-After"))
		}
	}
	// A credentialed route is not limited.
	for range 10 {
		req, _ := http.NewRequest("GET", ts.URL+"/access/api/v1/tokens/me", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusTooManyRequests {
			t.Fatal("an authenticated route was rate limited")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if res := post("/oauth2/revoke", "token=x"); res.StatusCode != http.StatusOK {
		t.Fatalf("after the bucket refilled: %d", res.StatusCode)
	}
}

// Request bodies held at once are bounded: past the bound 503 with
// Retry-After, and uploads are served again once the held ones end.
func TestBodiesInFlightBounded(t *testing.T) {
	ts, admin, _ := hostileServer(t, server.Config{MaxBytesInFlight: 2 << 20})
	const size = 1 << 20
	put := func(name string, body io.Reader) (*http.Response, error) {
		req, _ := http.NewRequest("PUT", ts.URL+"/api/v1/store/"+name, body)
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+admin)
		return http.DefaultClient.Do(req)
	}
	// Two uploads started and held open: their 2 MiB is the bound.
	var held []*io.PipeWriter
	results := make(chan int, 2)
	for i := range 2 {
		pr, pw := io.Pipe()
		held = append(held, pw)
		go func() {
			res, err := put("held"+strconv.Itoa(i), pr)
			if err != nil {
				results <- 0
				return
			}
			res.Body.Close()
			results <- res.StatusCode
		}()
		pw.Write(make([]byte, 1024))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := put("third", bytes.NewReader(make([]byte, size)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a third 1 MiB upload beside two held ones: %d, want 503", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond) // the held uploads may not have arrived yet
	}
	for _, pw := range held {
		pw.Write(make([]byte, size-1024))
		pw.Close()
	}
	for range 2 {
		if code := <-results; code != http.StatusOK {
			t.Fatalf("a held upload ended with %d", code)
		}
	}
	res, err := put("fourth", bytes.NewReader(make([]byte, size)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("an upload after the held ones ended: %d", res.StatusCode)
	}
}
