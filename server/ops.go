package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keyward/keyward/bootstrap"
	"github.com/keyward/keyward/node"
)

// healthz says the process is up and serving.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

// ping is JFrog Access's GET /access/api/v1/system/ping: "OK" as text
// while the process serves (readiness is /readyz's).
func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("OK"))
	return nil
}

type check struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func checkOf(err error) check {
	if err != nil {
		return check{Error: classify(err).msg}
	}
	return check{OK: true}
}

// readyz is 200 when the device is logged in, the database answers, the
// device holds every registered key and there is an active master and
// join key; else 503. Anyone gets the verdict and each check's ok; the
// reasons, and the device's name, go to an admin token or to everyone
// with Config.ReadyzDetails (they name the token, the database and key
// KCVs). A software token (SoftHSM2) is ready but says so.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	rd := s.readiness.get(r.Context(), s.node)
	body := map[string]any{"ready": rd.Ready(), "device": check{OK: rd.Device == nil}, "database": check{OK: rd.Database == nil}, "keys": check{OK: rd.Keys == nil}}
	if s.cfg.ReadyzDetails || s.isAdmin(r) {
		s.readyDetails(body, rd)
	}
	status := http.StatusOK
	if !rd.Ready() {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
	}
	writeJSON(w, status, body)
	return nil
}

// isAdmin says the request carries a valid admin token (a readiness probe
// without one is no error: it gets the verdict alone).
func (s *Server) isAdmin(r *http.Request) bool {
	if r.Header.Get("Authorization") == "" {
		return false
	}
	c, err := s.authenticate(r)
	return err == nil && c.admin()
}

// readyDetails adds to a readiness body what each failed check found and
// which device this is.
func (s *Server) readyDetails(body map[string]any, rd node.Readiness) {
	dev, info := checkOf(rd.Device), s.node.Device()
	device := map[string]any{"ok": dev.OK, "label": info.Label, "manufacturer": info.Manufacturer,
		"model": info.Model, "software_token": info.Software != ""}
	if rd.Device != nil {
		// Named, with what the device answered (never a secret): the
		// operator's first question in an outage.
		device["error"] = fmt.Sprintf("token %q (%s %s) cannot be used: %v", info.Label, info.Manufacturer, info.Model, rd.Device)
		if h := s.node.DeviceHealth(); !h.Up && !h.Since.IsZero() {
			device["since"] = h.Since.UTC().Format(time.RFC3339)
		}
	}
	keys := checkOf(rd.Keys)
	if errors.Is(rd.Keys, node.ErrNotChecked) {
		keys.Error = rd.Keys.Error()
	}
	body["device"], body["database"], body["keys"] = device, checkOf(rd.Database), keys
	if s.boot != nil {
		// Reported, not a reason to take the node out: it names the
		// file and what is wrong with it, never what it holds.
		body["bootstrap"] = check{OK: s.boot.Err() == nil}
		if err := s.boot.Err(); err != nil {
			body["bootstrap"] = check{Error: err.Error()}
		}
	}
	if warning := info.SoftwareTokenWarning(); warning != "" {
		body["warnings"] = []string{warning}
	}
}

// readinessEvery is how long a readiness result is answered again: a
// flood of probes costs one check a second, not one each.
const readinessEvery = time.Second

// readinessCache runs one readiness check at a time and keeps its result
// for readinessEvery.
type readinessCache struct {
	mu      sync.Mutex
	last    node.Readiness
	at      time.Time
	running chan struct{} // closed when the check under way ends; nil: none
}

// get is the last result when fresh, else the result of the check under
// way (started if none is). ctx bounds the wait, not the check.
func (c *readinessCache) get(ctx context.Context, n *node.Node) node.Readiness {
	c.mu.Lock()
	if !c.at.IsZero() && time.Since(c.at) < readinessEvery {
		defer c.mu.Unlock()
		return c.last
	}
	done := c.running
	if done == nil {
		done = make(chan struct{})
		c.running = done
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			rd := n.Readiness(cctx)
			c.mu.Lock()
			c.last, c.at, c.running = rd, time.Now(), nil
			c.mu.Unlock()
			close(done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return node.Readiness{Device: fmt.Errorf("no answer: %w", ctx.Err())}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// startBootstrap makes the node's bootstrap runner and does its first
// pass before the server listens, so a node started with key files and a
// token request serves with its keys and its token; a failure is logged
// and kept for /readyz, not fatal.
func (s *Server) startBootstrap(ctx context.Context, o bootstrap.Options) *bootstrap.Runner {
	report := o.Report
	o.Report = func(msg string) {
		s.log.Info("bootstrap", "event", msg)
		if report != nil {
			report(msg)
		}
	}
	r := bootstrap.NewRunner(ctx, s.node, o)
	if err := r.Pass(ctx); err != nil {
		s.log.Warn("bootstrap", "error", err.Error())
	}
	return r
}
