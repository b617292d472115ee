package server

import (
	"io"
	"sync"
	"time"
)

// LogWriter gathers log lines and writes them out together: once
// LogFlushSize bytes are waiting, LogFlushDelay after the first waiting
// line, and on Flush and Close. The access log is a line per request, and
// a write(2) per line cost about what the handler's own Go work does for
// a cached introspection; under load one write now carries dozens of
// lines, at rest a line waits at most LogFlushDelay. A crash loses what is
// waiting; Close (after Run returns) writes it.
//
// A LogWriter is safe for concurrent use (slog's handlers write a record
// with one Write).
type LogWriter struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	timer  *time.Timer
	closed bool
}

// When a LogWriter writes.
const (
	LogFlushSize  = 32 << 10
	LogFlushDelay = 50 * time.Millisecond
)

// NewLogWriter gathers the lines written to w.
func NewLogWriter(w io.Writer) *LogWriter {
	lw := &LogWriter{w: w, buf: make([]byte, 0, LogFlushSize+4<<10)}
	lw.timer = time.AfterFunc(time.Hour, lw.Flush)
	lw.timer.Stop()
	return lw
}

// Write adds p to what is waiting; after Close it writes p at once.
func (lw *LogWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.closed {
		return lw.w.Write(p)
	}
	if len(lw.buf) == 0 {
		lw.timer.Reset(LogFlushDelay)
	}
	lw.buf = append(lw.buf, p...)
	if len(lw.buf) >= LogFlushSize {
		if err := lw.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes what is waiting now.
func (lw *LogWriter) Flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.flush()
}

func (lw *LogWriter) flush() error {
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

// Close writes what is waiting; later lines are written one by one.
func (lw *LogWriter) Close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.closed = true
	lw.timer.Stop()
	return lw.flush()
}
