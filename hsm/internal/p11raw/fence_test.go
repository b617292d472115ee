package p11raw

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestPinnedIsGoModVersion: go.mod requires miekg/pkcs11 at exactly the
// version whose layout Load reads, and replaces it with nothing.
func TestPinnedIsGoModVersion(t *testing.T) {
	b, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == Module {
			found = true
			if f[1] != Pinned {
				t.Errorf("go.mod requires %s %s; p11raw reads the layout of %s: check struct ctx in its pkcs11.go, then move Pinned", Module, f[1], Pinned)
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "replace") && strings.Contains(line, Module) {
			t.Errorf("go.mod replaces %s: %s", Module, line)
		}
	}
	if !found {
		t.Errorf("go.mod does not require %s", Module)
	}
}

// TestFenceOpensForThisBuild: the repository's own build links the pinned
// version, so the list is handed out (a test binary is told by the path
// of miekg's source).
func TestFenceOpensForThisBuild(t *testing.T) {
	if err := fenceOnce(); err != nil {
		t.Fatal(err)
	}
}

func TestFence(t *testing.T) {
	dep := func(version string, replace *debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Deps: []*debug.Module{
			{Path: "golang.org/x/sys", Version: "v0.49.0"},
			{Path: Module, Version: version, Replace: replace},
		}}
	}
	cached := "/root/go/pkg/mod/" + Module + "@" + Pinned + "/pkcs11.go"
	for _, c := range []struct {
		name string
		bi   *debug.BuildInfo
		file string
		open bool
	}{
		{"pinned", dep(Pinned, nil), "", true},
		{"another version", dep("v1.1.3", nil), cached, false},
		{"replaced by a fork", dep(Pinned, &debug.Module{Path: "example.com/fork/pkcs11", Version: Pinned}), cached, false},
		{"replaced by a directory", dep(Pinned, &debug.Module{Path: "../pkcs11"}), cached, false},
		{"not linked", &debug.BuildInfo{Deps: []*debug.Module{{Path: "golang.org/x/sys", Version: "v0.49.0"}}}, cached, false},
		{"no build information", nil, cached, false},
		{"test binary, module cache", &debug.BuildInfo{}, cached, true},
		{"test binary, -trimpath", &debug.BuildInfo{}, Module + "@" + Pinned + "/pkcs11.go", true},
		{"test binary, another version", &debug.BuildInfo{}, "/root/go/pkg/mod/" + Module + "@v1.1.3/pkcs11.go", false},
		{"test binary, replaced by a directory", &debug.BuildInfo{}, "/src/pkcs11/pkcs11.go", false},
		{"test binary, replaced by a fork", &debug.BuildInfo{}, "/root/go/pkg/mod/example.com/fork/pkcs11@" + Pinned + "/pkcs11.go", false},
		{"test binary, vendored", &debug.BuildInfo{}, "/src/keyward/vendor/" + Module + "/pkcs11.go", false},
	} {
		err := fence(c.bi, c.file)
		if (err == nil) != c.open {
			t.Errorf("%s: fence says %v, want open=%v", c.name, err, c.open)
		}
	}
}
