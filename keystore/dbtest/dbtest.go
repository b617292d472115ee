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
	tb.Helper()
	return filepath.Join(tb.TempDir(), "keyward.db")
}

// cluster is the one throwaway cluster the test binary shares, started at
// the first Postgres call and stopped by Stop.
var cluster struct {
	once sync.Once
	c    *Cluster
	url  string
	err  error
	n    atomic.Int64
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
	if _, err := db.ExecContext(tb.Context(), "CREATE SCHEMA "+schema); err != nil {
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

// DataDirs are the data directories of the throwaway clusters that still
// exist, for a test to look into (none when KEYWARD_TEST_PG_URL is set).
func DataDirs() []string {
	created.mu.Lock()
	defer created.mu.Unlock()
	var dirs []string
	for _, d := range created.dirs {
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

var created struct {
	mu   sync.Mutex
	dirs []string
}

// Stop stops the throwaway cluster after m.Run; internal/testmain calls
// it for every test package.
func Stop() {
	if cluster.c != nil {
		cluster.c.remove()
	}
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
	c, err := newCluster()
	if err != nil {
		cluster.err = err
		return
	}
	cluster.c, cluster.url = c, c.url
}

// Cluster is a PostgreSQL cluster of a test's own (see NewCluster): its
// own data directory and port, so that the test may stop and start it
// without disturbing the tests that share the Postgres cluster.
type Cluster struct {
	dir    string // everything: data, log, socket
	data   string
	pgCtl  string
	asUser string // "postgres" when the tests run as root, else ""
	opts   string // the server options, the port among them
	url    string

	mu      sync.Mutex
	running bool
}

// NewCluster initdb's and starts a cluster for tb alone, stopped and
// removed when tb ends (or, should the test process die first, by a
// watchdog). Without PostgreSQL server binaries it skips tb, or fails it
// when CI is set. It ignores KEYWARD_TEST_PG_URL: a test that needs a
// cluster it can stop decides itself what to do beside an external one.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := newCluster()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL is required in CI: %v", err)
		}
		tb.Skipf("no PostgreSQL cluster for this test: %v (apt-get install postgresql)", err)
	}
	tb.Cleanup(c.remove)
	return c
}

// URL is the cluster's postgres:// URL (database postgres, user postgres,
// no password); it stays the same across Stop and Start.
func (c *Cluster) URL() string { return c.url }

// Stop stops the server (fast shutdown: clients are disconnected); the
// data stay for Start.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if out, err := run(c.asUser, c.pgCtl, "-D", c.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		tb.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
	c.running = false
}

// Start starts the server again on the same port and waits until it
// answers queries.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	if err := c.start(); err != nil {
		tb.Fatal(err)
	}
}

// Freeze stops (SIGSTOP) the server and every backend process: the
// database hangs instead of refusing, as behind a network partition.
// Thaw resumes them; it is called at cleanup too.
func (c *Cluster) Freeze(tb testing.TB) {
	tb.Helper()
	c.signalAll(tb, syscall.SIGSTOP)
	tb.Cleanup(func() { c.signalAll(tb, syscall.SIGCONT) })
}

// Thaw resumes a frozen server.
func (c *Cluster) Thaw(tb testing.TB) { tb.Helper(); c.signalAll(tb, syscall.SIGCONT) }

// signalAll signals the postmaster and its children.
func (c *Cluster) signalAll(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		tb.Fatalf("postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
	if err != nil {
		tb.Fatalf("postmaster.pid: %v", err)
	}
	pids := []int{pid}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so read after ")".
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
			pids = append(pids, child)
		}
	}
	for _, p := range pids {
		syscall.Kill(p, sig)
	}
}

// newCluster makes a data directory with initdb (as the postgres user
// when run as root: initdb refuses root), starts the server on a free
// loopback port, leaves a watchdog behind and waits until it answers.
func newCluster() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keyward-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), pgCtl: filepath.Join(bin, "pg_ctl")}
	created.mu.Lock()
	created.dirs = append(created.dirs, c.data)
	created.mu.Unlock()
	if err := c.create(bin); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) create(bin string) error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and there is no postgres user: %v", err)
		}
		uid, err := strconv.Atoi(u.Uid)
		if err != nil {
			return fmt.Errorf("postgres user id %q: %v", u.Uid, err)
		}
		gid, err := strconv.Atoi(u.Gid)
		if err != nil {
			return fmt.Errorf("postgres group id %q: %v", u.Gid, err)
		}
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return err
		}
		c.asUser = "postgres"
	}
	if out, err := run(c.asUser, filepath.Join(bin, "initdb"), "-D", c.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.opts = fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300", port, c.dir)
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	// The watchdog first: a start that fails half-way is cleaned up too.
	watchdog(c.dir, c.data, c.pgCtl, c.asUser)
	return c.start()
}

// start starts the server and waits until it answers queries, not only
// the socket.
func (c *Cluster) start() error {
	c.running = true // even if pg_ctl fails: remove then stops whatever did start
	if out, err := run(c.asUser, c.pgCtl, "-D", c.data, "-l", filepath.Join(c.dir, "log"), "-o", c.opts, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		db, err := sql.Open("pgx", c.url)
		if err == nil {
			err = db.PingContext(ctx)
			db.Close()
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("PostgreSQL did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// remove stops the server (if it may be running) and removes its files.
func (c *Cluster) remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		run(c.asUser, c.pgCtl, "-D", c.data, "-m", "immediate", "-w", "stop")
		c.running = false
	}
	os.RemoveAll(c.dir)
}

// watchdog stops the cluster and removes its files if this test process
// dies without removing it (a crash, a timeout, a kill). It ends once the
// directory is gone.
func watchdog(dir, data, pgCtl, asUser string) {
	stop := fmt.Sprintf("%s -D %s -m immediate stop", pgCtl, data)
	if asUser != "" {
		stop = "runuser -u " + asUser + " -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null && [ -d %s ]; do sleep 1; done; [ -d %s ] || exit 0; %s >/dev/null 2>&1; rm -rf %s", os.Getpid(), dir, dir, stop, dir)
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
