package test

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// onTerminal runs keyward under script(1), which gives it a pseudo
// terminal, and types lines into it one by one, as a person would.
func (c *cli) onTerminal(lines []string, args ...string) (string, int) {
	c.t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		c.t.Skip("script(1) (util-linux) not installed")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command(script, "-qec", binary+" "+strings.Join(quoted, " "), "/dev/null")
	var env []string
	for _, e := range c.env {
		if !strings.HasPrefix(e, "KEYWARD_PIN=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	cmd.Dir = c.dir
	in, err := cmd.StdinPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		// Each line once its prompt (text ending in ":") is shown, as a
		// person would type it.
		seen := 0
		for _, l := range lines {
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				text := out.String()
				if len(text) > seen && strings.HasSuffix(strings.TrimRight(text, " "), ":") {
					seen = len(text)
					break
				}
			}
			io.WriteString(in, l+"\n")
		}
		time.Sleep(700 * time.Millisecond)
		in.Close()
	}()
	err = cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	c.printed(fmt.Sprintf("keyward %v on a terminal", args), out.String())
	return out.String(), code
}

func TestPromptsHideInput(t *testing.T) {
	c := newCLI(t)
	pin := string(c.tok.PIN())
	out, code := c.onTerminal([]string{pin}, "key", "generate", "--role", "join")
	if code != 0 || !strings.Contains(out, "PIN: ") || !strings.Contains(out, "keyward/join/v1") || strings.Contains(out, pin) {
		t.Fatalf("PIN prompt (exit %d):\n%s", code, out)
	}

	dir := filepath.Join(c.dir, "shares")
	c.ok("ceremony", "split", "--threshold", "2", "--shares", "3", "--out-dir", dir)
	var shareLines []string
	for _, f := range []string{"share-3-of-3.txt", "share-1-of-3.txt"} {
		s := c.readShareLine(filepath.Join(dir, f))
		shareLines = append(shareLines, s)
		c.secret(s)
	}
	// The shares are read first, then the token asks for its PIN.
	out, code = c.onTerminal([]string{shareLines[0][:20] + "garbled", shareLines[0], shareLines[1], pin}, "ceremony", "combine", "--role", "master", "--prompt")
	if code != 0 || !strings.Contains(out, "type it again") || !strings.Contains(out, "keyward/master/v1  KCV") {
		t.Fatalf("combine --prompt (exit %d):\n%s", code, out)
	}
	for _, s := range append(shareLines, pin) {
		if strings.Contains(out, s) {
			t.Fatalf("a typed secret was echoed:\n%s", out)
		}
	}
}

func (c *cli) readShareLine(path string) string {
	c.t.Helper()
	text := c.readFile(path)
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "kwshare1:") {
			return l
		}
	}
	c.t.Fatalf("no share line in %s", path)
	return ""
}
