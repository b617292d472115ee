package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The SQLite file deleted under a running server: writes answer 503
// instead of vanishing at the next start, /readyz turns unready, and the
// next start refuses the empty database beside a device with keys, until
// told to adopt them.
func TestDeletedDatabaseStopsWrites(t *testing.T) {
	c, admin := newServedCLI(t)
	s := c.serve(nil)
	s.json(200, "PUT", "/api/v1/store/before", admin, []byte("kept"))
	db := filepath.Join(c.dir, "home", "keyward.db")
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if code, b := s.call("PUT", "/api/v1/store/after", admin, []byte("lost?")); code != 503 || !strings.Contains(string(b), "DATABASE_UNAVAILABLE") {
		t.Fatalf("a write after the database file was deleted: %d %s", code, b)
	}
	if code, b := s.call("POST", "/access/api/v1/tokens", admin, `{"subject":"svc"}`); code != 503 {
		t.Fatalf("a token created after the database file was deleted: %d %s", code, b)
	}
	within(t, 3*time.Second, "readyz unready", func() bool {
		code, _ := s.call("GET", "/readyz", "", nil)
		return code == 503
	})
	if code := s.signal(syscall.SIGTERM); code != 0 {
		t.Logf("serve exited %d after its database went", code)
	}

	// The next start: an empty registry beside a device with keys.
	_, line := c.startServe(nil)
	for _, want := range []string{db, c.tok.Label, "keyward/master/v1", "--adopt-device-keys"} {
		if !strings.Contains(line, want) {
			t.Fatalf("serve on an empty database beside a device with keys: %q, want it to name %q", line, want)
		}
	}
	r := c.run("", nil, "key", "list")
	if r.code != 3 || !strings.Contains(r.stderr, "--adopt-device-keys") {
		t.Fatalf("key list on the empty database: %s", r)
	}
	s = c.serve([]string{"KEYWARD_ADOPT_DEVICE_KEYS=1"})
	if ready := s.json(200, "GET", "/readyz", "", nil); ready["ready"] != true {
		t.Fatalf("readyz after adopting the device's keys: %v", ready)
	}
	out := c.ok("key", "list")
	if !strings.Contains(out, "keyward/master/v1") || !strings.Contains(out, "active") {
		t.Fatalf("key list after adopting: %s", out)
	}
}
