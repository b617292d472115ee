package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const apiDocPath = "../docs/API.md"

// docBlock is a fenced code block of a Markdown file.
type docBlock struct {
	lang string
	line int // of its opening fence
	text string
}

// fencedBlocks returns the fenced code blocks of a Markdown file, in order.
func fencedBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []docBlock
	var cur *docBlock
	var body []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		fence := strings.HasPrefix(strings.TrimSpace(l), "```")
		switch {
		case cur == nil && fence:
			cur = &docBlock{lang: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "```")), line: n}
			body = nil
		case cur != nil && fence && strings.TrimSpace(l) == "```":
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			body = append(body, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// curlCommands returns the curl commands of shell text, continuation
// lines joined.
func curlCommands(text string) []string {
	joined := strings.ReplaceAll(text, "\\\n", " ")
	var out []string
	for _, l := range strings.Split(joined, "\n") {
		if strings.Contains(l, "curl ") {
			out = append(out, l)
		}
	}
	return out
}

// curlMethod is the HTTP method a curl command line uses.
func curlMethod(cmd string) string {
	if m := regexp.MustCompile(`(?:-X|--request)\s+([A-Z]+)`).FindStringSubmatch(cmd); m != nil {
		return m[1]
	}
	if regexp.MustCompile(`\s(-d|--data|--data-binary|--data-urlencode|--data-raw|-F|--form)\s`).MatchString(cmd) {
		return "POST"
	}
	return "GET"
}

// documentedOperations lists "METHOD /path" of docs/openapi.yaml.
func documentedOperations(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for p, item := range doc.Paths {
		for m := range item {
			switch m {
			case "get", "put", "post", "delete", "patch":
				ops = append(ops, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(ops)
	return ops
}

// TestAPIDocsExamples runs every ```sh block of docs/API.md, in order, in
// one bash against a real `keyward serve`, and checks that together they
// call every route docs/openapi.yaml documents.
func TestAPIDocsExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("docs/API.md examples need %s: %v", tool, err)
			}
			t.Skipf("docs/API.md examples need %s: %v", tool, err)
		}
	}
	var sh []docBlock
	for _, b := range fencedBlocks(t, apiDocPath) {
		switch b.lang {
		case "sh":
			sh = append(sh, b)
		case "bash", "shell", "zsh":
			t.Errorf("%s:%d: a ```%s block is not run; use ```sh for examples to run, ```console for ones that are not", apiDocPath, b.line, b.lang)
		}
	}
	if len(sh) == 0 {
		t.Fatalf("%s has no ```sh blocks", apiDocPath)
	}

	// Every documented route has a runnable example.
	var cmds []string
	for _, b := range sh {
		if strings.Contains(b.text, "|| true") {
			t.Errorf("%s:%d: an example hides its failure with || true", apiDocPath, b.line)
		}
		for _, c := range curlCommands(b.text) {
			if !strings.Contains(c, "--fail-with-body") && !strings.Contains(c, "-w '%{http_code}'") {
				t.Errorf("%s:%d: curl without --fail-with-body: %s", apiDocPath, b.line, c)
			}
			cmds = append(cmds, c)
		}
	}
	for _, op := range documentedOperations(t) {
		method, path, _ := strings.Cut(op, " ")
		re := regexp.MustCompile(`\$KEYWARD_URL` + regexp.MustCompile(`\\\{[a-z_]+\\\}`).ReplaceAllString(regexp.QuoteMeta(path), `[^"'\s?]+`) + `["'?\s]`)
		found := false
		for _, c := range cmds {
			found = found || (re.MatchString(c+" ") && curlMethod(c) == method)
		}
		if !found {
			t.Errorf("%s has no ```sh example of %s", apiDocPath, op)
		}
	}

	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	admin := c.adminToken()
	s := c.serve(nil)

	// One script: each block after a marker naming its line, so that a
	// failure says which example failed.
	var script strings.Builder
	for _, b := range sh {
		fmt.Fprintf(&script, "echo '--- %s:%d' >&2\n%s\n", filepath.Base(apiDocPath), b.line, b.text)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "api-examples.sh")
	if err := os.WriteFile(file, []byte(script.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", file)
	cmd.Dir = dir
	// HOME is the test's, so that no ~/.curlrc changes what curl does.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "KEYWARD_URL=" + s.url, "ADMIN_TOKEN=" + admin}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the ```sh examples of %s failed (%v); the last \"---\" line names the block:\n%s\nserver stderr:\n%s", apiDocPath, err, out, s.stderr)
	}

	// Every request hit a route, and only the example that shows a revoked
	// token being refused was answered with an error.
	var errs []string
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(l, `"msg":"request"`) {
			continue
		}
		if strings.Contains(l, `"route":"unmatched"`) || !regexp.MustCompile(`"status":[23]\d\d,`).MatchString(l) {
			errs = append(errs, l)
		}
	}
	if len(errs) != 1 || !strings.Contains(errs[0], `"route":"GET /access/api/v1/tokens/me","status":401`) {
		t.Errorf("the examples met errors other than the one 401 shown:\n%s", strings.Join(errs, "\n"))
	}
}
