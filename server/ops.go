package server

import (
	"context"
	"net/http"
	"strconv"
	"time"
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
	dev := checkOf(s.node.Device.Ping(ctx))
	db := checkOf(s.node.Store.Ping(ctx))
	var keys check
	if db.OK {
		// A fresh look: a probe after an outage must not report the old.
		keys = checkOf(s.Reconcile(ctx))
	} else {
		keys = check{Error: "not checked: the database cannot be reached"}
	}
	ready := dev.OK && db.OK && keys.OK
	device := map[string]any{"ok": dev.OK, "label": s.node.Device.Label(), "manufacturer": s.node.Device.Manufacturer(),
		"model": s.node.Device.Model(), "software_token": s.node.SoftwareToken()}
	if dev.Error != "" {
		device["error"] = dev.Error
	}
	body := map[string]any{"ready": ready, "device": device, "database": db, "keys": keys}
	if s.node.SoftwareToken() {
		body["warnings"] = []string{SoftwareTokenWarning(s.node.Device.Software())}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(int(s.cfg.RetryAfter.Seconds())))
	}
	writeJSON(w, status, body)
	return nil
}

// SoftwareTokenWarning is said at start and by /readyz on a software
// token such as SoftHSM2.
func SoftwareTokenWarning(name string) string {
	return "the device is " + name + ", a software token: its keys are files on this machine's disk, not inside an HSM"
}
