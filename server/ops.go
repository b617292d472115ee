package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
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

// readyz is 200 when the device is logged in, the database answers and
// the device holds every registered key; else 503 with the reasons. A
// software token (SoftHSM2) is ready but says so.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	rd := s.node.Readiness(ctx)
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
	body := map[string]any{"ready": rd.Ready(), "device": device, "database": checkOf(rd.Database), "keys": keys}
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
	status := http.StatusOK
	if !rd.Ready() {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
	}
	writeJSON(w, status, body)
	return nil
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
