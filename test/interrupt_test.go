package test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDecryptInterrupted stops `keyward decrypt` half-way through a large
// file with SIGINT, SIGTERM and SIGKILL: it never exits 0 and leaves no
// plaintext, named or not, in the output directory (or in TMPDIR when
// decrypting to standard output). With named temporary files (the
// fallback where the OS has no unnamed ones) a SIGKILLed run's file is
// removed by the next run.
func TestDecryptInterrupted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watches the process through /proc, which only Linux has")
	}
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	plain := make([]byte, 16<<20)
	rand.Read(plain)
	in := filepath.Join(c.dir, "big.tar")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	enc := filepath.Join(c.dir, "big.kw")
	c.ok("encrypt", "--in", in, "--out", enc)
	ct, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		named  bool
		stdout bool
	}{
		{"SIGINT", syscall.SIGINT, false, false},
		{"SIGTERM", syscall.SIGTERM, false, false},
		{"SIGKILL", syscall.SIGKILL, false, false},
		{"SIGTERM to stdout", syscall.SIGTERM, false, true},
		{"SIGKILL to stdout", syscall.SIGKILL, false, true},
		{"SIGINT named", syscall.SIGINT, true, false},
		{"SIGTERM named", syscall.SIGTERM, true, false},
		{"SIGKILL named", syscall.SIGKILL, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir, tmpDir := t.TempDir(), t.TempDir()
			out := filepath.Join(outDir, "big.out")
			args := []string{"decrypt", "--in", "-", "--out", out}
			watch := outDir
			if tc.stdout {
				args, watch = []string{"decrypt"}, tmpDir
			}
			cmd := exec.Command(binary, args...)
			cmd.Env = append(append([]string(nil), c.env...), "TMPDIR="+tmpDir)
			if tc.named {
				cmd.Env = append(cmd.Env, "KEYWARD_SAFEFILE_NAMED=1")
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Half the ciphertext, then wait until plaintext is on disk.
			go stdin.Write(ct[:len(ct)/2])
			waitForPlaintext(t, cmd.Process.Pid, watch)
			if err := cmd.Process.Signal(tc.sig); err != nil {
				cmd.Process.Kill()
				t.Fatal(err)
			}
			err = cmd.Wait()
			stdin.Close()
			c.printed("keyward decrypt (interrupted)", stderr.String())
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("keyward decrypt exited 0 after %v", tc.sig)
			}
			left := listDir(t, watch)
			if tc.named && tc.sig == syscall.SIGKILL {
				// Nothing can run on SIGKILL; the next run cleans up.
				if len(left) != 1 {
					t.Fatalf("want the killed run's temporary file, have %v", left)
				}
				c.run("", []string{"KEYWARD_SAFEFILE_NAMED=1"}, "decrypt", "--in", enc, "--out", filepath.Join(outDir, "again.out"))
				left = listDir(t, outDir)
				if len(left) != 1 || left[0] != "again.out" {
					t.Fatalf("the next decrypt left %v, want only again.out", left)
				}
				return
			}
			if len(left) != 0 {
				t.Fatalf("after %v, %s holds %v", tc.sig, watch, left)
			}
		})
	}
}

// waitForPlaintext waits until process pid holds an open file in dir
// with something written to it.
func waitForPlaintext(t *testing.T, pid int, dir string) {
	t.Helper()
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, dir+"/") {
				continue
			}
			if st, err := os.Stat(filepath.Join(fdDir, fd.Name())); err == nil && st.Size() > 1<<20 {
				return
			}
		}
	}
	t.Fatalf("keyward decrypt (pid %d) wrote no plaintext into %s within a minute", pid, dir)
}

func listDir(t *testing.T, dir string) []string {
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
