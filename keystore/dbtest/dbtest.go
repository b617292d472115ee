// Package dbtest gives tests real databases: a SQLite file in the test's
// temporary directory, and a PostgreSQL schema of their own in a
// throwaway cluster started from the installed PostgreSQL binaries (initdb
// and pg_ctl, as the postgres user when run as root), or in the server
// KEYWARD_TEST_PG_URL names.
package dbtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// EnvPGURL names an existing PostgreSQL server for the tests; the role
// needs CREATE on the database (each test gets a schema of its own).
const EnvPGURL = "KEYWARD_TEST_PG_URL"

// SQLite returns the path of a fresh SQLite database file for tb.
func SQLite(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "keyward.db")
}

var cluster struct {
	once    sync.Once
	url     string
	dataDir string
	pgCtl   string
	asUser  string
	err     error
	n       atomic.Int64
}

// Postgres returns a postgres:// URL whose search_path is a new, empty
// schema for tb (dropped when tb ends).
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvPGURL)
	if base == "" {
		cluster.once.Do(startCluster)
		if cluster.err != nil {
			if os.Getenv("CI") != "" {
				tb.Fatalf("PostgreSQL is required in CI: %v", cluster.err)
			}
			tb.Skipf("no PostgreSQL for this test: %v (apt-get install postgresql, or set %s)", cluster.err, EnvPGURL)
		}
		base = cluster.url
	}
	schema := fmt.Sprintf("kw_%d_%d", os.Getpid(), cluster.n.Add(1))
	db, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// Stop stops the throwaway cluster; call it from TestMain after m.Run.
func Stop() {
	if cluster.dataDir == "" {
		return
	}
	run(cluster.asUser, cluster.pgCtl, "-D", filepath.Join(cluster.dataDir, "data"), "-m", "immediate", "-w", "stop")
	os.RemoveAll(cluster.dataDir)
}

func binDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("initdb not found (PostgreSQL server binaries are not installed)")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func run(asUser, name string, args ...string) ([]byte, error) {
	if asUser != "" {
		args = append([]string{"-u", asUser, "--", name}, args...)
		name = "runuser"
	}
	return exec.Command(name, args...).CombinedOutput()
}

func startCluster() {
	bin, err := binDir()
	if err != nil {
		cluster.err = err
		return
	}
	dir, err := os.MkdirTemp("", "keyward-pg-")
	if err != nil {
		cluster.err = err
		return
	}
	asUser := ""
	if os.Geteuid() == 0 {
		// initdb refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			cluster.err = fmt.Errorf("running as root and there is no postgres user: %v", err)
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(dir, uid, gid)
		asUser = "postgres"
	}
	data := filepath.Join(dir, "data")
	if out, err := run(asUser, filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		cluster.err = fmt.Errorf("initdb: %v: %s", err, out)
		return
	}
	port, err := freePort()
	if err != nil {
		cluster.err = err
		return
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, dir)
	pgCtl := filepath.Join(bin, "pg_ctl")
	if out, err := run(asUser, pgCtl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		cluster.err = fmt.Errorf("pg_ctl start: %v: %s", err, out)
		return
	}
	cluster.dataDir, cluster.pgCtl, cluster.asUser = dir, pgCtl, asUser
	watchdog(dir, data, pgCtl, asUser)
	cluster.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	// Wait until it answers queries, not only the socket.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		db, err := sql.Open("pgx", cluster.url)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			cluster.err = fmt.Errorf("PostgreSQL did not come up: %v", err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watchdog stops the cluster and removes its files if this test process
// dies without calling Stop (a crash, a timeout, a kill).
func watchdog(dir, data, pgCtl, asUser string) {
	stop := fmt.Sprintf("%s -D %s -m immediate stop", pgCtl, data)
	if asUser != "" {
		stop = "runuser -u " + asUser + " -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 2; done; %s >/dev/null 2>&1; rm -rf %s", os.Getpid(), stop, dir)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		go cmd.Wait()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
