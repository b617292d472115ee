package server

import (
	"bytes"
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A probe that fails a thousand TLS handshakes is a counter and one log
// line, not a thousand lines.
func TestHandshakeFailuresSampled(t *testing.T) {
	var out bytes.Buffer
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	l := log.New(&serverLog{log: slog.New(slog.NewJSONHandler(&out, nil)), handshakes: counter}, "", 0)
	for i := range 1000 {
		l.Printf("http: TLS handshake error from 10.0.0.1:%d: EOF", 40000+i)
	}
	l.Printf("http: superfluous response.WriteHeader call")
	if got := testutil.ToFloat64(counter); got != 1000 {
		t.Fatalf("counted %v handshake failures, want 1000", got)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "TLS handshake failed") || !strings.Contains(lines[1], `"level":"WARN"`) {
		t.Fatalf("log lines:\n%s", strings.Join(lines, "\n"))
	}
}
