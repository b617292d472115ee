package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// verbs lists every runnable command path of the CLI ("store put", …).
func verbs(prefix []string, cmds []*cli.Command) [][]string {
	var out [][]string
	for _, c := range cmds {
		path := append(append([]string(nil), prefix...), c.Name)
		if len(c.Subcommands) > 0 {
			out = append(out, verbs(path, c.Subcommands)...)
		} else {
			out = append(out, path)
		}
	}
	return out
}

// Every verb: an unknown flag is a usage error — exit 2, nothing on
// standard output, the message and the verb's usage on standard error.
func TestUnknownFlagIsUsageErrorEverywhere(t *testing.T) {
	dir := t.TempDir()
	all := verbs(nil, newApp().Commands)
	if len(all) < 30 {
		t.Fatalf("only %d verbs found: %v", len(all), all)
	}
	for _, v := range all {
		stdout, _ := os.Create(filepath.Join(dir, "out"))
		stderr, _ := os.Create(filepath.Join(dir, "err"))
		args := append(append([]string{"keyward"}, v...), "--no-such-flag")
		code := run(args, nil, stdout, stderr)
		stdout.Close()
		stderr.Close()
		out, _ := os.ReadFile(stdout.Name())
		errb, _ := os.ReadFile(stderr.Name())
		name := strings.Join(v, " ")
		if code != exitUsage || len(out) != 0 || !strings.Contains(string(errb), "flag provided but not defined: -no-such-flag") ||
			!strings.Contains(string(errb), "USAGE:") || !strings.Contains(string(errb), "keyward "+name) {
			t.Errorf("keyward %s --no-such-flag: exit %d\nstdout:\n%s\nstderr:\n%s", name, code, out, errb)
		}
	}
	// A mistake the verb finds itself shows the usage too.
	stdout, _ := os.Create(filepath.Join(dir, "out"))
	stderr, _ := os.Create(filepath.Join(dir, "err"))
	code := run([]string{"keyward", "store", "put"}, nil, stdout, stderr)
	errb, _ := os.ReadFile(stderr.Name())
	if code != exitUsage || !strings.HasPrefix(string(errb), "keyward: give exactly one record NAME\n") || !strings.Contains(string(errb), "keyward store put [command options] NAME") {
		t.Errorf("keyward store put: exit %d\nstderr:\n%s", code, errb)
	}
}
