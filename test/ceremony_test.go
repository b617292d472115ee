package test

import (
	"crypto/aes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/softhsm/softhsmtest"
	"gopkg.in/yaml.v3"
)

// goKCV is the KCV computed here, independently of keyward and the device.
func goKCV(t *testing.T, hexKey string) string {
	t.Helper()
	key, err := hex.DecodeString(hexKey)
	if err != nil {
		t.Fatal(err)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 16)
	b.Encrypt(block, block)
	return strings.ToUpper(hex.EncodeToString(block[:3]))
}

// randomHex is what `openssl rand -hex n` prints.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *cli) writeFile(name, content string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func mustExist(t *testing.T, path, content string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || string(got) != content {
		t.Fatalf("%s changed or vanished (%v)", path, err)
	}
}

var labelKCV = regexp.MustCompile(`(keyward/\w+/v\d+)  KCV ([0-9A-F]{6})`)

func TestImportHexFile(t *testing.T) {
	c := newCLI(t)
	key := randomHex(32)
	c.secret(key)
	content := key + "\n"
	file := c.writeFile("master.hex", content)

	// Failures leave the file as it was and import nothing.
	r := c.run("", nil, "key", "import", "--role", "master", "--from", file, "--expect-kcv", "000000", "--remove-source")
	if r.code != 3 || !strings.Contains(r.stderr, "expected 000000") || !strings.Contains(r.stderr, goKCV(t, key)) {
		t.Fatalf("wrong --expect-kcv: %s", r)
	}
	mustExist(t, file, content)
	bad := c.writeFile("bad.hex", key[:63]+"z\n")
	c.fails(1, "character 64 is not a hex digit", "key", "import", "--role", "master", "--from", bad, "--remove-source")
	mustExist(t, bad, key[:63]+"z\n")
	short := c.writeFile("short.hex", key[:40])
	c.fails(1, "40 hex digits", "key", "import", "--role", "join", "--from", short, "--remove-source")
	mustExist(t, short, key[:40])
	r = c.run("", []string{"KEYWARD_PIN=wrong-pin"}, "key", "import", "--role", "master", "--from", file, "--remove-source")
	if r.code != 1 || !strings.Contains(r.stderr, "PIN incorrect") {
		t.Fatalf("wrong PIN: %s", r)
	}
	mustExist(t, file, content)
	if out := c.ok("--json", "key", "list"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("failed imports left keys: %s", out)
	}

	out := c.ok("key", "import", "--role", "master", "--from", file, "--expect-kcv", strings.ToLower(goKCV(t, key)), "--remove-source")
	m := labelKCV.FindStringSubmatch(out)
	if m == nil || m[1] != "keyward/master/v1" || m[2] != goKCV(t, key) || !strings.Contains(out, "imported") {
		t.Fatalf("import printed %q, want KCV %s", out, goKCV(t, key))
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("--remove-source left the key file")
	}

	// From standard input, a 128-bit join key.
	join := randomHex(16)
	c.secret(join)
	r = c.run("  "+join+"\n", nil, "key", "import", "--role", "join", "--from", "-")
	if r.code != 0 || !strings.Contains(r.stdout, "keyward/join/v1  KCV "+goKCV(t, join)) {
		t.Fatalf("stdin import: %s", r)
	}
	c.fails(2, "cannot remove standard input", "key", "import", "--role", "join", "--from", "-", "--remove-source")
	c.fails(2, "exactly one of", "key", "import", "--role", "join")
	c.fails(1, "48 hex digits", "key", "import", "--role", "join", "--from", c.writeFile("j192", randomHex(24)))
}

