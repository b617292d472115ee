package keystore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/keystore"
)

func TestParseDSN(t *testing.T) {
	for _, tc := range []struct {
		in       string
		postgres bool
		redacted string
		err      bool
		secret   string // never in the redacted form nor an error
	}{
		{in: "/var/lib/keyward/keyward.db", redacted: "/var/lib/keyward/keyward.db"},
		{in: "keyward.db", redacted: "keyward.db"},
		{in: "sqlite:/tmp/k.db", redacted: "/tmp/k.db"},
		{in: "sqlite:///tmp/k.db", redacted: "/tmp/k.db"},
		{in: "postgres://kw@db/keyward?sslmode=verify-full", postgres: true, redacted: "postgres://kw@db/keyward?sslmode=verify-full"},
		{in: "postgresql://kw:Pw0rd1@db/keyward", postgres: true, secret: "Pw0rd1"},
		{in: "postgres://kw@db/keyward?password=Qs3cret&sslmode=require", postgres: true, secret: "Qs3cret"},
		{in: "host=db dbname=keyward password=Kv5ecret", postgres: true, redacted: "host=db dbname=keyward password=xxxxx", secret: "Kv5ecret"},
		{in: "host=db password='with space' user=kw", postgres: true, secret: "with space"},
		{in: "mysql://root:My5ecret@db/keyward", err: true, secret: "My5ecret"},
		{in: "postgres://keyward@db.internal:5432/keyward?sslmode=verify-full password=S3cretPw", err: true, secret: "S3cretPw"},
		{in: "redis:secret-ish", err: true, secret: "secret-ish"},
		{in: "sqlite:", err: true},
		{in: "", err: true},
		{in: "postgres://", err: true},
	} {
		d, err := keystore.ParseDSN(tc.in)
		if tc.err {
			if !errors.Is(err, keystore.ErrDSN) {
				t.Errorf("ParseDSN(%q): %v, want ErrDSN", tc.in, err)
			} else if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("ParseDSN(%q): the error repeats the secret: %v", tc.in, err)
			}
			continue
		}
		if err != nil || d.Postgres != tc.postgres {
			t.Errorf("ParseDSN(%q) = %+v, %v", tc.in, d, err)
			continue
		}
		if tc.redacted != "" && d.String() != tc.redacted {
			t.Errorf("ParseDSN(%q) redacted %q, want %q", tc.in, d.String(), tc.redacted)
		}
		if tc.secret != "" && strings.Contains(d.String(), tc.secret) {
			t.Errorf("ParseDSN(%q) redacted %q still holds the password", tc.in, d.String())
		}
	}
}

// FuzzParseDSN: no panic, and a password in any of the forms pgx takes
// never survives redaction.
func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"/tmp/k.db", "sqlite:k.db", "postgres://u:p@h/d?password=q", "host=h password=x", "host=h password='a b'", "mysql://x", "a=b",
		"postgres://0!p@0!0#pAssword=0", "postgres://0?=", "host=h A000000:"} {
		f.Add(s, "S3cretPw")
	}
	f.Fuzz(func(t *testing.T, prefix, pw string) {
		if len(pw) < 6 || strings.ContainsAny(pw, "' \\\t\n\r\f\v&#%?/@:=+") || strings.Contains(prefix, pw) {
			return
		}
		for _, in := range []string{prefix, prefix + " password=" + pw, "host=h " + prefix + " password=" + pw,
			"postgres://u:" + pw + "@h/d", "postgres://u@h/d?password=" + pw} {
			d, err := keystore.ParseDSN(in)
			if err != nil {
				continue
			}
			if strings.Contains(in, "password="+pw) || strings.Contains(in, ":"+pw+"@") {
				if d.Postgres && strings.Contains(d.String(), pw) {
					t.Fatalf("ParseDSN(%q) redacted %q", in, d.String())
				}
			}
		}
	})
}
