package keystore_test

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/keyring"
	"github.com/keyward/keyward/keystore"
	"github.com/keyward/keyward/keystore/dbtest"
)

func TestCheckRecordName(t *testing.T) {
	for _, name := range []string{
		"base/secret", "a/b.c/d-e_f", "café/ü", "db/password", "x", "a b", "..a/b..", ".hidden/x",
		"日本/名前", "emoji/🔑", strings.Repeat("a", 1024),
	} {
		if err := keystore.CheckRecordName(name); err != nil {
			t.Errorf("%.40q refused: %v", name, err)
		}
	}
	for _, tc := range []struct{ name, why string }{
		{"", "empty"},
		{strings.Repeat("a", 1025), "1025 bytes, over 1024"},
		{"a\xffb", "not valid UTF-8"},
		{"x//y", `empty segment`},
		{"x/../y", `a ".." segment`},
		{"./z", `a "." segment`},
		{"x/.", `a "." segment`},
		{"..", `a ".." segment`},
		{"/abs", `starts with "/"`},
		{"/", `starts with "/"`},
		{"base/secret/", `ends with "/"`},
		{"evil\x1b[2J", "control character U+001B"},
		{"del\x7f", "control character U+007F"},
		{"c1\u0085", "control character U+0085"},
		{"rtl\u202egnp.exe", "format character U+202E"},
		{"iso\u2066x", "format character U+2066"},
		{"lrm\u200ex", "format character U+200E"},
		{"rlm\u200fx", "format character U+200F"},
		{"zw\u200bx", "format character U+200B"},
		{"zwj\u200dx", "format character U+200D"},
		{"wj\u2060x", "format character U+2060"},
		{"\ufeffbom", "format character U+FEFF"},
		{"soft\u00adhyphen", "format character U+00AD"},
		{"ls\u2028x", "separator U+2028"},
		{"ps\u2029x", "separator U+2029"},
	} {
		err := keystore.CheckRecordName(tc.name)
		if !errors.Is(err, keystore.ErrRecordName) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%.40q: %v, want ErrRecordName saying %q", tc.name, err, tc.why)
			continue
		}
		// Every refusal states the rule, and shows the name escaped.
		if msg := err.Error(); !strings.Contains(msg, `segments separated by "/"`) || strings.ContainsAny(msg, "\x1b\x7f\u0085\u202e\u200f\u2028\ufeff") {
			t.Errorf("%.40q: message %q lacks the rule or holds the name raw", tc.name, msg)
		}
	}
}

// TestRecordNameRuleOnWrites: Put refuses a name the rule refuses; a
// record an older keyward stored under such a name is listed, read and
// deleted by it.
func TestRecordNameRuleOnWrites(t *testing.T) {
	dsn := dbtest.SQLite(t)
	n, _ := node(t, dsn)
	if _, err := n.Import(t.Context(), keyring.Master, hexKey(1), hsm.PolicyLocal, ""); err != nil {
		t.Fatal(err)
	}
	legacy := []string{"x//y", "x/../y", "./z", "/abs", "rlm\u200fx", "ls\u2028x", "\ufeffbom", "base/secret/"}
	for _, name := range legacy {
		if err := n.Put(t.Context(), name, []byte("v")); !errors.Is(err, keystore.ErrRecordName) {
			t.Errorf("Put %q: %v, want ErrRecordName", name, err)
		}
		dbtest.InsertRecord(t, dsn, hexKey(1), 1, name, []byte("value of "+name))
	}
	recs, err := n.Records(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	for _, name := range legacy {
		if !slices.Contains(names, name) {
			t.Errorf("%q not listed: %q", name, names)
		}
		if v, err := n.Get(t.Context(), name); err != nil || string(v) != "value of "+name {
			t.Errorf("Get %q: %q %v", name, v, err)
		}
		if err := n.Delete(t.Context(), name); err != nil {
			t.Errorf("Delete %q: %v", name, err)
		}
	}
	if recs, err := n.Records(t.Context()); err != nil || len(recs) != 0 {
		t.Errorf("after deleting them all: %v %v", recs, err)
	}
}

// FuzzCheckRecordName: a name the rule allows is one a path carries as it
// is (nothing cleans it into another name) and shows as it is; a refusal
// shows the name escaped, never raw.
func FuzzCheckRecordName(f *testing.F) {
	for _, s := range []string{"base/secret", "x//y", "x/../y", "./z", "/abs", "a/", "café/ü", "a\u200fb", "a\u2028b", "\ufeff", "a\x1bb", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := keystore.CheckRecordName(name)
		if err == nil {
			if path.Clean("/"+name) != "/"+name || !utf8.ValidString(name) || hidden(name) {
				t.Fatalf("%q allowed", name)
			}
			return
		}
		if msg := err.Error(); !utf8.ValidString(msg) || hidden(msg) {
			t.Fatalf("%q: the refusal shows it raw: %q", name, msg)
		}
	})
}

// hidden says s holds a rune the rule refuses: control, format or line
// and paragraph separator.
func hidden(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) })
}