func TestImportSystemYAML(t *testing.T) {
	c := newCLI(t)
	master, join := randomHex(32), randomHex(32)
	c.secret(master)
	c.secret(join)
	text := "# platform configuration\nshared:\n  security:\n    masterKey: " + master + "\n    joinKey: " + join +
		"   # join key\n    other: kept\n  node:\n    id: node-1  # this node\n"
	path := c.writeFile("system.yaml", text)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}

	out := c.ok("key", "import", "--role", "all", "--from-system-yaml", path, "--scrub")
	if !strings.Contains(out, "keyward/master/v1  KCV "+goKCV(t, master)) || !strings.Contains(out, "keyward/join/v1  KCV "+goKCV(t, join)) {
		t.Fatalf("import printed %q", out)
	}
	after := []byte(c.readFile(path))
	var doc map[string]any
	if err := yaml.Unmarshal(after, &doc); err != nil {
		t.Fatalf("scrubbed system.yaml no longer parses: %v", err)
	}
	sec := doc["shared"].(map[string]any)["security"].(map[string]any)
	if _, ok := sec["masterKey"]; ok || sec["joinKey"] != nil || sec["other"] != "kept" {
		t.Fatalf("scrubbed security section: %v", sec)
	}
	if !strings.Contains(string(after), "# platform configuration") || !strings.Contains(string(after), "id: node-1  # this node") {
		t.Fatalf("scrub lost comments:\n%s", after)
	}
	if st, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o640 {
		t.Errorf("scrub changed the mode to %v", st.Mode())
	}
	// A system.yaml with a malformed key is refused whole and left alone.
	broken := "security:\n  masterKey: " + master[:60] + "\n"
	bp := c.writeFile("broken.yaml", broken)
	c.fails(1, "60 hex digits", "key", "import", "--role", "master", "--from-system-yaml", bp, "--scrub")
	mustExist(t, bp, broken)
	// --role all means both: with only one there, nothing is imported
	// and nothing scrubbed (issue 10, defect 5).
	m2 := randomHex(32)
	c.secret(m2)
	half := "shared:\n  security:\n    masterKey: " + m2 + "\n"
	hp := c.writeFile("half.yaml", half)
	c.fails(1, "has no shared.security.joinKey, and both keys were asked for; nothing was imported", "key", "import", "--role", "all", "--from-system-yaml", hp, "--scrub")
	mustExist(t, hp, half)
	// A key given twice is refused, not first-wins.
	j2, j3 := randomHex(32), randomHex(32)
	c.secret(j2)
	c.secret(j3)
	twice := "shared:\n  security:\n    joinKey: " + j2 + "\n    joinKey: " + j3 + "\n"
	tp := c.writeFile("twice.yaml", twice)
	c.fails(1, `"joinKey" is given twice in one mapping (lines 3 and 4)`, "key", "import", "--role", "join", "--from-system-yaml", tp, "--scrub")
	mustExist(t, tp, twice)
	if out := c.ok("key", "list"); strings.Contains(out, "/v3") || strings.Contains(out, "master/v2") {
		t.Fatalf("a refused system.yaml imported a key:\n%s", out)
	}
}

func TestImportComponents(t *testing.T) {
	c := newCLI(t)
	var paths []string
	parts := []string{randomHex(32), randomHex(32), randomHex(32)}
	key := make([]byte, 32)
	for i, p := range parts {
		c.secret(p)
		b, err := hex.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		for j := range key {
			key[j] ^= b[j]
		}
		paths = append(paths, c.writeFile("component"+string(rune('1'+i)), p+"\n"))
	}
	c.secret(hex.EncodeToString(key))
	args := []string{"key", "import", "--role", "master"}
	for _, p := range paths {
		args = append(args, "--component", p)
	}
	r := c.run("", nil, args...)
	if r.code != 0 {
		t.Fatal(r)
	}
	for i, p := range parts {
		if !strings.Contains(r.stderr, "component "+string(rune('1'+i))+" ("+paths[i]+"): KCV "+goKCV(t, p)) {
			t.Errorf("component %d KCV not shown: %s", i+1, r)
		}
	}
	if !strings.Contains(r.stdout, "keyward/master/v1  KCV "+goKCV(t, hex.EncodeToString(key))) {
		t.Fatalf("combined key: %s", r)
	}
	c.fails(2, "at least 2 components", "key", "import", "--role", "master", "--component", paths[0])
}

