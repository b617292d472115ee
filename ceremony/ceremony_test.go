package ceremony

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/hsm"
)

const hex64 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"

func TestParseHexKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		size int
		err  error
	}{
		{hex64 + "\n", 32, nil},
		{"  " + strings.ToUpper(hex64[:32]) + "\r\n", 16, nil},
		{hex64[:48], 24, nil},
		{hex64[:40], 0, ErrKeyLength},
		{hex64[:63] + "g", 0, ErrMalformed},
		{hex64[:32] + " " + hex64[32:], 0, ErrMalformed},
		{"", 0, ErrKeyLength},
	} {
		key, err := ParseHexKey([]byte(tc.in), "key.hex")
		if !errors.Is(err, tc.err) || len(key) != tc.size {
			t.Errorf("%q: got %d bytes, %v; want %d, %v", tc.in, len(key), err, tc.size, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), hex64[:8]) {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func FuzzParseHexKey(f *testing.F) {
	f.Add([]byte(hex64))
	f.Add([]byte(" 00 "))
	f.Add([]byte("arac")) // a word of the error's own text, not a quote of the input
	// An error may carry numbers (a position, a length) and nothing else
	// of the input: with its numbers masked, it is one of the messages a
	// bad character and a bad length give.
	numbers := regexp.MustCompile(`[0-9]+`)
	shape := func(err error) string { return numbers.ReplaceAllString(err.Error(), "N") }
	_, badChar := ParseHexKey([]byte("g"), "fuzz")
	_, badLength := ParseHexKey([]byte("00"), "fuzz")
	shapes := []string{shape(badChar), shape(badLength)}
	f.Fuzz(func(t *testing.T, in []byte) {
		key, err := ParseHexKey(in, "fuzz")
		if err == nil && len(key) != 16 && len(key) != 24 && len(key) != 32 {
			t.Fatalf("accepted a %d-byte key", len(key))
		}
		if err != nil && !slices.Contains(shapes, shape(err)) {
			t.Fatalf("the error carries more of the input than numbers: %v", err)
		}
	})
}

var systemYAML = `# Artifact platform configuration
shared:
  # security settings
  security:
    masterKey: ` + hex64 + `
    joinKey: "` + hex64[:32] + `"   # quoted, with a comment
    keepMe: true
  database:
    type: postgresql   # the HA database
security:
  masterKey: 00000000000000000000000000000000
`

func TestSystemYAMLReadAndScrub(t *testing.T) {
	path := filepath.Join(t.TempDir(), "system.yaml")
	if err := os.WriteFile(path, []byte(systemYAML), 0o640); err != nil {
		t.Fatal(err)
	}
	y, err := ReadSystemYAML(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := y.Key(YAMLMasterKey)
	if err != nil || len(m) != 32 {
		t.Fatalf("masterKey: %d bytes, %v (shared.security wins over security)", len(m), err)
	}
	j, err := y.Key(YAMLJoinKey)
	if err != nil || len(j) != 16 {
		t.Fatalf("joinKey: %d bytes, %v", len(j), err)
	}
	if err := y.Scrub(YAMLMasterKey, YAMLJoinKey); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("    masterKey: "+hex64+"\n", "", "    joinKey: \""+hex64[:32]+"\"   # quoted, with a comment\n", "",
		"  masterKey: 00000000000000000000000000000000\n", "").Replace(systemYAML)
	if string(got) != want {
		t.Fatalf("scrubbed file:\n%s\nwant:\n%s", got, want)
	}
	if st, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o640 {
		t.Errorf("mode changed to %v", st.Mode())
	}
	again, err := ReadSystemYAML(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Has(YAMLJoinKey) || again.Has(YAMLMasterKey) {
		t.Error("a key is still there")
	}
	if !strings.Contains(string(got), "keepMe: true") || !strings.Contains(string(got), "# the HA database") {
		t.Error("other keys or comments lost")
	}
}

func TestShares(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 32)
	kcv, err := hsm.ComputeKCV(key)
	if err != nil {
		t.Fatal(err)
	}
	lines, infos, err := SplitKey(key, kcv, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	parse := func(i int) ShareInfo {
		s, err := ParseShare(lines[i], "share")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	got, err := CombineShares([]ShareInfo{parse(4), parse(0), parse(2)}, hsm.ComputeKCV)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("combine 3 of 5: %v", err)
	}
	if _, err := CombineShares([]ShareInfo{parse(0), parse(1)}, hsm.ComputeKCV); !errors.Is(err, ErrShares) || !strings.Contains(err.Error(), "needs 3 shares, got 2") {
		t.Fatalf("2 shares: %v", err)
	}
	if _, err := CombineShares([]ShareInfo{parse(0), parse(1), parse(1)}, hsm.ComputeKCV); !errors.Is(err, ErrShares) {
		t.Fatalf("repeated share: %v", err)
	}
	// One changed digit is caught by the fingerprint.
	bad := []byte(lines[1])
	i := strings.LastIndex(lines[1], ":") - 3
	if bad[i] == '0' {
		bad[i] = '1'
	} else {
		bad[i] = '0'
	}
	if _, err := ParseShare(string(bad), "share-2"); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged share: %v", err)
	}
	// Shares of another split are refused.
	other, _, err := SplitKey(key, kcv, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseShare(other[1], "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CombineShares([]ShareInfo{parse(0), o, parse(2)}, hsm.ComputeKCV); !errors.Is(err, ErrShares) {
		t.Fatalf("mixed splits: %v", err)
	}
	dir := t.TempDir()
	path, err := WriteShareFile(dir, lines[0], infos[0])
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("share file mode %v", st.Mode())
	}
	if s, err := ReadShareFile(path); err != nil || s.Index != 1 || s.Fingerprint != infos[0].Fingerprint {
		t.Fatalf("read back: %+v %v", s, err)
	}
	if _, err := WriteShareFile(dir, lines[0], infos[0]); err == nil {
		t.Fatal("overwrote a share file")
	}
}

func TestRemoveSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, []byte(hex64), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := RemoveSource(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("source still there")
	}
}
