// Package test runs the built keyward binary end to end against SoftHSM2
// tokens made by the softhsm test helper.
package test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

var binary string

// TestMain builds keyward first; after the tests it looks into
// PostgreSQL's files for secrets.
func TestMain(m *testing.M) { testmain.Main(m, buildBinary) }

// buildBinary builds keyward (with the race detector) into a temporary
// directory; the teardown it returns scans PostgreSQL's files for leaked
// secrets and removes the directory.
func buildBinary() (func(code int) int, error) {
	dir, err := os.MkdirTemp("", "keyward-bin-")
	if err != nil {
		return nil, err
	}
	binary = filepath.Join(dir, "keyward")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/keyward")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build keyward: %w", err)
	}
	return func(code int) int {
		// Invariant 1 in PostgreSQL's files: its tables, indexes and WAL
		// hold nothing any test registered as secret.
		if found := leaks.scan(dbtest.DataDirs()); len(found) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: PostgreSQL files hold a PIN or key: %v\n", found)
			code = 1
		}
		os.RemoveAll(dir)
		return code
	}, nil
}

// cli runs keyward against one token.
type cli struct {
	t       *testing.T
	tok     *softhsm.Token
	env     []string
	dir     string
	secrets []string // must never appear in any output or file
	wrap    []string // a command keyward serve runs under (prlimit …), or none
}

// secret registers s (and its other case; for hex, its bytes too) as
// never to be printed or written to the database or $KEYWARD_HOME.
func (c *cli) secret(s string) {
	c.secrets = append(c.secrets, strings.ToLower(s), strings.ToUpper(s))
	if b, err := hex.DecodeString(s); err == nil && len(b) >= 16 {
		c.secrets = append(c.secrets, string(b))
	}
	leaks.remember(c.secrets...)
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	tok := softhsmtest.NewTestToken(t)
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KEYWARD_HOME=" + filepath.Join(dir, "home")}
	c := &cli{t: t, tok: tok, env: append(env, tok.Env()...), dir: dir}
	c.secret(string(tok.PIN()))
	c.secret(string(tok.SOPIN()))
	// Runs before t.TempDir's removal (cleanups run last first).
	t.Cleanup(c.checkNoLeaks)
	return c
}

// printed checks the output of a keyward process: the test fails if it
// holds a secret.
func (c *cli) printed(what, out string) {
	c.t.Helper()
	if s, ok := c.holdsSecret(out); ok {
		c.t.Errorf("%s printed a secret (%d bytes long):\n%s", what, len(s), out)
	}
}

func (c *cli) holdsSecret(text string) (string, bool) {
	for _, s := range c.secrets {
		if s != "" && strings.Contains(text, s) {
			return s, true
		}
	}
	return "", false
}

// checkNoLeaks is the last look at a test's CLI (its processes' output is
// checked as it comes, by printed): no file under $KEYWARD_HOME or of a
// SQLite --db (database, -wal, -shm) holds the test's PINs, key hex or key
// bytes. (PostgreSQL's files are read once, by TestMain.)
func (c *cli) checkNoLeaks() {
	c.t.Helper()
	roots := []string{filepath.Join(c.dir, "home")}
	for _, e := range c.env {
		if db, ok := strings.CutPrefix(e, "KEYWARD_DB="); ok && !strings.Contains(db, "://") {
			roots = append(roots, db, db+"-wal", db+"-shm")
		}
	}
	for _, path := range filesHolding(roots, c.secrets) {
		c.t.Errorf("%s holds a secret", path)
	}
}

// filesHolding lists the files under roots (files or directories) that
// hold any of secrets.
func filesHolding(roots, secrets []string) []string {
	var found []string
	for _, root := range roots {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(path)
			for _, s := range secrets {
				if s != "" && bytes.Contains(b, []byte(s)) {
					found = append(found, path)
					break
				}
			}
			return nil
		})
	}
	return found
}

// leaks is every secret of every test, for TestMain's look at the
// PostgreSQL clusters' files.
var leaks = leakSet{seen: map[string]bool{}}

type leakSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (l *leakSet) remember(secrets ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			l.seen[s] = true
		}
	}
}

// scan reports the files under dirs that hold a secret.
func (l *leakSet) scan(dirs []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	secrets := make([]string, 0, len(l.seen))
	for s := range l.seen {
		secrets = append(secrets, s)
	}
	return filesHolding(dirs, secrets)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run executes keyward with args, stdin and extra environment.
func (c *cli) run(stdin string, extraEnv []string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append([]string(nil), c.env...), extraEnv...)
	cmd.Dir = c.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	r := result{out.String(), errb.String(), code}
	// Invariant 1: no PIN and no key material in any output.
	c.printed(fmt.Sprintf("keyward %v", args), r.stdout+"\n"+r.stderr)
	return r
}

// ok runs keyward and fails the test unless it exits 0.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != 0 {
		c.t.Fatalf("keyward %v: %s", args, r)
	}
	return r.stdout
}

// writeAt writes content to path (mode 0600), failing the test if it
// cannot.
func writeAt(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// okJSON runs keyward like ok and decodes its standard output into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("keyward %v printed %q: %v", args, out, err)
	}
}

// fails runs keyward and checks the exit code and that stderr says want.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("keyward %v: want exit %d saying %q, got %s", args, code, want, r)
	}
	return r
}
