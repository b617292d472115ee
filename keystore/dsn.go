package keystore

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"
)

// ErrDSN is a --db string keyward does not take.
var ErrDSN = errors.New("not a database keyward can open")

// DSN is a parsed --db string: which database, where, and how to name it
// in messages without its credentials.
type DSN struct {
	Postgres bool
	conn     string   // what the driver opens: a postgres URL or key=value string, or a SQLite path
	redacted string   // for messages: no password, in any of the forms pgx accepts
	secrets  []string // the password values, scrubbed from driver errors too
}

// String is the redacted form.
func (d DSN) String() string { return d.redacted }

var (
	schemeRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)
	keyValueRE = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
	// password=value or password='quoted value' in a key=value string.
	kvPasswordRE = regexp.MustCompile(`(?i)\b(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)
)

// ParseDSN reads a --db string. It takes exactly: a file path (SQLite), a
// "sqlite:" URL, a "postgres://" or "postgresql://" URL, or a libpq
// key=value string ("host=db dbname=keyward", PostgreSQL). Anything else
// is ErrDSN, whose message never repeats the string (it may hold a
// password).
func ParseDSN(s string) (DSN, error) {
	switch {
	case strings.TrimSpace(s) == "":
		return DSN{}, fmt.Errorf("%w: it is empty", ErrDSN)
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			// A URL has no spaces (%20 stands for one): this is a URL with
			// key=value settings after it, which pgx would not read as
			// such, and a password among them would be shown as a value.
			return DSN{}, fmt.Errorf("%w: a postgres:// URL holds no spaces or control characters (write %%20); give either a URL or key=value settings, not both", ErrDSN)
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" && u.Query().Get("host") == "" {
			return DSN{}, fmt.Errorf("%w: a postgres:// URL that cannot be read (postgres://USER@HOST:PORT/DB?sslmode=verify-full)", ErrDSN)
		}
		d := DSN{Postgres: true, conn: s}
		if p, ok := u.User.Password(); ok && p != "" {
			d.secrets = append(d.secrets, p)
		}
		q := u.Query()
		for _, k := range []string{"password", "sslpassword"} {
			for _, v := range q[k] {
				if v != "" {
					d.secrets = append(d.secrets, v)
				}
			}
		}
		// Messages show the server and the harmless parameters only.
		shown := url.Values{}
		for k, v := range q {
			if safeParams[k] {
				shown[k] = v
			}
		}
		name := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawQuery: shown.Encode()}
		if u.User != nil {
			name.User = url.User(u.User.Username())
		}
		d.redacted = name.String()
		if len(shown) < len(q) {
			d.redacted += "&…"
			if len(shown) == 0 {
				d.redacted = strings.TrimSuffix(d.redacted, "&…") + "?…"
			}
		}
		return d, nil
	case strings.HasPrefix(s, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite://"), "sqlite:")
		if path == "" || strings.ContainsAny(path, "?#") {
			return DSN{}, fmt.Errorf("%w: a sqlite: URL names a file: sqlite:/var/lib/keyward/keyward.db", ErrDSN)
		}
		return DSN{conn: path, redacted: path}, nil
	case keyValueRE.MatchString(s):
		d := DSN{Postgres: true, conn: s}
		for _, m := range kvPasswordRE.FindAllStringSubmatch(s, -1) {
			v := strings.Trim(m[2], "'")
			if v != "" {
				d.secrets = append(d.secrets, v, m[2])
			}
		}
		d.redacted = kvPasswordRE.ReplaceAllString(s, "$1=xxxxx")
		return d, nil
	case schemeRE.MatchString(s):
		scheme, _, _ := strings.Cut(s, ":")
		if len(scheme) > 16 {
			scheme = scheme[:16] + "…"
		}
		return DSN{}, fmt.Errorf("%w: %q is not a database keyward speaks; give a SQLite path, a sqlite: URL, a postgres:// URL or a key=value string (for a file whose name holds a colon, write ./NAME)", ErrDSN, scheme+":")
	case strings.ContainsAny(s, "\n\r\x00"):
		return DSN{}, fmt.Errorf("%w: a path with control characters", ErrDSN)
	}
	return DSN{conn: s, redacted: s}, nil
}

// safeParams are the postgres:// URL parameters messages may show.
var safeParams = map[string]bool{"sslmode": true, "connect_timeout": true, "search_path": true, "application_name": true,
	"target_session_attrs": true, "host": true, "port": true, "dbname": true, "user": true}

// scrub removes the DSN's password values from a message.
func (d DSN) scrub(msg string) string {
	for _, sec := range d.secrets {
		msg = strings.ReplaceAll(msg, sec, "xxxxx")
	}
	return msg
}
