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
		stdout, stderr := outFile(t, dir, "out"), outFile(t, dir, "err")
		args := append(append([]string{"keyward"}, v...), "--no-such-flag")
		code := run(args, nil, stdout, stderr)
		out, errb := readBack(t, stdout), readBack(t, stderr)
		name := strings.Join(v, " ")
		if code != exitUsage || len(out) != 0 || !strings.Contains(string(errb), "flag provided but not defined: -no-such-flag") ||
			!strings.Contains(string(errb), "USAGE:") || !strings.Contains(string(errb), "keyward "+name) {
			t.Errorf("keyward %s --no-such-flag: exit %d\nstdout:\n%s\nstderr:\n%s", name, code, out, errb)
		}
	}
	// A mistake the verb finds itself shows the usage too.
	stdout, stderr := outFile(t, dir, "out"), outFile(t, dir, "err")
	code := run([]string{"keyward", "store", "put"}, nil, stdout, stderr)
	errb := readBack(t, stderr)
	if code != exitUsage || !strings.HasPrefix(string(errb), "keyward: give exactly one record NAME\n") || !strings.Contains(string(errb), "keyward store put [command options] NAME") {
		t.Errorf("keyward store put: exit %d\nstderr:\n%s", code, errb)
	}
}

// outFile creates dir/name for a run's output.
func outFile(t *testing.T, dir, name string) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// readBack closes f and returns what was written to it.
func readBack(t *testing.T, f *os.File) []byte {
	t.Helper()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}
