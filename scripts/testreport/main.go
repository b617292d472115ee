// Command testreport reads `go test -json` and prints what plain `go test`
// prints (each package's result, the whole output of a failed test) plus
// every skipped test with its reason, so a CI log says why each test did
// not run. It exits 1 when a test or a build failed.
//
//	go test -json ./... | go run ./scripts/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// event is one line of test2json's output.
type event struct {
	Action     string
	Package    string
	ImportPath string // build events
	Test       string
	Output     string
	Elapsed    float64
}

func main() {
	os.Exit(run())
}

func run() int {
	out := map[string][]string{} // output so far, by package and test
	var skips []string
	passed, failed := 0, 0
	buildFailed, pkgFailed := false, false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		var e event
		if err := json.Unmarshal(in.Bytes(), &e); err != nil {
			fmt.Println(in.Text()) // not JSON: a message of go itself
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Print(e.Output)
		case "build-fail":
			buildFailed = true
		case "output":
			out[key] = append(out[key], e.Output)
		case "skip":
			if e.Test != "" {
				line := fmt.Sprintf("SKIP  %s %s: %s", short(e.Package), e.Test, reason(out[key]))
				skips = append(skips, line)
				fmt.Println(line)
			} else {
				fmt.Printf("?     %s [no test files]\n", e.Package)
			}
			delete(out, key)
		case "pass":
			if e.Test != "" {
				passed++
			} else {
				fmt.Printf("ok    %s %.1fs\n", e.Package, e.Elapsed)
			}
			delete(out, key)
		case "fail":
			if e.Test != "" {
				failed++
			} else {
				pkgFailed = true
			}
			fmt.Print(strings.Join(out[key], ""))
			if e.Test == "" {
				fmt.Printf("FAIL  %s %.1fs\n", e.Package, e.Elapsed)
			}
			delete(out, key)
		}
	}
	fmt.Printf("\n%d tests passed, %d skipped, %d failed\n", passed, len(skips), failed)
	for _, s := range skips {
		fmt.Println(s)
	}
	if failed > 0 || buildFailed || pkgFailed || in.Err() != nil {
		return 1
	}
	return 0
}

// reason is what a skipped test printed, without go test's own lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

// short drops the module path from a package name.
func short(pkg string) string {
	return strings.TrimPrefix(pkg, "github.com/keyward/keyward/")
}
