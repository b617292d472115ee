package server

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keyward/keyward/node"
)

// healthz says the process is up and serving.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
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
	if dev.Error != "" {
		device["error"] = dev.Error
	}
	keys := checkOf(rd.Keys)
	if errors.Is(rd.Keys, node.ErrNotChecked) {
		keys.Error = rd.Keys.Error()
	}
	body := map[string]any{"ready": rd.Ready(), "device": device, "database": checkOf(rd.Database), "keys": keys}
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
