package bootstrap_test

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/bootstrap"
	"github.com/keyward/keyward/internal/testmain"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/softhsm/softhsmtest"
	"github.com/keyward/keyward/tokens"
)

func TestMain(m *testing.M) { testmain.Run(m) }

// dropRequest writes generate.token.json whole, as an installer would.
func dropRequest(t *testing.T, home, content string) {
	t.Helper()
	p := filepath.Join(home, "bootstrap", "keys", "generate.token.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(p+".tmp", []byte(content), 0o600); err != nil {
		t.Error(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Error(err)
	}
}

// A request dropped while the previous one is answered (an installer
// that asks again as soon as token.json appears) is answered next, never
// removed unread: keyward bootstrap --watch lost it under load.
func TestIssueTokenKeepsARequestDroppedMeanwhile(t *testing.T) {
	home := t.TempDir()
	var again atomic.Bool // the token clock drops the next request mid-issue
	n, err := node.Open(t.Context(), node.Config{Device: softhsmtest.NewTestToken(t).Config(), Home: home,
		Tokens: tokens.Options{Now: func() time.Time {
			if again.CompareAndSwap(true, false) {
				dropRequest(t, home, `{"subject":"second"}`)
			}
			return time.Now()
		}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.GenerateKey(t.Context(), keyring.Join, node.KeySpec{}); err != nil {
		t.Fatal(err)
	}

	dropRequest(t, home, `{}`)
	again.Store(true)
	first, err := bootstrap.IssueToken(t.Context(), n.Tokens(), home)
	if err != nil || again.Load() {
		t.Fatalf("first request: %v (second dropped: %v)", err, !again.Load())
	}
	if !bootstrap.Pending(home) {
		t.Fatal("the request dropped while the first was answered was removed unread")
	}
	second, err := bootstrap.IssueToken(t.Context(), n.Tokens(), home)
	if err != nil {
		t.Fatal(err)
	}
	for tf, sub := range map[bootstrap.TokenFile]string{first: "admin", second: "second"} {
		c, err := n.Tokens().Verify(t.Context(), tf.Token, tokens.VerifyOptions{Audience: "keyward@n1"})
		if err != nil || c.Subject != sub {
			t.Fatalf("token for %s: %+v, %v", sub, c, err)
		}
	}
	if bootstrap.Pending(home) {
		t.Fatal("a request is still pending after both were answered")
	}
}
