package ceremony

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
	"gopkg.in/yaml.v3"
)

// longHex finds what could be key material in an input: 16 hex digits or
// more.
var longHex = regexp.MustCompile(`[0-9A-Fa-f]{16,}`)

// yamlKeyHex finds the hex written as the value of a masterKey or joinKey
// (yaml's errors may quote anchor names and keyward's mapping keys, which
// are not values).
var yamlKeyHex = regexp.MustCompile(`(?:` + YAMLMasterKey + `|` + YAMLJoinKey + `)["']?[ \t]*:[ \t]*["']?([0-9A-Fa-f]{16,})`)

// checkNoKeyInError fails if err repeats any of keys.
func checkNoKeyInError(t *testing.T, keys [][]byte, err error) {
	t.Helper()
	for _, k := range keys {
		if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(string(k))) {
			t.Fatalf("the error repeats %s from the input: %v", k, err)
		}
	}
}

func yamlKeys(text []byte) [][]byte {
	var keys [][]byte
	for _, m := range yamlKeyHex.FindAllSubmatch(text, -1) {
		keys = append(keys, m[1])
	}
	return keys
}

// FuzzSystemYAML: reading system.yaml's security section. No panic; a key
// is found only in shared.security or security, as a scalar, and the
// first found is shared.security's; Key gives 16, 24 or 32 bytes that
// are the value's hex, or ErrMalformed/ErrKeyLength; no error repeats
// what could be key material.
func FuzzSystemYAML(f *testing.F) {
	f.Add([]byte(systemYAML))
	f.Add([]byte("security:\n  masterKey: " + hex64 + "\n  joinKey: " + hex64[:32] + "\n"))
	f.Add([]byte("shared: {security: {joinKey: '" + hex64 + "', masterKey: 0x" + hex64[:30] + "}}\n"))
	f.Add([]byte("security:\n  joinKey: |\n    " + hex64 + "\n"))
	f.Add([]byte("security:\n  joinKey: " + hex64 + "\n  joinKey: " + hex64[:32] + "\n"))
	f.Add([]byte("a: &k " + hex64 + "\nsecurity:\n  masterKey: *k\n  joinKey: [" + hex64 + "]\n"))
	f.Add([]byte("%YAML 1.2\n---\nshared:\n  security:\n    masterKey: !!str " + hex64 + "\n...\n"))
	f.Add([]byte("security: \"" + hex64 + "\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		s, err := parseSystemYAML("system.yaml", text)
		if err != nil {
			if s != nil {
				t.Fatalf("a result with an error: %v", err)
			}
			checkNoKeyInError(t, yamlKeys(text), err)
			return
		}
		for _, name := range []string{YAMLMasterKey, YAMLJoinKey} {
			key, err := s.Key(name)
			if !s.Has(name) {
				if !errors.Is(err, ErrNotFound) || key != nil {
					t.Fatalf("%s absent: Key gives %x, %v", name, key, err)
				}
				continue
			}
			found := s.found[name]
			for i, k := range found {
				if k.section != "shared.security" && k.section != "security" || k.key.Value != name || k.value.Kind != yaml.ScalarNode {
					t.Fatalf("%s found as %q in %s (kind %d)", name, k.key.Value, k.section, k.value.Kind)
				}
				if i > 0 && found[i-1].section == "security" && k.section == "shared.security" {
					t.Fatalf("%s: security read before shared.security", name)
				}
			}
			if err != nil {
				if key != nil || !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrKeyLength) {
					t.Fatalf("%s: Key gives %x, %v", name, key, err)
				}
				checkNoKeyInError(t, append(yamlKeys(text), longHex.FindAll([]byte(found[0].value.Value), -1)...), err)
				continue
			}
			if n := len(key); n != 16 && n != 24 && n != 32 {
				t.Fatalf("%s: a %d-byte key", name, n)
			}
			if got := strings.TrimSpace(found[0].value.Value); !strings.EqualFold(hex.EncodeToString(key), got) {
				t.Fatalf("%s: %q read as %x", name, got, key)
			}
		}
	})
}

// checkShare holds ParseShare's result for line against the format
// (docs/CEREMONY.md): an accepted line has eight fields, a matching
// fingerprint and numbers in range, its fields come back as written, and
// it round-trips (written canonically with a new fingerprint, it parses
// to the same share). A refusal is ErrMalformed and never repeats the
// share's hex.
func checkShare(t *testing.T, line string, s ShareInfo, err error) {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(line), ":")
	if err != nil {
		if !errors.Is(err, ErrMalformed) || !reflect.DeepEqual(s, ShareInfo{}) {
			t.Fatalf("ParseShare(%q) = %+v, %v", line, s, err)
		}
		// A share is hex; other text in its place (say "kwshare1") may
		// well appear in the message's own words.
		if len(parts) > 6 && len(parts[6]) >= 8 && hexDigits(parts[6], len(parts[6])) && strings.Contains(err.Error(), parts[6]) {
			t.Fatalf("the error repeats the share: %v", err)
		}
		return
	}
	if len(parts) != 8 || parts[0] != sharePrefix || !strings.EqualFold(parts[7], fingerprint(strings.Join(parts[:7], ":"))) {
		t.Fatalf("accepted %q", line)
	}
	for _, n := range []int{s.Index, s.Threshold, s.Shares} {
		if n < 1 || n > 255 {
			t.Fatalf("accepted %q: index %d, threshold %d, shares %d", line, s.Index, s.Threshold, s.Shares)
		}
	}
	// 2 ≤ threshold ≤ shares and index ≤ shares, as SplitKey writes.
	if s.Threshold < 2 || s.Threshold > s.Shares || s.Index > s.Shares {
		t.Fatalf("accepted %q: share %d, %d of %d", line, s.Index, s.Threshold, s.Shares)
	}
	if int(s.share.X) != s.Index || s.SplitID != parts[4] || s.KeyKCV != strings.ToUpper(parts[5]) ||
		s.Fingerprint != strings.ToUpper(parts[7]) || !strings.EqualFold(hex.EncodeToString(s.share.Y), parts[6]) {
		t.Fatalf("%q read as %+v", line, s)
	}
	body := strings.Join([]string{sharePrefix, strconv.Itoa(s.Index), strconv.Itoa(s.Threshold), strconv.Itoa(s.Shares),
		s.SplitID, s.KeyKCV, hex.EncodeToString(s.share.Y)}, ":")
	again, err := ParseShare(body+":"+fingerprint(body), "again")
	if err != nil {
		t.Fatalf("%q, written again as %q: %v", line, body, err)
	}
	again.Fingerprint = s.Fingerprint
	if !reflect.DeepEqual(again.share.Y, s.share.Y) || again.share.X != s.share.X {
		t.Fatalf("%q: share changed on the round trip", line)
	}
	again.share, s.share = s.share, again.share
	if !reflect.DeepEqual(again, s) {
		t.Fatalf("%q round-trips as %+v, was %+v", line, again, s)
	}
}