func TestCheckAndDestroy(t *testing.T) {
	c := newCLI(t)
	key := randomHex(32)
	c.secret(key)
	c.run(key, nil, "key", "import", "--role", "join", "--from", "-")
	kcv := goKCV(t, key)
	if out := c.ok("key", "check", "--role", "join", "--expect-kcv", kcv); !strings.Contains(out, "matches") {
		t.Fatal(out)
	}
	r := c.fails(3, "key check value mismatch", "key", "check", "--role", "join", "--expect-kcv", "ABCDEF")
	if !strings.Contains(r.stderr, kcv) || !strings.Contains(r.stderr, "ABCDEF") {
		t.Fatalf("mismatch must show both values: %s", r)
	}
	c.fails(2, "6 hex digits", "key", "check", "--role", "join", "--expect-kcv", "XYZ")
	c.fails(2, "--version is required", "key", "destroy", "--role", "join")
	// The registry protects a version in use: rotate, retire, then destroy.
	c.fails(1, "join key v1 is active", "key", "destroy", "--role", "join", "--version", "1", "--yes")
	c.fails(1, "is the active version", "key", "retire", "--role", "join", "--version", "1")
	c.ok("key", "rotate", "--role", "join")
	c.ok("key", "retire", "--role", "join", "--version", "1")
	// No terminal and no --yes: nothing is destroyed.
	c.fails(2, "pass --yes", "key", "destroy", "--role", "join", "--version", "1")
	c.ok("key", "kcv", "--role", "join", "--version", "1")
	c.ok("key", "destroy", "--role", "join", "--version", "1", "--yes")
	c.fails(1, "v1 (keyward/join/v1) is not on token", "key", "kcv", "--role", "join", "--version", "1")
}

func TestSplitAndCombine(t *testing.T) {
	c := newCLI(t)
	dir := filepath.Join(c.dir, "shares")
	var split struct {
		KCV    string `json:"kcv"`
		Shares []struct {
			Index int    `json:"index"`
			File  string `json:"file"`
		} `json:"shares"`
	}
	if err := json.Unmarshal([]byte(c.ok("--json", "ceremony", "split", "--threshold", "3", "--shares", "5", "--out-dir", dir)), &split); err != nil {
		t.Fatal(err)
	}
	if len(split.Shares) != 5 || !kcvPattern.MatchString(split.KCV) {
		t.Fatalf("split: %+v", split)
	}
	for _, s := range split.Shares {
		if st, err := os.Stat(s.File); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("share file %s: %v", s.File, err)
		}
	}
	if out := c.ok("--json", "key", "list"); strings.TrimSpace(out) != "[]" {
		t.Fatal("split imported the key")
	}
	share := func(i int) string { return split.Shares[i-1].File }

	// Combine into a second token (another node).
	other := softhsmtest.NewTestToken(t)
	node2 := append(other.Env(), "KEYWARD_PIN="+string(other.PIN()))
	r := c.run("", node2, "ceremony", "combine", "--role", "master", "--share", share(2), "--share", share(4))
	if r.code != 1 || !strings.Contains(r.stderr, "needs 3 shares, got 2") || !strings.Contains(r.stderr, "nothing was imported") {
		t.Fatalf("2 shares: %s", r)
	}
	// A damaged share is refused on its own.
	text := c.readFile(share(3))
	i := strings.LastIndex(text, ":") - 2
	damaged := []byte(text)
	damaged[i] = map[bool]byte{true: '1', false: '0'}[damaged[i] == '0']
	dp := c.writeFile("damaged.txt", string(damaged))
	r = c.run("", node2, "ceremony", "combine", "--role", "master", "--share", share(1), "--share", dp, "--share", share(5))
	if r.code != 1 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("damaged share: %s", r)
	}
	r = c.run("", node2, "--json", "key", "list")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a failed combine imported something: %s", r)
	}
	r = c.run("", node2, "ceremony", "combine", "--role", "master", "--share", share(1), "--share", share(3), "--share", share(5))
	if r.code != 0 || !strings.Contains(r.stdout, "keyward/master/v1  KCV "+split.KCV) {
		t.Fatalf("combine 1,3,5: %s", r)
	}
	// Any other three give the same key, in the first token too.
	c.ok("ceremony", "combine", "--role", "master", "--share", share(5), "--share", share(2), "--share", share(4))
	c.ok("key", "check", "--role", "master", "--expect-kcv", split.KCV)
}

