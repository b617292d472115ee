package safefile

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// entries lists dir's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// bothWays runs f with unnamed files (where the OS has them) and with
// named ones.
func bothWays(t *testing.T, f func(t *testing.T)) {
	for _, named := range []bool{false, true} {
		t.Run("named="+strconv.FormatBool(named), func(t *testing.T) {
			old := forceNamed
			forceNamed = named
			defer func() { forceNamed = old }()
			f(t)
		})
	}
}

func TestCommitPutsTheWholeFileInPlace(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "out")
		if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := Create(dir, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("new content")); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != "old" {
			t.Fatalf("before Commit, %s holds %q, want the old content: %v", path, got, err)
		}
		if !forceNamed && runtime.GOOS == "linux" {
			if names := entries(t, dir); len(names) != 1 {
				t.Fatalf("an unnamed file is visible in the directory: %v", names)
			}
		}
		if err := f.Commit(path); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "new content" || st.Mode().Perm() != 0o600 {
			t.Fatalf("after Commit: %q, mode %v; want the new content, 0600", got, st.Mode().Perm())
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Fatalf("Commit left other files: %v", names)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("Close after Commit: %v", err)
		}
	})
}

func TestCloseLeavesNothing(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		dir := t.TempDir()
		f, err := Create(dir, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(bytes.Repeat([]byte("plaintext"), 1000)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if names := entries(t, dir); len(names) != 0 {
			t.Fatalf("Close left %v", names)
		}
		if err := f.Commit(filepath.Join(dir, "out")); err == nil {
			t.Fatal("Commit after Close succeeded")
		}
	})
}

func TestCommitOutsideTheDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Commit(filepath.Join(t.TempDir(), "out")); err == nil {
		t.Fatal("Commit into another directory succeeded")
	}
}

func TestRemoveStaleRemovesOnlyFilesOfDeadProcesses(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no true(1) to get a dead PID from")
	}
	deadName := prefix + strconv.Itoa(dead.Process.Pid) + "-0123456789abcdef" + suffix
	liveName := prefix + strconv.Itoa(os.Getppid()) + "-0123456789abcdef" + suffix
	otherNames := []string{".keyward-12345", "keyward-1-0123456789abcdef.tmp", prefix + "x-0123456789abcdef" + suffix}
	for _, n := range append([]string{deadName, liveName}, otherNames...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(dir)
	names := entries(t, dir)
	for _, n := range names {
		if n == deadName {
			t.Fatalf("the file of dead PID %d was kept", dead.Process.Pid)
		}
	}
	if len(names) != 1+len(otherNames) {
		t.Fatalf("RemoveStale removed more than the dead process's file: left %v", names)
	}
}

// TestSignalRemovesNamedFile stops a process holding a named temporary
// file with SIGINT and SIGTERM: the file is gone, and the process did not
// exit 0. With SIGKILL an unnamed file leaves nothing either.
func TestSignalRemovesTheFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX signals")
	}
	cases := []struct {
		sig   syscall.Signal
		named bool
	}{{syscall.SIGINT, true}, {syscall.SIGTERM, true}, {syscall.SIGHUP, true}, {syscall.SIGTERM, false}}
	if runtime.GOOS == "linux" {
		cases = append(cases, struct {
			sig   syscall.Signal
			named bool
		}{syscall.SIGKILL, false})
	}
	for _, tc := range cases {
		t.Run(tc.sig.String()+"/named="+strconv.FormatBool(tc.named), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldsAFile$")
			cmd.Env = append(os.Environ(), "SAFEFILE_HELPER_DIR="+dir)
			if tc.named {
				cmd.Env = append(cmd.Env, "KEYWARD_SAFEFILE_NAMED=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(out).ReadString('\n')
			if line != "holding\n" {
				cmd.Process.Kill()
				t.Fatalf("helper said %q (%v)", line, err)
			}
			if tc.named && len(entries(t, dir)) != 1 {
				t.Fatalf("the named file is not there while held: %v", entries(t, dir))
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				cmd.Process.Kill()
				t.Fatal(err)
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the helper exited 0 after %v", tc.sig)
			}
			if names := entries(t, dir); len(names) != 0 {
				t.Fatalf("after %v the directory holds %v", tc.sig, names)
			}
		})
	}
}

func TestHelperHoldsAFile(t *testing.T) {
	dir := os.Getenv("SAFEFILE_HELPER_DIR")
	if dir == "" {
		t.Skip("run by TestSignalRemovesTheFile")
	}
	f, err := Create(dir, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("plaintext"), 100000)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stdout.WriteString("holding\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
}
