// Package bootstrap is the automatic first-start work of a node: import the
// key files an installer dropped in $KEYWARD_HOME/bootstrap/keys (and remove
// them), and, when bootstrap/keys/generate.token.json asks for it, issue a
// short-lived admin token into $KEYWARD_HOME/etc/keys/token.json that is
// deleted again a little later.
package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/keyward/keyward/ceremony"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/node"
	"github.com/keyward/keyward/safefile"
	"github.com/keyward/keyward/tokens"
)

// MaxTTL is the longest life a bootstrap token may ask for.
const MaxTTL = 900 * time.Second

// Paths under $KEYWARD_HOME.
func keysDir(home string) string       { return filepath.Join(home, "bootstrap", "keys") }
func requestPath(home string) string   { return filepath.Join(keysDir(home), "generate.token.json") }
func TokenPath(home string) string     { return filepath.Join(home, "etc", "keys", "token.json") }
func keyFile(home, name string) string { return filepath.Join(keysDir(home), name) }

// ImportKeys imports the key files an installer left in bootstrap/keys —
// master.key and join.key (hex), and the security section of a
// system.yaml (masterKey, joinKey) — as keys of policy. A key file is
// removed, and the system.yaml rewritten without its keys, only once the
// key is in the device with a matching KCV. On a cluster a file must hold
// the cluster's key: one that differs from the registry's active key of
// its role is refused by name, and left as it was. report is told what
// happened; errors name the file, never what it holds.
func ImportKeys(ctx context.Context, n *node.Node, home string, policy hsm.Policy, report func(string)) error {
	o := node.ImportOptions{Policy: policy, Cluster: true}
	for _, k := range []struct {
		role keyring.Role
		file string
	}{{keyring.Master, "master.key"}, {keyring.Join, "join.key"}} {
		path := keyFile(home, k.file)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		e, err := n.ImportHexFile(ctx, k.role, o, path, nil, "", true)
		if err != nil {
			return fmt.Errorf("bootstrap %s: %w", path, err)
		}
		report(fmt.Sprintf("imported %s as %s (KCV %s) and removed it", path, e.Label, e.KCV))
	}
	path := keyFile(home, "system.yaml")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	y, err := ceremony.ReadSystemYAML(path)
	if err != nil {
		return fmt.Errorf("bootstrap %w", err)
	}
	var roles []keyring.Role
	for _, r := range []keyring.Role{keyring.Master, keyring.Join} {
		if y.Has(ceremony.YAMLKey(r)) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil // scrubbed already, or never held keys
	}
	entries, err := n.ImportSystemYAML(ctx, roles, o, path, true)
	for _, e := range entries {
		report(fmt.Sprintf("imported %s's %s key as %s (KCV %s)", path, e.Role, e.Label, e.KCV))
	}
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", path, err)
	}
	report(fmt.Sprintf("%s rewritten without its keys", path))
	return nil
}

// request is generate.token.json: {} or {"subject": …, "expires_in": …}.
type request struct {
	Subject   string `json:"subject"`
	ExpiresIn int    `json:"expires_in"` // seconds, at most 900
}

// TokenFile is what etc/keys/token.json holds.
type TokenFile struct {
	Token     string    `json:"token"`
	TokenID   string    `json:"token_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Pending says whether generate.token.json is there (or was moved aside
// to be answered, and is not yet).
func Pending(home string) bool {
	for _, p := range []string{requestPath(home), answeringPath(home)} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// IssueToken answers generate.token.json: an admin token (sub admin unless
// asked otherwise, scp admin, aud keyward@*, 15 minutes or the asked
// expires_in up to 900 s) written to etc/keys/token.json (0600, atomically);
// then the request file is deleted. The request is moved aside before it
// is read (claim), so only the request answered is deleted: one written
// meanwhile stays for the next pass. A request that cannot be answered (a
// malformed one, or the device or database failing) is left in place with
// an error.
func IssueToken(ctx context.Context, svc *tokens.Service, home string) (TokenFile, error) {
	path, err := claim(home)
	if err != nil {
		return TokenFile{}, err
	}
	tf, err := answer(ctx, svc, home, path)
	if err != nil {
		unclaim(home)
		return TokenFile{}, err
	}
	// token.json is in place before the request goes, so a crash
	// between the two loses no request.
	return tf, os.Remove(path)
}

// answer issues the token the request at path asks for and writes
// token.json.
func answer(ctx context.Context, svc *tokens.Service, home, path string) (TokenFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return TokenFile{}, err
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := dec.Decode(&req); err != nil {
			return TokenFile{}, fmt.Errorf("%s: %v; expected {} or {\"subject\": \"…\", \"expires_in\": seconds}", requestPath(home), err)
		}
	}
	if req.ExpiresIn < 0 || time.Duration(req.ExpiresIn)*time.Second > MaxTTL {
		return TokenFile{}, fmt.Errorf("%s: expires_in must be 1 to 900 seconds, got %d", requestPath(home), req.ExpiresIn)
	}
	if req.Subject == "" {
		req.Subject = "admin"
	}
	ttl := tokens.DefaultBootstrapTTL
	if req.ExpiresIn > 0 {
		ttl = time.Duration(req.ExpiresIn) * time.Second
	}
	iss, err := svc.Create(ctx, tokens.Request{Kind: tokens.KindBootstrap, Subject: req.Subject, Scope: []string{"admin"},
		Audience: []string{"keyward@*"}, ExpiresIn: ttl, Description: "bootstrap admin token"})
	if err != nil {
		return TokenFile{}, err
	}
	tf := TokenFile{Token: iss.AccessToken, TokenID: iss.TokenID, ExpiresAt: iss.ExpiresAt.UTC()}
	body, _ := json.MarshalIndent(tf, "", "  ")
	if err := writeAtomic(TokenPath(home), append(body, '\n')); err != nil {
		return TokenFile{}, err
	}
	return tf, nil
}

// writeAtomic writes path (0600) whole or not at all (safefile).
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return safefile.WriteFile(path, data, 0o600)
}

// DeleteLater removes token.json after delay, unless it then holds another
// token (a newer bootstrap wrote it). It blocks; cancel ctx to stop
// waiting (the file is then removed at once).
func DeleteLater(ctx context.Context, home, tokenID string, delay time.Duration) error {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
	}
	raw, err := os.ReadFile(TokenPath(home))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var tf TokenFile
	if json.Unmarshal(raw, &tf) == nil && tf.TokenID != tokenID {
		return nil
	}
	return os.Remove(TokenPath(home))
}