func TestDoctor(t *testing.T) {
	c := newCLI(t)
	r := c.run("", nil, "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "ok    login works") || !strings.Contains(r.stdout, "FAIL  a master key is present") {
		t.Fatalf("doctor on an empty token: %s", r)
	}
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	out := c.ok("doctor")
	if strings.Contains(out, "FAIL") || !strings.Contains(out, "keyward/join/v1") || !strings.Contains(out, "sensitive=true extractable=false") {
		t.Fatalf("doctor: %s", out)
	}
	r = c.run("", []string{"KEYWARD_PIN=wrong"}, "doctor")
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  login works") {
		t.Fatalf("doctor with a wrong PIN: %s", r)
	}
}

// TestNoSecretInAnyOutput runs every verb with known key material and
// searches all output for it (the harness checks every run; this test makes
// sure every verb ran).
func TestNoSecretInAnyOutput(t *testing.T) {
	c := newCLI(t)
	master, join := randomHex(32), randomHex(16)
	c.secret(master)
	c.secret(join)
	c.secret(master[:16])
	c.run(master, nil, "key", "import", "--role", "master", "--from", "-")
	c.run("", nil, "key", "import", "--role", "join", "--from", c.writeFile("j", join))
	y := c.writeFile("system.yaml", "security:\n  masterKey: "+master+"\n")
	dir := filepath.Join(c.dir, "s")
	for _, args := range [][]string{
		{"key", "import", "--role", "master", "--from-system-yaml", y, "--scrub"},
		{"key", "generate", "--role", "signing", "--type", "ed25519"},
		{"key", "list"}, {"--json", "key", "list"},
		{"key", "kcv", "--role", "master"}, {"key", "check", "--role", "join", "--expect-kcv", goKCV(t, join)},
		{"key", "check", "--role", "join", "--expect-kcv", "000000"},
		{"ceremony", "split", "--threshold", "2", "--shares", "3", "--out-dir", dir},
		{"doctor"}, {"key", "destroy", "--role", "master", "--version", "2", "--yes"},
		{"key", "import", "--role", "master", "--from", c.writeFile("bad", master[:62]+"zz")},
	} {
		c.run("", nil, args...)
	}
	for _, f := range []string{"share-1-of-3.txt", "share-2-of-3.txt"} {
		c.run("", nil, "ceremony", "combine", "--role", "join", "--share", filepath.Join(dir, f))
	}
}

func (c *cli) readFile(path string) string {
	c.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

// An all-zero key, or components that cancel out, never become a key
// (issue 10, defect 2); the files stay as they were.
func TestWeakKeysRefused(t *testing.T) {
	c := newCLI(t)
	zero := c.writeFile("zero.hex", strings.Repeat("0", 64)+"\n")
	r := c.run("", nil, "key", "import", "--role", "master", "--from", zero, "--remove-source")
	if r.code == 0 || !strings.Contains(r.stderr, "weak key refused: all 32 bytes are zero") {
		t.Fatalf("all-zero key: %s", r)
	}
	mustExist(t, zero, strings.Repeat("0", 64)+"\n")
	comp := randomHex(32)
	c.secret(comp)
	a, b := c.writeFile("a.hex", comp), c.writeFile("b.hex", comp)
	r = c.run("", nil, "key", "import", "--role", "join", "--component", a, "--component", b, "--remove-source")
	if r.code == 0 || !strings.Contains(r.stderr, "components 1 and 2 are identical") {
		t.Fatalf("identical components: %s", r)
	}
	mustExist(t, a, comp)
	mustExist(t, b, comp)
	if out := c.ok("--json", "key", "list"); strings.Contains(out, "keyward/") {
		t.Fatalf("a weak key reached the device: %s", out)
	}
}
