// Package test runs the built keyward binary end to end against SoftHSM2
// tokens made by the softhsm test helper.
package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/keystore/dbtest"
	"github.com/keyward/keyward/softhsm"
	"github.com/keyward/keyward/softhsm/softhsmtest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyward-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "keyward")
	build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/keyward")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build keyward:", err)
		os.Exit(1)
	}
	code := m.Run()
	dbtest.Stop()
	softhsmtest.CleanupTestTokens()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs keyward against one token.
type cli struct {
	t       *testing.T
	tok     *softhsm.Token
	env     []string
	dir     string
	secrets []string // must never appear in any output
}

// secret registers s (and its other case) as never to be printed.
func (c *cli) secret(s string) {
	c.secrets = append(c.secrets, strings.ToLower(s), strings.ToUpper(s))
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	tok := softhsmtest.NewTestToken(t)
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KEYWARD_HOME=" + filepath.Join(dir, "home")}
	return &cli{t: t, tok: tok, env: append(env, tok.Env()...), dir: dir}
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
	for _, s := range append([]string{string(c.tok.PIN())}, c.secrets...) {
		if s != "" && (strings.Contains(r.stdout, s) || strings.Contains(r.stderr, s)) {
			c.t.Fatalf("keyward %v printed a secret:\n%s", args, r)
		}
	}
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

// fails runs keyward and checks the exit code and that stderr says want.
func (c *cli) fails(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("keyward %v: want exit %d saying %q, got %s", args, code, want, r)
	}
	return r
}
