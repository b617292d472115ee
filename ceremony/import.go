package ceremony

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
)

// Importer puts a key into the device: a *keyring.Ring, or a
// *keystore.Vault, which also registers it in the shared database.
type Importer interface {
	Import(ctx context.Context, role keyring.Role, key []byte, expectKCV string) (keyring.Entry, error)
}

// Every import follows invariant 2: a source file is removed (or scrubbed)
// only after the key is in the device and its KCV matched; on any failure
// the file stays exactly as it was.

// ImportHexFile imports the hex key in path ("-": stdin) as the next
// version of role, then, with remove, overwrites and removes path.
func ImportHexFile(ctx context.Context, imp Importer, role keyring.Role, path string, stdin io.Reader, expectKCV string, remove bool) (keyring.Entry, error) {
	if remove && path == "-" {
		return keyring.Entry{}, fmt.Errorf("%w: cannot remove standard input", hsm.ErrConfig)
	}
	key, err := ReadHexKeyFile(path, stdin)
	if err != nil {
		return keyring.Entry{}, err
	}
	e, err := imp.Import(ctx, role, key, expectKCV)
	if err != nil {
		return keyring.Entry{}, fmt.Errorf("%w; %s was left in place", err, displayPath(path))
	}
	if remove {
		if err := RemoveSource(path); err != nil {
			return e, fmt.Errorf("%s was imported with KCV %s, but the source was not removed: %w", e.Label, e.KCV, err)
		}
	}
	return e, nil
}

func displayPath(p string) string {
	if p == "-" {
		return "standard input"
	}
	return p
}

// YAMLKey is the system.yaml key of a role: masterKey or joinKey.
func YAMLKey(r keyring.Role) string {
	if r == keyring.Master {
		return YAMLMasterKey
	}
	return YAMLJoinKey
}

// ImportSystemYAML imports the masterKey and/or joinKey of a system.yaml
// (roles: the ones to import, every one of which must be there: nothing
// is imported otherwise) and with scrub rewrites the file without the
// imported ones.
func ImportSystemYAML(ctx context.Context, imp Importer, roles []keyring.Role, path string, scrub bool) ([]keyring.Entry, error) {
	y, err := ReadSystemYAML(path)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	var todo []keyring.Role
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	for _, r := range roles {
		if r != keyring.Master && r != keyring.Join {
			return nil, fmt.Errorf("%w: a system.yaml holds master and join keys only", keyring.ErrRole)
		}
		if len(roles) > 1 && !y.Has(YAMLKey(r)) {
			// "all" means both: import nothing rather than half.
			return nil, fmt.Errorf("%w: %s has no shared.security.%s, and both keys were asked for; nothing was imported", ErrNotFound, path, YAMLKey(r))
		}
		k, err := y.Key(YAMLKey(r)) // parse all before importing any
		if err != nil {
			return nil, err
		}
		keys, todo = append(keys, k), append(todo, r)
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("%w: %s has neither shared.security.masterKey nor joinKey", ErrNotFound, path)
	}
	var entries []keyring.Entry
	var names []string
	for i, r := range todo {
		e, err := imp.Import(ctx, r, keys[i], "")
		if err != nil {
			done := ""
			if len(entries) > 0 {
				done = fmt.Sprintf(" (%s was imported)", entries[0].Label)
			}
			return entries, fmt.Errorf("%w%s; %s was left as it was", err, done, path)
		}
		entries = append(entries, e)
		names = append(names, YAMLKey(r))
	}
	if scrub {
		if err := y.Scrub(names...); err != nil {
			return entries, fmt.Errorf("keys imported, but %w", err)
		}
	}
	return entries, nil
}

// ImportComponents XORs the hex components in paths into the key and
// imports it. seen is told each component's own KCV as it is read, so each
// custodian can check their part. With remove, the component files are
// removed after the import.
func ImportComponents(ctx context.Context, imp Importer, role keyring.Role, paths []string, expectKCV string, remove bool, seen func(i int, path, kcv string)) (keyring.Entry, error) {
	if len(paths) < 2 {
		return keyring.Entry{}, fmt.Errorf("%w: a split-knowledge key needs at least two components", ErrShares)
	}
	var parts [][]byte
	defer func() {
		for _, p := range parts {
			clear(p)
		}
	}()
	for i, p := range paths {
		k, err := ReadHexKeyFile(p, nil)
		if err != nil {
			return keyring.Entry{}, fmt.Errorf("component %d: %w", i+1, err)
		}
		kcv, err := hsm.ComputeKCV(k)
		if err != nil {
			return keyring.Entry{}, fmt.Errorf("component %d: %w", i+1, err)
		}
		seen(i+1, p, kcv)
		parts = append(parts, k)
	}
	key, err := XORComponents(parts)
	if err != nil {
		return keyring.Entry{}, err
	}
	e, err := imp.Import(ctx, role, key, expectKCV)
	if err != nil {
		return keyring.Entry{}, fmt.Errorf("%w; the component files were left in place", err)
	}
	if remove {
		var failed []string
		for _, p := range paths {
			if err := RemoveSource(p); err != nil {
				failed = append(failed, err.Error())
			}
		}
		if failed != nil {
			return e, fmt.Errorf("%s was imported with KCV %s, but: %s", e.Label, e.KCV, strings.Join(failed, "; "))
		}
	}
	return e, nil
}

// CombineAndImport rebuilds a key from shares and imports it as the next
// version of role. Nothing is imported unless the rebuilt key's KCV is the
// one recorded in the shares (and expectKCV, if given).
func CombineAndImport(ctx context.Context, imp Importer, role keyring.Role, shares []ShareInfo, expectKCV string) (keyring.Entry, error) {
	key, err := CombineShares(shares, hsm.ComputeKCV)
	if err != nil {
		return keyring.Entry{}, err
	}
	if expectKCV == "" {
		expectKCV = shares[0].KeyKCV
	}
	return imp.Import(ctx, role, key, expectKCV)
}
