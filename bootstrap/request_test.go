package bootstrap

import (
	"os"
	"testing"
)

// keysHome is a $KEYWARD_HOME with its bootstrap/keys directory.
func keysHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(keysDir(home), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

func put(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func held(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(none)"
	}
	return string(b)
}

// A request a stopped process had moved aside is answered before a newer
// one, which waits its turn.
func TestClaimResumesFirst(t *testing.T) {
	home := keysHome(t)
	put(t, answeringPath(home), `{"subject":"left"}`)
	put(t, requestPath(home), `{"subject":"new"}`)
	if p, err := claim(home); err != nil || held(p) != `{"subject":"left"}` {
		t.Fatalf("claimed %s (%q): %v", p, held(p), err)
	}
	if held(requestPath(home)) != `{"subject":"new"}` {
		t.Fatalf("the newer request: %q", held(requestPath(home)))
	}
	if _, err := claim(keysHome(t)); !os.IsNotExist(err) {
		t.Fatalf("claim without a request: %v", err)
	}
}

// A request that cannot be answered goes back for its writer to fix,
// unless a newer one was dropped meanwhile: the newer one stays.
func TestUnclaim(t *testing.T) {
	home := keysHome(t)
	put(t, requestPath(home), `{"subject":`)
	if _, err := claim(home); err != nil {
		t.Fatal(err)
	}
	unclaim(home)
	if held(requestPath(home)) != `{"subject":` || held(answeringPath(home)) != "(none)" {
		t.Fatalf("put back: %q, aside: %q", held(requestPath(home)), held(answeringPath(home)))
	}

	if _, err := claim(home); err != nil {
		t.Fatal(err)
	}
	put(t, requestPath(home), `{"subject":"newer"}`)
	unclaim(home)
	if held(requestPath(home)) != `{"subject":"newer"}` || held(answeringPath(home)) != "(none)" {
		t.Fatalf("with a newer request: %q, aside: %q", held(requestPath(home)), held(answeringPath(home)))
	}
}