func shareSeeds(f *testing.F) []string {
	f.Helper()
	key := bytes.Repeat([]byte{0xab}, 32)
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		f.Fatal(err)
	}
	lines, _, err := SplitKey(key, kcv, 3, 5)
	if err != nil {
		f.Fatal(err)
	}
	two, _, err := SplitKey(key[:16], kcv, 2, 255)
	if err != nil {
		f.Fatal(err)
	}
	return append(lines[:2], two[254])
}

// FuzzParseShare: a share line as a custodian pastes it. The fingerprint
// is a checksum, not a MAC: besides the line as it is, the target parses
// it with the fingerprint recomputed, so the fuzzer reaches the fields
// behind it.
func FuzzParseShare(f *testing.F) {
	for _, l := range shareSeeds(f) {
		f.Add(l)
		f.Add(" " + strings.ToLower(l) + "\r\n")
		f.Add(l[:len(l)-1])
		f.Add(strings.Replace(l, ":3:5:", ":9:5:", 1))
	}
	f.Add("kwshare1:1:2:3:abcd:ABCDEF::00000000")
	f.Add("kwshare1:+1:02:3:x:y:zz:0")
	f.Fuzz(func(t *testing.T, line string) {
		s, err := ParseShare(line, "share")
		checkShare(t, line, s, err)
		trimmed := strings.TrimSpace(line)
		if i := strings.LastIndex(trimmed, ":"); i >= 0 && strings.Count(trimmed, ":") == 7 {
			signed := trimmed[:i+1] + fingerprint(trimmed[:i])
			s, err := ParseShare(signed, "share")
			checkShare(t, signed, s, err)
		}
	})
}

// FuzzShareFile: a share file's text, read as ReadShareFile reads it
// (shareLine, then ParseShare; the seeds go through ReadShareFile itself
// first: writing a file each exec is twenty times slower on ext4). What
// it accepts is the first line that is neither blank nor a comment,
// checked as FuzzParseShare checks it.
func FuzzShareFile(f *testing.F) {
	dir := f.TempDir()
	for _, l := range shareSeeds(f) {
		s, err := ParseShare(l, "seed")
		if err != nil {
			f.Fatal(err)
		}
		path, err := WriteShareFile(dir, l, s)
		if err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		if r, err := ReadShareFile(path); err != nil || !reflect.DeepEqual(r, s) {
			f.Fatalf("ReadShareFile(%s) = %+v, %v; want %+v", path, r, err, s)
		}
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(append([]byte("\n  \n"), bytes.ReplaceAll(b, []byte("# "), []byte("#"))...))
	}
	f.Add([]byte("# only a comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseShare(shareLine(bytes.NewReader(data)), "share.txt")
		var line string
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				line = l
				break
			}
		}
		if err != nil {
			checkNoKeyInError(t, longHex.FindAll(data, -1), err)
		}
		checkShare(t, line, s, err)
	})
}

// TestParseShareRefusesImpossibleShares: a line whose fingerprint was
// recomputed by hand still has to be a share SplitKey could have written.
func TestParseShareRefusesImpossibleShares(t *testing.T) {
	y := strings.Repeat("ab", 32)
	line := func(index, threshold, shares, id, kcv, share string) string {
		body := strings.Join([]string{sharePrefix, index, threshold, shares, id, kcv, share}, ":")
		return body + ":" + fingerprint(body)
	}
	if _, err := ParseShare(line("1", "2", "3", "37a23fee", "2A7054", y), "ok"); err != nil {
		t.Fatalf("a well-formed share: %v", err)
	}
	for name, l := range map[string]string{
		"threshold over shares": line("1", "9", "5", "37a23fee", "2A7054", y),
		"index over shares":     line("7", "3", "5", "37a23fee", "2A7054", y),
		"threshold 1":           line("1", "1", "1", "37a23fee", "2A7054", y),
		"signed number":         line("+1", "2", "3", "37a23fee", "2A7054", y),
		"leading zeros":         line("1", "2", "003", "37a23fee", "2A7054", y),
		"empty share":           line("1", "2", "3", "37a23fee", "2A7054", ""),
		"odd share length":      line("1", "2", "3", "37a23fee", "2A7054", "abcd"),
		"escape in split id":    line("1", "2", "3", "\x1b[2Jabcd", "2A7054", y),
		"KCV not hex":           line("1", "2", "3", "37a23fee", "ZZZZZZ", y),
	} {
		if _, err := ParseShare(l, "share file"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
