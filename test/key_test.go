package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/softhsm/softhsmtest"
)

var kcvPattern = regexp.MustCompile(`^[0-9A-F]{6}$`)

func TestGenerateListKCV(t *testing.T) {
	c := newCLI(t)
	out := c.ok("key", "generate", "--role", "master")
	if !strings.HasPrefix(out, "keyward/master/v1  KCV ") {
		t.Fatalf("generate printed %q", out)
	}
	c.ok("key", "generate", "--role", "master", "--bits", "128")
	c.ok("key", "generate", "--role", "join")

	var entries []map[string]any
	if err := json.Unmarshal([]byte(c.ok("--json", "key", "list")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("key list has %d entries: %v", len(entries), entries)
	}
	for _, field := range []string{"role", "version", "label", "bits", "kcv", "origin", "sensitive", "extractable"} {
		if _, ok := entries[0][field]; !ok {
			t.Errorf("key list --json lacks %q", field)
		}
	}
	if entries[1]["label"] != "keyward/master/v2" || entries[1]["bits"] != 128.0 || entries[2]["role"] != "join" ||
		entries[0]["sensitive"] != true || entries[0]["extractable"] != false || entries[0]["origin"] != "generated" {
		t.Errorf("key list: %v", entries)
	}

	kcv := strings.TrimSpace(c.ok("key", "kcv", "--role", "master", "--version", "1"))
	if !kcvPattern.MatchString(kcv) || !strings.Contains(out, kcv) {
		t.Errorf("kcv %q does not match generate's output %q", kcv, out)
	}
	if latest := strings.TrimSpace(c.ok("key", "kcv", "--role", "master")); latest != entries[1]["kcv"] {
		t.Errorf("kcv of the newest master is %q, list says %v", latest, entries[1]["kcv"])
	}
}

func TestDeviceErrors(t *testing.T) {
	c := newCLI(t)
	wrong := filepath.Join(c.dir, "wrong.pin")
	if err := os.WriteFile(wrong, []byte("0000\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r := c.run("", []string{"KEYWARD_PIN=", "KEYWARD_PIN_SOURCE=file:" + wrong}, "key", "list")
	// The PIN source is named once, after what the token says of retries
	// (where it says anything: NSS softokn does not).
	warning := "PIN incorrect (CKR_PIN_INCORRECT); warning: the token has counted wrong PINs"
	if !softhsmtest.PINCounted(t, c.tok) {
		warning = "PIN incorrect (CKR_PIN_INCORRECT)"
	}
	if r.code != 1 || !strings.Contains(r.stderr, warning) ||
		strings.Count(r.stderr, "check the PIN source (file:"+wrong+")") != 1 {
		t.Errorf("wrong PIN: %s", r)
	}
	r = c.run("", []string{"KEYWARD_TOKEN=no-such-token"}, "key", "list")
	if r.code != 1 || !strings.Contains(r.stderr, `token not found: no initialized token with label "no-such-token"`) {
		t.Errorf("missing token: %s", r)
	}
	r = c.run("", []string{"KEYWARD_PKCS11_MODULE=/opt/none/libpkcs11.so"}, "key", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "/opt/none/libpkcs11.so") {
		t.Errorf("missing module: %s", r)
	}
	r = c.run("", []string{"KEYWARD_PKCS11_MODULE=libsofthsm2.so"}, "key", "list")
	if r.code != 2 || !strings.Contains(r.stderr, "not absolute") {
		t.Errorf("relative module: %s", r)
	}
	r = c.run("", []string{"KEYWARD_PIN_SOURCE=1234"}, "key", "list")
	if r.code != 2 || strings.Contains(r.stderr, "1234") {
		t.Errorf("a PIN given as the source: %s", r)
	}
	c.fails(2, "--role is required", "key", "kcv")
	c.fails(2, `unknown key role "admin"`, "key", "generate", "--role", "admin")
	c.fails(2, "unknown command", "key", "frobnicate")
	c.fails(1, "128, 192 or 256", "key", "generate", "--role", "master", "--bits", "100")
}

func TestSoftHSMInit(t *testing.T) {
	c := newCLI(t)
	dir := filepath.Join(c.dir, "hsm")
	// No KEYWARD_PIN and no terminal: PINs are generated into 0600 files.
	r := c.run("", []string{"KEYWARD_PIN=", "SOFTHSM2_CONF="}, "softhsm", "init", "--label", "dev", "--dir", dir)
	if r.code != 0 {
		t.Fatal(r)
	}
	st, err := os.Stat(filepath.Join(dir, "dev.pin"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("PIN file: %v %v", st, err)
	}
	pin := c.readFile(filepath.Join(dir, "dev.pin"))
	if strings.Contains(r.stdout+r.stderr, strings.TrimSpace(pin)) {
		t.Fatal("softhsm init printed the PIN")
	}
	// The printed exports work as they are.
	var env []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			t.Fatalf("unexpected line %q", line)
		}
		env = append(env, kv)
	}
	env = append(env, "KEYWARD_PIN=")
	r = c.run("", env, "key", "generate", "--role", "join")
	if r.code != 0 || !strings.Contains(r.stdout, "keyward/join/v1") {
		t.Fatalf("generate with the printed exports: %s", r)
	}
}

// TestOpenSCCannotReadKeys asks an independent PKCS#11 client, OpenSC's
// pkcs11-tool, to read the value of keys keyward made: the device refuses.
func TestOpenSCCannotReadKeys(t *testing.T) {
	tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pkcs11-tool (OpenSC) is required in CI")
		}
		t.Skip("pkcs11-tool not installed (apt-get install opensc)")
	}
	c := newCLI(t)
	key := randomHex(32)
	c.secret(key)
	c.ok("key", "generate", "--role", "master")
	c.run(key, nil, "key", "import", "--role", "join", "--from", "-")
	for _, label := range []string{"keyward/master/v1", "keyward/join/v1"} {
		cmd := exec.Command(tool, "--module", c.tok.Module, "--token-label", c.tok.Label, "--login", "--pin", string(c.tok.PIN()),
			"--read-object", "--type", "secrkey", "--label", label)
		cmd.Env = c.env
		out, err := cmd.CombinedOutput()
		if err == nil || strings.Contains(strings.ToLower(string(out)), key[:16]) {
			t.Fatalf("pkcs11-tool read %s: %v\n%s", label, err, out)
		}
		// It does see the object and its attributes.
		list := exec.Command(tool, "--module", c.tok.Module, "--token-label", c.tok.Label, "--login", "--pin", string(c.tok.PIN()), "--list-objects", "--type", "secrkey")
		list.Env = c.env
		lo, err := list.CombinedOutput()
		if err != nil || !strings.Contains(string(lo), label) || !strings.Contains(string(lo), "never extractable") && label == "keyward/master/v1" {
			t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, lo)
		}
	}
}
