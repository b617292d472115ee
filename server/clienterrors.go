package server

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A client's mistakes are the client's: a body that cannot be read (a bad
// chunk length, a connection cut mid-upload) is a 400 logged below ERROR,
// and failed TLS handshakes are counted, with a sampled log line, so that
// neither pages anyone nor floods the log.

// StatusClientClosedRequest is what the log and metrics say of a request
// whose client went away before its answer (nginx's 499): neither the
// server's failure nor a 5xx that pages.
const StatusClientClosedRequest = 499

var errClientGone = errorf(StatusClientClosedRequest, "CLIENT_CLOSED_REQUEST", "the client closed the connection before the answer")

// bodyError is a failure to read the request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string {
	return "the request body could not be read (" + e.err.Error() + "); send it again"
}
func (e *bodyError) Unwrap() error { return e.err }

// clientBody marks the errors of reading a request body as the client's.
type clientBody struct{ io.ReadCloser }

func (b clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

// serverLog is net/http's error log: a failed TLS handshake is counted
// and logged at most once per handshakeLogEvery (with how many were not
// logged); any other line is a warning.
type serverLog struct {
	log        *slog.Logger
	handshakes prometheus.Counter

	mu      sync.Mutex
	last    time.Time
	skipped int
}

// handshakeLogEvery is how often a failed TLS handshake is logged.
const handshakeLogEvery = time.Minute

var handshakeLine = []byte("http: TLS handshake error from ")

func (l *serverLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	if !bytes.HasPrefix(p, handshakeLine) {
		l.log.Warn("http server", "error", line)
		return len(p), nil
	}
	l.handshakes.Inc()
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last) < handshakeLogEvery {
		l.skipped++
		l.mu.Unlock()
		return len(p), nil
	}
	skipped := l.skipped
	l.last, l.skipped = now, 0
	l.mu.Unlock()
	l.log.Info("TLS handshake failed", "error", line, "not_logged_since_last", skipped)
	return len(p), nil
}
