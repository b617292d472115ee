package test

import (
	"debug/buildinfo"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/jfrog/jfrog-client-go/access"
	accessauth "github.com/jfrog/jfrog-client-go/access/auth"
	"github.com/jfrog/jfrog-client-go/access/services"
	"github.com/jfrog/jfrog-client-go/auth"
	"github.com/jfrog/jfrog-client-go/config"
	jfrogutils "github.com/jfrog/jfrog-client-go/utils"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"golang.org/x/oauth2"
)

// Real clients nobody here wrote, unchanged, against a real keyward serve:
// JFrog's Go client, golang.org/x/oauth2, lestrrat-go/jwx and go-oidc.
// They live in this package, not a test/interop of their own, because
// they need this package's harness (the race-built binary, a SoftHSM2
// token per test, keyward serve started and waited for); the clients are
// test-only dependencies (TestShippedBinaryLinksNoTestCode).

// interopServer is keyward serve with master and join keys, signing key
// pairs of the types asked that the device can make (it says which it
// cannot), and an admin token.
func interopServer(t *testing.T, signing ...string) (*cli, *served, string, map[string]bool) {
	t.Helper()
	c := newCLI(t)
	c.ok("key", "generate", "--role", "master")
	c.ok("key", "generate", "--role", "join")
	made := map[string]bool{}
	for _, kind := range signing {
		r := c.run("", nil, "key", "generate", "--role", "signing", "--type", kind)
		switch {
		case r.code == 0:
			made[kind] = true
		case strings.Contains(r.stderr, "not supported"):
			t.Logf("%s: this device cannot make it: %s", kind, strings.TrimSpace(r.stderr))
		default:
			t.Fatalf("key generate --type %s: %s", kind, r)
		}
	}
	admin := c.adminToken()
	return c, c.serve(nil), admin, made
}

func TestInteropJFrogClient(t *testing.T) {
	_, s, admin, _ := interopServer(t)
	details := accessauth.NewAccessDetails()
	details.SetUrl(s.url + "/access/")
	details.SetAccessToken(admin)
	cfg, err := config.NewConfigBuilder().SetServiceDetails(details).SetHttpRetries(0).Build()
	if err != nil {
		t.Fatal(err)
	}
	jf, err := access.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if body, err := jf.Ping(); err != nil || string(body) != "OK" {
		t.Fatalf("Ping: %q %v", body, err)
	}
	created, err := jf.CreateAccessToken(services.CreateTokenParams{
		CommonTokenParams: auth.CommonTokenParams{Scope: "applied-permissions/user", ExpiresIn: jfrogutils.Pointer(uint(600)), Refreshable: jfrogutils.Pointer(true)},
		Username:          "jenkins", Description: "nightly"})
	if err != nil {
		t.Fatalf("CreateAccessToken: %v", err)
	}
	if created.AccessToken == "" || created.RefreshToken == "" || created.TokenId == "" || created.ExpiresIn == nil || *created.ExpiresIn != 600 {
		t.Fatalf("CreateAccessToken answered %+v", created)
	}
	rec := s.json(200, "GET", "/access/api/v1/tokens/"+created.TokenId, admin, nil)
	if rec["subject"] != "jenkins" || rec["description"] != "nightly" || rec["refreshable"] != true {
		t.Fatalf("the created token's record: %v", rec)
	}
	// The client's refresh: the refresh token and the access token it was
	// issued with (also as the Bearer credential).
	refreshed, err := jf.RefreshAccessToken(services.CreateTokenParams{CommonTokenParams: auth.CommonTokenParams{
		RefreshToken: created.RefreshToken, AccessToken: created.AccessToken}})
	if err != nil {
		t.Fatalf("RefreshAccessToken: %v", err)
	}
	if refreshed.AccessToken == "" || refreshed.AccessToken == created.AccessToken || refreshed.RefreshToken == "" {
		t.Fatalf("RefreshAccessToken answered %+v", refreshed)
	}
	if code, _ := s.call("GET", "/access/api/v1/tokens/me", created.AccessToken, nil); code != http.StatusUnauthorized {
		t.Errorf("the access token refreshed still authenticates: %d", code)
	}
	if _, err := jf.RefreshAccessToken(services.CreateTokenParams{CommonTokenParams: auth.CommonTokenParams{RefreshToken: created.RefreshToken}}); err == nil {
		t.Error("a refresh token used twice refreshed again")
	}
}

