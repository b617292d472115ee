package ceremony

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/keyward/keyward/safefile"
	"gopkg.in/yaml.v3"
)

// YAML key names of the artifact platform's system.yaml.
const (
	YAMLMasterKey = "masterKey"
	YAMLJoinKey   = "joinKey"
)

// SystemYAML is a parsed system.yaml with the security keys located.
type SystemYAML struct {
	path string
	text []byte
	// found maps masterKey/joinKey to where they are, shared.security first.
	found map[string][]yamlKey
}

type yamlKey struct {
	section string // "shared.security" or "security"
	key     *yaml.Node
	value   *yaml.Node
}

// ReadSystemYAML reads path and finds shared.security.masterKey/joinKey,
// or security.masterKey/joinKey at the top level.
func ReadSystemYAML(path string) (*SystemYAML, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseSystemYAML(path, text)
}

// scrubbable refuses a value that is not on its key's line: dropping one
// line would leave part of it behind.
func scrubbable(path, name string, k yamlKey) error {
	if k.value.Line != k.key.Line || strings.Contains(k.value.Value, "\n") {
		return fmt.Errorf("%s: %s.%s spans several lines; remove it by hand", path, k.section, name)
	}
	return nil
}

// yamlQuoted is a quoted piece of the document in a yaml error.
var yamlQuoted = regexp.MustCompile(`'[^']*'|"[^"]*"|` + "`[^`]*`")

func parseSystemYAML(path string, text []byte) (*SystemYAML, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		// yaml's errors quote anchor names and bits of text, where a key
		// could stand: keep the line number and the reason, not the quotes.
		return nil, fmt.Errorf("%s is not valid YAML: %s", path, yamlQuoted.ReplaceAllString(err.Error(), "'…'"))
	}
	if err := noDuplicateKeys(path, &doc); err != nil {
		return nil, err
	}
	s := &SystemYAML{path: path, text: text, found: map[string][]yamlKey{}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	for _, section := range []string{"shared.security", "security"} {
		m := lookup(root, strings.Split(section, ".")...)
		if m == nil || m.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if (k.Value == YAMLMasterKey || k.Value == YAMLJoinKey) && v.Kind == yaml.ScalarNode {
				s.found[k.Value] = append(s.found[k.Value], yamlKey{section: section, key: k, value: v})
			}
		}
	}
	return s, nil
}

// noDuplicateKeys refuses a mapping that names a key twice: which of two
// joinKey lines is the key is not for keyward to guess.
func noDuplicateKeys(path string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		lines := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if first, ok := lines[k.Value]; ok {
				return fmt.Errorf("%s: %q is given twice in one mapping (lines %d and %d); keep one", path, k.Value, first, k.Line)
			}
			lines[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := noDuplicateKeys(path, c); err != nil {
			return err
		}
	}
	return nil
}

func lookup(n *yaml.Node, path ...string) *yaml.Node {
	for _, p := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// Has says whether the file holds name (YAMLMasterKey or YAMLJoinKey).
func (s *SystemYAML) Has(name string) bool { _, ok := s.found[name]; return ok }

// Key parses the hex value of name.
func (s *SystemYAML) Key(name string) ([]byte, error) {
	if !s.Has(name) {
		return nil, fmt.Errorf("%w: %s has no shared.security.%s or security.%s", ErrNotFound, s.path, name, name)
	}
	k := s.found[name][0]
	return ParseHexKey([]byte(k.value.Value), fmt.Sprintf("%s: %s.%s (line %d)", s.path, k.section, name, k.key.Line))
}

// Scrub rewrites the file without the lines of names (in both sections),
// keeping every other
// byte (keys, comments, layout) and the file's permissions, by an atomic
// rename. It checks the result parses and lacks the keys before replacing.
func (s *SystemYAML) Scrub(names ...string) error {
	drop := map[int]bool{}
	for _, name := range names {
		for _, k := range s.found[name] {
			if err := scrubbable(s.path, name, k); err != nil {
				return err
			}
			drop[k.key.Line] = true
		}
	}
	if len(drop) == 0 {
		return nil
	}
	lines := bytes.SplitAfter(s.text, []byte("\n"))
	var out bytes.Buffer
	for i, line := range lines {
		if !drop[i+1] {
			out.Write(line)
		}
	}
	check, err := parseSystemYAML(s.path, out.Bytes())
	if err != nil {
		return fmt.Errorf("scrubbing would break %s (%v); it was left as it was", s.path, err)
	}
	for _, name := range names {
		if check.Has(name) {
			return fmt.Errorf("scrubbing %s left %s in place; it was left as it was", s.path, name)
		}
	}
	return replaceFile(s.path, out.Bytes())
}

// replaceFile atomically replaces path with text, keeping its mode and,
// where permitted, its owner.
func replaceFile(path string, text []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := safefile.Create(filepath.Dir(path), st.Mode().Perm())
	if err != nil {
		return err
	}
	defer tmp.Close()
	chownLike(tmp.File, st)
	if _, err := tmp.Write(text); err != nil {
		return err
	}
	return tmp.Commit(path)
}