func TestInteropOAuth2Refresh(t *testing.T) {
	_, s, admin, _ := interopServer(t)
	grant := s.json(200, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "app", "scope": "store:read", "refreshable": true})
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: s.url + "/access/api/v1/tokens", AuthStyle: oauth2.AuthStyleInParams}}
	expired := &oauth2.Token{AccessToken: grant["access_token"].(string), RefreshToken: grant["refresh_token"].(string), Expiry: time.Now().Add(-time.Minute)}
	tok, err := conf.TokenSource(t.Context(), expired).Token()
	if err != nil {
		t.Fatalf("oauth2 refresh: %v", err)
	}
	if tok.AccessToken == expired.AccessToken || tok.RefreshToken == "" || tok.Type() != "Bearer" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Fatalf("oauth2 refresh gave %+v", tok)
	}
	if code, _ := s.call("GET", "/api/v1/store", tok.AccessToken, nil); code != http.StatusOK {
		t.Errorf("the refreshed token: %d", code)
	}
	// The used refresh token again: RFC 6749's invalid_grant, which the
	// client reports as its error code.
	_, err = conf.TokenSource(t.Context(), expired).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != http.StatusBadRequest {
		t.Fatalf("a refresh token used twice: %v", err)
	}
}

func TestInteropJWXVerifiesWithJWKS(t *testing.T) {
	_, s, admin, made := interopServer(t, "ec-p256", "rsa-2048", "ed25519")
	set, err := jwk.Fetch(t.Context(), s.url+"/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("jwk.Fetch: %v", err)
	}
	for _, tc := range []struct{ alg, kind string }{{"ES256", "ec-p256"}, {"RS256", "rsa-2048"}, {"PS256", "rsa-2048"}, {"EdDSA", "ed25519"}} {
		alg := tc.alg
		if !made[tc.kind] {
			t.Logf("%s: no %s key pair on this device (said above)", alg, tc.kind)
			continue
		}
		iss := s.json(200, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "svc-" + strings.ToLower(alg), "alg": alg})
		tok, err := jwt.Parse([]byte(iss["access_token"].(string)), jwt.WithKeySet(set))
		if err != nil {
			t.Errorf("%s: jwt.Parse with the JWKS and default options: %v", alg, err)
			continue
		}
		if sub, ok := tok.Subject(); !ok || sub != "svc-"+strings.ToLower(alg) {
			t.Errorf("%s: subject %q", alg, sub)
		}
	}
}

func TestInteropGoOIDC(t *testing.T) {
	c, s, admin, made := interopServer(t, "ec-p256", "rsa-2048")
	// The issuer is the server's URL: go-oidc checks that the document it
	// fetched says so.
	provider, err := oidc.NewProvider(t.Context(), s.url)
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s): %v", s.url, err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: "payments"})
	for alg, kind := range map[string]string{"ES256": "ec-p256", "RS256": "rsa-2048", "PS256": "rsa-2048"} {
		if !made[kind] {
			t.Logf("%s: no %s key pair on this device (said above)", alg, kind)
			continue
		}
		iss := s.json(200, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "svc", "alg": alg, "audience": "payments"})
		tok, err := verifier.Verify(t.Context(), iss["access_token"].(string))
		if err != nil {
			t.Errorf("%s: go-oidc Verify: %v", alg, err)
			continue
		}
		if tok.Subject != "svc" || tok.Issuer != s.url {
			t.Errorf("%s: subject %q issuer %q", alg, tok.Subject, tok.Issuer)
		}
	}
	// A token for another audience is refused by the verifier.
	if made["ec-p256"] {
		other := s.json(200, "POST", "/access/api/v1/tokens", admin, map[string]any{"username": "svc", "alg": "ES256", "audience": "billing"})
		if _, err := verifier.Verify(t.Context(), other["access_token"].(string)); err == nil {
			t.Error("go-oidc verified a token for another audience")
		}
	}
	// A public URL that is not one stops the server at start.
	for _, bad := range []string{"keyward.example.com", "http://keyward.example.com", "https://keyward.example.com/?a=b"} {
		if r := c.run("", nil, "serve", "--listen", "127.0.0.1:0", "--public-url", bad); r.code == 0 || !strings.Contains(r.stderr, "--public-url") {
			t.Errorf("--public-url %s: %s", bad, r)
		}
	}
}

// The clients above, and keyward's own test helpers, are test code only:
// the shipped binary (the one every test here runs) links none of them.
func TestShippedBinaryLinksNoTestCode(t *testing.T) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Deps {
		for _, testOnly := range []string{"github.com/jfrog/", "github.com/lestrrat-go/", "github.com/coreos/go-oidc", "golang.org/x/oauth2"} {
			if strings.HasPrefix(m.Path, testOnly) {
				t.Errorf("keyward links %s %s, a test-only dependency", m.Path, m.Version)
			}
		}
	}
	out, err := exec.Command("go", "list", "-deps", "../cmd/keyward").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/keyward/") && (strings.HasSuffix(pkg, "test") || strings.Contains(pkg, "/internal/testmain") || strings.Contains(pkg, "fault")) {
			t.Errorf("keyward links %s, a test helper", pkg)
		}
	}
}
